"""`arena experiment rest`: ReST (Gulcehre et al. 2023) on rest-v0, beside ReST-EM and the paper's
online-RL baseline.

    arena experiment rest                                   # seed 0, the rest arm: 2 Grow steps
    arena experiment rest --seeds 0,1,2 --arms rest,rest-rm,online

Arms (each an ordinary run `<name>-<arm>-s<seed>`, resumable, playable in tournaments, made as
`arena train rest-v0 --recipe <recipe> --seed S` would make it), from the same behaviour-cloned
policy (cached per seed):
- `rest`: ReST, R = chrF++ (the `default` recipe), one round per Grow step (default 2: G1, G2);
- `rest-rm`: the same with R = a learned reward model (`reward=model`), chrF the true metric;
- `em`: ReST-EM (binary reward, samples only, each Grow step fine-tunes the BC policy afresh);
- `online`: the paper's online-RL baseline on the learned reward (`online` recipe, `reward=model`),
  one round per policy-gradient pass (default 20; --rounds, given, is every arm's).

A seed varies the data (D's sources and mistakes, the validation and test sources, the reward
model's training pairs) as well as the training; `--data-seed N` pins the data.

Every figure comes from each run's learner history (`<run>/rest/history.json`: one row per policy,
BC, then G1 I0, G1 I1, ... or RL 1, RL 2, ...; rewards x100 as the paper's), read back as series
over those rows (`games.rest.history`). The claims are the paper's dynamics (docs/algorithms.md#rest); each
seed's table in the paper's layout: `games.rest.experiment_report`.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from arena.experiment import Arm, Claim, Experiment, SeedView
from arena.experiment.claims import fmt
from games.rest.history import Row, exact, label, online_ends, paper_rows, read, rows

GAME = "rest-v0"
ARMS = (
    Arm("rest", "ReST: Grow (sample) then Improve (filter above rising thresholds, fine-tune); R = chrF++"),
    Arm("rest-rm", "ReST with R = a learned reward model (chrF++ the true metric)", params={"reward": "model"}),
    Arm("em", "ReST-EM: binary reward, samples only, each Grow step fine-tunes the BC policy afresh", recipe="em"),
    Arm("online", "the paper's online-RL baseline: policy gradient + KL to BC on the learned reward model",
        recipe="online", params={"reward": "model"}, rounds=20),
)


def _gt(a: Row | None, b: Row | None, key: str = "test") -> tuple[str, bool | None]:
    """b's `key` strictly above a's."""
    if a is None or b is None:
        return "-", None
    return f"{label(a)} {fmt(a[key], digits=1)} -> {label(b)} {fmt(b[key], digits=1)}", b[key] > a[key]


def i0_keeps(steps: Sequence[Row]) -> tuple[str, bool | None]:
    p = paper_rows(steps)
    cell, held = _gt(p["BC"], p["G1 I0"])
    return cell, None if held is None else p["G1 I0"]["test"] >= p["BC"]["test"]


def improve_steps_rise(steps: Sequence[Row]) -> tuple[str, bool | None]:
    g1 = [r for r in steps if r["grow"] == 1]
    if len(g1) < 2 or g1[0]["improve"] != 0:
        return "-", None
    return " -> ".join(fmt(r["test"], digits=1) for r in g1), all(b["test"] > a["test"] for a, b in zip(g1, g1[1:]))


def filters_above_mean(steps: Sequence[Row]) -> tuple[str, bool | None]:
    filt = [r for r in steps if r["grow"] >= 1 and r.get("tau", 0) > 0 and not math.isnan(r.get("dg_mean", math.nan))]
    if not filt:
        return "-", None
    low = min(r["tau"] - r["dg_mean"] for r in filt)
    return (f"τ - mean >= {low:+.3f}, kept <= {100 * max(r['kept'] for r in filt):.0f}%",
            all(r["tau"] > r["dg_mean"] and r["kept"] < 1 for r in filt))


def fewer_pairs(steps: Sequence[Row]) -> tuple[str, bool | None]:
    g1 = [r for r in steps if r["grow"] == 1 and r["improve"] >= 1]
    if len(g1) < 2:
        return "-", None
    return " > ".join(str(int(r["pairs"])) for r in g1), all(b["pairs"] < a["pairs"] for a, b in zip(g1, g1[1:]))


def hacked(a: Row | None, b: Row | None) -> tuple[str, bool | None]:
    """From a to b: R (the learned reward) up and chrF (the true metric) down."""
    if a is None or b is None:
        return "-", None
    cell = (f"{label(a)} -> {label(b)}: R {fmt(a['test'], digits=1)} -> {fmt(b['test'], digits=1)}, "
            f"chrF {fmt(a['test_chrf'], digits=1)} -> {fmt(b['test_chrf'], digits=1)}")
    return cell, b["test"] > a["test"] and b["test_chrf"] < a["test_chrf"]


def dynamic(key: str, label_: str, paper: str, arm: str, test: Callable[[Sequence[Row]], tuple[str, bool | None]]
            ) -> Claim:
    """A claim on one arm's history rows."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        run = seed.runs.get(arm)
        return ("-", None) if run is None else test(rows(run.series))

    return Claim(key, label_, paper, check, arm=arm, direction="")


def _online_chrf_falls(steps: Sequence[Row]) -> tuple[str, bool | None]:
    a, b = online_ends(steps)
    if a is None:
        return "-", None
    return f"{fmt(a['test_chrf'], digits=1)} -> {fmt(b['test_chrf'], digits=1)}", b["test_chrf"] < a["test_chrf"]


CLAIMS = (
    dynamic("step.test", "G1 I0 >= BC (I0 keeps what BC learned)", "70.9 -> 71.9", "rest", i0_keeps),
    dynamic("step.test", "G1 I4 > G1 I0 (Improve steps help)", "71.9 -> 77.8", "rest",
            lambda s: _gt(paper_rows(s)["G1 I0"], paper_rows(s)["G1 I4"])),
    dynamic("step.test", "every Improve step of G1 raises the test reward", "yes, on all 3 benchmarks", "rest",
            improve_steps_rise),
    dynamic("step.test", "G2 I3 > G1 I4 (a second Grow helps)", "77.8 -> 83.1 (+5.3)", "rest",
            lambda s: _gt(paper_rows(s)["G1 I4"], paper_rows(s)["G2 I3"])),
    dynamic("step.test", "G2 I3 > BC", "70.9 -> 83.1", "rest",
            lambda s: _gt(paper_rows(s)["BC"], paper_rows(s)["G2 I3"])),
    dynamic("step.tau", "filtering thresholds above D_g's mean, kept < 100%", "τ_1 > mean of D_g", "rest",
            filters_above_mean),
    dynamic("step.pairs", "each filtering step of G1 keeps fewer pairs", "τ_{i+1} > τ_i", "rest", fewer_pairs),
    dynamic("step.test_chrf", "hacking: G1 I1 -> I4 (higher τ) raises R, lowers chrF",
            "RM score rises every step; human raters rank the variants otherwise", "rest-rm",
            lambda s: hacked(exact(s, 1, 1), paper_rows(s)["G1 I4"])),
    dynamic("step.test_chrf", "hacking: G1 I4 -> G2 I3 raises R, lowers chrF",
            "RM +5.3; human raters did not rank G2 above G1 as the RM does", "rest-rm",
            lambda s: hacked(paper_rows(s)["G1 I4"], paper_rows(s)["G2 I3"])),
    dynamic("step.test", "online RL: test R above BC's", "RM 70.9 -> 71.6", "online",
            lambda s: _gt(*online_ends(s))),
    dynamic("step.test_chrf", "online RL: test chrF below BC's", "BLEU fell ~8 points", "online", _online_chrf_falls),
    dynamic("step.test_chrf", "hacking: R above BC while chrF below BC", "yes: reward hacking", "online",
            lambda s: hacked(*online_ends(s))),
)


def report(seeds: Sequence[SeedView], out_dir, console) -> list[str]:
    from games.rest.experiment_report import report as write_report

    return write_report(seeds, out_dir, console)


EXPERIMENT = Experiment(
    name="rest", title="ReST: Grow and Improve", source="Gulcehre et al. 2023", game=GAME, arms=ARMS,
    claims=CLAIMS, rounds=2, episodes=64, data_param="data_seed", default_arms=("rest",), read=read, report=report)


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers
    from arena.experiment import run_experiment

    with quiet_transformers(warnings=False):
        return run_experiment(EXPERIMENT, argv)


if __name__ == "__main__":
    raise SystemExit(main())

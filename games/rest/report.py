"""The ReST table in the paper's layout and the Best-of-N curve, from a run's learner history.

    python -m games.rest.report runs/rest-v0-s0                  # print the table again
    python -m games.rest.report runs/rest-s0 runs/rest-s1 ...    # one row per seed + the paper's dynamics

Files under `<run>/rest/` (rewritten after every round by the learner):
`history.json` (every row), `steps.csv` (the table), `bon.csv` and `bon.png`
(Best-of-N: expected reward of the best of N samples, for BC and after each Grow).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from arena.types import ArenaError

PAPER = {"BC": 70.9, "G1 I0": 71.9, "G1 I4": 77.8, "G2 I3": 83.1}
"""Gulcehre et al. 2023, IWSLT'14 De-En, average reward-model score (docs/algorithms.md#rest)."""
STEP_COLUMNS = ["label", "grow", "improve", "tau", "dg_mean", "lr", "pairs", "kept", "from_data", "length", "loss",
                "valid", "test", "test_chrf", "test_exact", "test_length", "seeds_next"]
ONLINE_COLUMNS = ["label", "round", "pairs", "samples_R", "kl", "loss", "valid", "test", "test_chrf", "test_exact",
                  "test_length"]
OUT = "rest"


def rest_dir(run_dir: Path) -> Path:
    return Path(run_dir) / OUT


def write_outputs(history: dict[str, Any], out_dir: Path) -> None:
    """history.json, steps.csv, bon.csv and bon.png under `out_dir` (online RL: no Best-of-N curve)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    online = history.get("variant") == "online"
    with open(out_dir / "steps.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ONLINE_COLUMNS if online else STEP_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history["steps"])
    if online:
        return
    with open(out_dir / "bon.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "n", "reward", "chrf"])
        for policy, curve in history["bon"].items():
            for point in curve:
                w.writerow([policy, point["n"], point["reward"], point["chrf"]])
    plot_bon(history["bon"], out_dir / "bon.png")


def plot_bon(bon: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for policy, curve in bon.items():
        ax.plot([p["n"] for p in curve], [100 * p["reward"] for p in curve], marker="o",
                label=policy, linestyle="--" if policy == "BC" else "-")
    ax.set_xscale("log", base=2)
    ns = sorted({p["n"] for curve in bon.values() for p in curve})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (samples per source, best picked by the reward)")
    ax.set_ylabel("reward of the best sample (x100)")
    ax.set_title("rest-v0: Best-of-N on the test sources")
    ax.grid(alpha=0.3)
    if bon:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(history: dict[str, Any], title: str = "ReST on rest-v0") -> Table:
    """One row per policy: BC, then G1 I0, G1 I1, ..., G2 I0, ... (rewards x100, as the paper).

    val/test: mean reward R of greedy translations of the validation/test sources;
    chrF is shown apart when R is a learned reward model.
    """
    learned = history.get("reward", "chrf") != "chrf"
    paper = PAPER if history.get("variant", "rest") == "rest" else {}
    t = Table(title=title, header_style="bold")
    cols = ["policy", "τ", "D_g mean", "pairs", "kept", "len", "val", "test", *(["chrF"] if learned else []), "exact",
            *(["paper"] if paper else [])]
    for col in cols:
        t.add_column(col, justify="right", no_wrap=True)
    for row in history["steps"]:
        bc = row["label"] == "BC"
        star = "*" if row.get("seeds_next") else ""
        mean = row.get("dg_mean")
        t.add_row(row["label"] + star, *(["", "", "", "", ""] if bc else [
                      f"{row['tau']:.3f}", "" if mean is None else f"{mean:.3f}", str(row["pairs"]), f"{100 * row['kept']:.0f}%", f"{row['length']:.1f}"]),
                  f"{100 * row['valid']:.1f}", f"{100 * row['test']:.1f}",
                  *([f"{100 * row['test_chrf']:.1f}"] if learned else []),
                  f"{100 * row['test_exact']:.0f}%",
                  *([f"{paper[row['label']]:.1f}" if row["label"] in paper else ""] if paper else []))
    return t


def bon_table(history: dict[str, Any]) -> Table:
    curves = history["bon"]
    ns = sorted({p["n"] for c in curves.values() for p in c})
    t = Table(title="Best-of-N: reward of the best sample (x100)", header_style="bold")
    t.add_column("policy")
    for n in ns:
        t.add_column(f"N={n}", justify="right")
    for policy, curve in curves.items():
        by_n = {p["n"]: p["reward"] for p in curve}
        t.add_row(policy, *[f"{100 * by_n[n]:.1f}" if n in by_n else "" for n in ns])
    return t


def report(run_dir: Path):
    """What `arena train` prints at the end: the table, the Best-of-N curve, where the files are."""
    from rich.console import Group
    from rich.text import Text

    path = rest_dir(run_dir) / "history.json"
    if not path.is_file():
        return Text(f"no ReST history in {path.parent} yet")
    history = json.loads(path.read_text())
    note = Text("* seeds the next Grow step (best validation reward). Rewards x100 (greedy decoding); "
                "paper = IWSLT'14 reward-model scores, another scale.\n"
                f"Files: {path.parent}/{{steps.csv, bon.csv, bon.png}}", style="dim")
    if history.get("variant") == "online":
        note = Text("Rewards x100 (greedy decoding); KL = KL(π‖π_BC) on the round's samples before its update; "
                    "paper = online PPO on IWSLT'14 (reward-model score), another scale.\n"
                    f"Files: {path.parent}/{{history.json, steps.csv}}", style="dim")
        return Group(online_table(history, f"online RL on rest-v0 ({Path(run_dir).name})"), note)
    method = "ReST-EM" if history.get("variant") == "em" else "ReST"
    return Group(table(history, f"{method} on rest-v0 ({Path(run_dir).name})"), bon_table(history), note)


# -- several seeds ------------------------------------------------------------------

def last_step(history: dict[str, Any], grow: int, improve: int) -> dict[str, Any] | None:
    """Row `G<grow> I<improve>`, or that Grow step's last Improve step when it has fewer."""
    rows = [r for r in history["steps"] if r["grow"] == grow]
    exact = [r for r in rows if r["improve"] == improve]
    return exact[0] if exact else (rows[-1] if rows else None)


def seed_row(history: dict[str, Any]) -> dict[str, Any]:
    """One seed's figures in the paper's layout (BC, G1 I0, G1 I4, G2 I3; rewards x100) and its
    dynamics: each as the paper reports it, True/False (None when the run has no such row)."""
    if history.get("variant") == "online":
        return online_seed_row(history)
    steps = history["steps"]
    bc = next((r for r in steps if r["label"] == "BC"), None)
    g1i0 = next((r for r in steps if r["grow"] == 1 and r["improve"] == 0), None)
    g1 = [r for r in steps if r["grow"] == 1 and r["improve"] >= 1]
    g1last = last_step(history, 1, 4) if g1 else None
    g2i3 = last_step(history, 2, 3)
    filt = [r for r in steps if r["grow"] >= 1 and r.get("tau", 0) > 0 and r.get("dg_mean") is not None]
    v = lambda r: None if r is None else 100 * r["test"]  # noqa: E731
    out = {"BC": v(bc), "G1 I0": v(g1i0), "G1 I4": v(g1last), "G2 I3": v(g2i3),
           "G1 I4 label": g1last["label"] if g1last else None}
    gt = lambda a, b: None if a is None or b is None else a > b  # noqa: E731
    rises = [gt(v(b), v(a)) for a, b in zip([g1i0] + g1[:-1], g1)] if g1i0 and g1 else []
    c = lambda r: None if r is None or "test_chrf" not in r else 100 * r["test_chrf"]  # noqa: E731
    out["chrF"] = {"BC": c(bc), "G1 I0": c(g1i0), "G1 I4": c(g1last), "G2 I3": c(g2i3)}
    out["dynamics"] = {
        "G1 I0 >= BC (I0 keeps what BC learned)": None if out["G1 I0"] is None or out["BC"] is None
        else out["G1 I0"] >= out["BC"],
        "G1 I4 > G1 I0 (Improve steps help)": gt(out["G1 I4"], out["G1 I0"]),
        "every Improve step of G1 raises the test reward": all(rises) if rises else None,
        "G2 I3 > G1 I4 (a second Grow helps)": gt(out["G2 I3"], out["G1 I4"]),
        "G2 I3 > BC": gt(out["G2 I3"], out["BC"]),
        "filtering thresholds above D_g's mean, kept < 100%": (all(r["tau"] > r["dg_mean"] and r["kept"] < 1
                                                                   for r in filt) if filt else None),
        FEWER: all(b["pairs"] < a["pairs"] for a, b in zip(g1, g1[1:])) if len(g1) > 1 else None,
    }
    if history.get("reward", "chrf") != "chrf":  # R is a learned reward model: does it come apart from chrF?
        g1i1 = next((r for r in g1 if r["improve"] == 1), None)
        hacked = lambda a, b: (None if a is None or b is None  # noqa: E731
                               else v(b) > v(a) and c(b) < c(a))
        out["dynamics"].update({HACK_IMPROVE: hacked(g1i1, g1last), HACK_GROW: hacked(g1last, g2i3)})
    return out


FEWER = "each filtering step of G1 keeps fewer pairs"
HACK_IMPROVE = "hacking: G1 I1 -> I4 (higher τ) raises R, lowers chrF"
HACK_GROW = "hacking: G1 I4 -> G2 I3 raises R, lowers chrF"


PAPER_DYNAMICS = {
    "G1 I0 >= BC (I0 keeps what BC learned)": "70.9 -> 71.9",
    "G1 I4 > G1 I0 (Improve steps help)": "71.9 -> 77.8",
    "every Improve step of G1 raises the test reward": "yes, on all 3 benchmarks",
    "G2 I3 > G1 I4 (a second Grow helps)": "77.8 -> 83.1 (+5.3)",
    "G2 I3 > BC": "70.9 -> 83.1",
    "filtering thresholds above D_g's mean, kept < 100%": "τ_1 > mean of D_g",
    FEWER: "τ_{i+1} > τ_i",
    HACK_IMPROVE: "RM score rises every step; human raters rank the variants otherwise",
    HACK_GROW: "RM +5.3; human raters did not rank G2 above G1 as the RM does",
}


def seeds_report(run_dirs: list[Path]):
    """Per seed: BC, G1 I0, G1 I4, G2 I3 beside the paper's (online RL: R and chrF at BC and after the
    last round beside the paper's online PPO); then each dynamic and on how many seeds it held."""
    from rich.console import Group
    from rich.text import Text

    rows = []
    for d in run_dirs:
        history = json.loads((rest_dir(d) / "history.json").read_text())
        rows.append((Path(d).name, history, seed_row(history)))
    online = [h.get("variant") == "online" for _, h, _ in rows]
    if any(online) and not all(online):
        raise ArenaError("online-RL runs and ReST runs have different tables: report them apart")
    learned = any(h.get("reward", "chrf") != "chrf" for _, h, _ in rows)
    t = online_seeds_table(rows) if all(online) else rest_seeds_table(rows, learned)
    d = Table(title="the paper's dynamics, per run", header_style="bold",
              caption="held = runs on which the dynamic appeared / runs that have the rows it needs")
    for col in ("dynamic", "paper", "held", *[name for name, _, _ in rows]):
        d.add_column(col, justify="left" if col in ("dynamic", "paper") else "right")
    for dyn, paper in (ONLINE_DYNAMICS if all(online) else PAPER_DYNAMICS).items():
        got = [r["dynamics"].get(dyn) for _, _, r in rows]
        if all(g is None for g in got) and dyn in (HACK_IMPROVE, HACK_GROW):
            continue  # measured under a learned reward only
        ran = [g for g in got if g is not None]
        d.add_row(dyn, paper, f"{sum(ran)}/{len(ran)}", *["-" if g is None else "yes" if g else "no" for g in got])
    note = Text(("R is a learned reward model: see each run's table for chrF beside it. " if learned else "")
                + "Paper: Gulcehre et al. 2023, IWSLT'14 De-En, reward-model scores (another task and scale).",
                style="dim")
    return Group(t, d, note)


def rest_seeds_table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]], learned: bool) -> Table:
    t = Table(title="ReST on rest-v0, one row per run (test reward x100, greedy)", header_style="bold")
    labels = ("BC", "G1 I0", "G1 I4", "G2 I3")
    for col in ("run", *labels, *([f"chrF {k}" for k in labels] if learned else [])):
        t.add_column(col, justify="left" if col == "run" else "right")
    for name, _, r in rows:
        last = r["G1 I4 label"] if r["G1 I4 label"] not in (None, "G1 I4") else ""
        t.add_row(name, _f(r["BC"]), _f(r["G1 I0"]), _f(r["G1 I4"]) + (f" ({last})" if last else ""), _f(r["G2 I3"]),
                  *([_f(r["chrF"][k]) for k in labels] if learned else []))
    t.add_row("paper (IWSLT'14, RM score)", *[f"{PAPER[k]:.1f}" for k in labels], *([""] * 4 if learned else []),
              style="dim")
    return t


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


# -- online RL (games.rest.online) ----------------------------------------------------

PAPER_ONLINE = {"BC": 70.9, "online": 71.6, "BLEU": -8.0}
"""The paper's online PPO on IWSLT'14: RM score 71.6 (BC 70.9), and its BLEU fell ~8 points."""
R_UP = "online RL: test R above BC's"
CHRF_DOWN = "online RL: test chrF below BC's"
HACK_ONLINE = "hacking: R above BC while chrF below BC"
ONLINE_DYNAMICS = {R_UP: "RM 70.9 -> 71.6", CHRF_DOWN: "BLEU fell ~8 points", HACK_ONLINE: "yes: reward hacking"}


def online_seed_row(history: dict[str, Any]) -> dict[str, Any]:
    """One online-RL seed: test R and chrF (x100) at BC and after the last round, and the dynamics."""
    steps = history["steps"]
    bc = next((r for r in steps if r["label"] == "BC"), None)
    last = steps[-1] if len(steps) > 1 else None
    v = lambda r, k: None if r is None else 100 * r[k]  # noqa: E731
    out = {"BC": v(bc, "test"), "last": v(last, "test"), "chrF BC": v(bc, "test_chrf"),
           "chrF last": v(last, "test_chrf"), "label": last["label"] if last else None,
           "kl": last.get("kl") if last else None}
    up = None if last is None else out["last"] > out["BC"]
    down = None if last is None else out["chrF last"] < out["chrF BC"]
    out["dynamics"] = {R_UP: up, CHRF_DOWN: down, HACK_ONLINE: None if last is None else up and down}
    return out


def online_seeds_table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Table:
    reward = {h.get("reward", "chrf") for _, h, _ in rows}
    t = Table(title=f"online RL on rest-v0 (R = {'/'.join(sorted(reward))}), one row per run "
                    "(test, greedy, x100)", header_style="bold")
    for col in ("run", "R BC", "R last", "ΔR", "chrF BC", "chrF last", "ΔchrF", "KL"):
        t.add_column(col, justify="left" if col == "run" else "right")
    d = lambda a, b: "-" if a is None or b is None else f"{b - a:+.1f}"  # noqa: E731
    for name, _, r in rows:
        t.add_row(name, _f(r["BC"]), _f(r["last"]) + (f" ({r['label']})" if r["label"] else ""),
                  d(r["BC"], r["last"]), _f(r["chrF BC"]), _f(r["chrF last"]), d(r["chrF BC"], r["chrF last"]),
                  "-" if r["kl"] is None else f"{r['kl']:.2f}")
    p = PAPER_ONLINE
    t.add_row("paper: online PPO (IWSLT'14, RM score; BLEU)", f"{p['BC']:.1f}", f"{p['online']:.1f}",
              f"{p['online'] - p['BC']:+.1f}", "", "", f"BLEU {p['BLEU']:+.0f}", "", style="dim")
    return t


def online_table(history: dict[str, Any], title: str) -> Table:
    """One row per round: BC, then RL 1, RL 2, ... (R of the round's samples, KL to BC, greedy val/test R,
    test chrF, exact, length; x100)."""
    t = Table(title=title, header_style="bold")
    for col in ("policy", "samples R", "KL", "val", "test", "chrF", "exact", "len", "paper"):
        t.add_column(col, justify="right", no_wrap=True)
    paper = {"BC": f"{PAPER_ONLINE['BC']:.1f}"}
    steps = history["steps"]
    for row in steps:
        bc = row["label"] == "BC"
        is_last = row is steps[-1] and not bc
        t.add_row(row["label"], "" if bc else f"{100 * row['samples_R']:.1f}", "" if bc else f"{row['kl']:.2f}",
                  f"{100 * row['valid']:.1f}", f"{100 * row['test']:.1f}", f"{100 * row['test_chrf']:.1f}",
                  f"{100 * row['test_exact']:.0f}%", f"{row['test_length']:.1f}",
                  paper.get(row["label"], f"{PAPER_ONLINE['online']:.1f}, BLEU -8" if is_last else ""))
    return t


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m games.rest.report <run dir> [<run dir> ...]", file=sys.stderr)
        return 2
    if len(args) == 1:
        Console().print(report(Path(args[0])))
    else:
        Console(width=max(120, Console().width)).print(seeds_report([Path(a) for a in args]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

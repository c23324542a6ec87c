"""The ReST table in the paper's layout and the Best-of-N curve, from a run's learner history.

    python -m games.rest.report runs/rest-v0-s0                  # print the table again

(Several seeds beside the paper and its dynamics: `arena experiment rest`, games.rest.experiment.)

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
                      f"{row['tau']:.3f}", "" if mean is None else f"{mean:.3f}", str(row["pairs"]),
                      f"{100 * row['kept']:.0f}%", f"{row['length']:.1f}"]),
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


# -- online RL (games.rest.online) ----------------------------------------------------

PAPER_ONLINE = {"BC": 70.9, "online": 71.6, "BLEU": -8.0}
"""The paper's online PPO on IWSLT'14: RM score 71.6 (BC 70.9), and its BLEU fell ~8 points."""


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
    for a in args:
        Console().print(report(Path(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The overoptimization experiment's own files and tables, after the claims table (its `report` hook):

    <out>/overoptimization.csv   one row per (seed, arm, round)
    <out>/overoptimization.png   the first seed: gold and proxy reward against KL(π‖π_ref), gold and
                                 log π(chosen) by round
    <out>/summary.json           the per-arm summary of each seed (the tables' numbers)

and per seed a table of each arm's peak and final gold, proxy, KL and log π(chosen) drop beside the
paper's figures (no training here).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from arena.experiment import SeedView
from arena.experiment.claims import fmt
from arena.experiment.results import write_csv
from games.adversarial_rm.prepare import METHODS

COLUMNS = ("seed", "method", "eta", "round", "gold", "proxy", "proxy_margin", "kl", "chosen_logp", "chosen_logp_delta",
           "gold_win_rate_vs_ref", "gold_win_rate_vs_data", "rm_margin", "implicit_accuracy",
           "implicit_gold_accuracy", "length", "reward_margin", "sft_weight", "wall_s")
PAPER_ETA = 0.005
"""η of RPO's main text (summed NLL weighted η·β; β = 0.01 or 0.05 on 7B models)."""
PAPER = {
    "baseline": "over-optimises (Gao et al. 2022)",
    "dpo": "MT 7.278, AE-LC 21.15",
    "rpo-sum": "MT 7.381, AE-LC 23.28",
    "rpo-mean": "App. F: NLL mean, η=0.2",
}
"""The paper's figures per method (Liu et al. 2024, Mistral-7B "beta" series; docs/algorithms.md#rpo)."""


def rows_of(method: str, summaries: Sequence[dict[str, Any]], seed: int = 0,
            eta: float | None = None) -> list[dict[str, Any]]:
    """CSV rows from a run's round summaries (game metrics + the probe's, under losses.policy).

    `sft_weight` (RPO, summed NLL): the SFT term's gradient on log π(chosen) relative to DPO's,
    η / σ(−βΔ) at the round's mean implicit margin βΔ (`reward_margin`): both terms' gradients on
    log π(chosen) carry β, DPO's times σ(−βΔ), which shrinks as the margin grows. At η = 0.005 the
    SFT term reaches DPO's weight only once βΔ ≈ ln(1/η) ≈ 5.3.
    """
    rows = []
    for s in summaries:
        m, probe = s.get("metrics", {}), s.get("losses", {}).get("policy", {})
        margin = probe.get("reward_margin")
        weight = (eta / (1.0 / (1.0 + math.exp(min(60.0, margin)))) if eta and margin is not None
                  and method.startswith("rpo-sum") else None)
        rows.append({"seed": seed, "method": method, "eta": eta, "round": s["round"],
                     "reward_margin": margin, "sft_weight": weight, "gold": m.get("gold"), "proxy": probe.get("proxy"),
                     "proxy_margin": probe.get("proxy_margin"), "kl": probe.get("kl"),
                     "chosen_logp": probe.get("chosen_logp"),
                     "gold_win_rate_vs_ref": probe.get("gold_win_rate_vs_ref"),
                     "gold_win_rate_vs_data": m.get("gold_win_rate_vs_data"), "rm_margin": m.get("rm_margin"),
                     "implicit_accuracy": probe.get("implicit_accuracy"),
                     "implicit_gold_accuracy": probe.get("implicit_gold_accuracy"), "length": m.get("length"),
                     "wall_s": s.get("wall_s")})
    first = next((r["chosen_logp"] for r in rows if r["chosen_logp"] is not None), None)
    for r in rows:
        r["chosen_logp_delta"] = None if first is None or r["chosen_logp"] is None else r["chosen_logp"] - first
    return rows


def summarize(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Per method (and seed): peak and final gold, final proxy and KL, drop in log π(chosen) since round 0."""
    out = []
    for seed, method in [(sd, m) for sd in dict.fromkeys(r["seed"] for r in rows) for m in methods]:
        rs = [r for r in rows if r["method"] == method and r["seed"] == seed]
        if not rs:
            continue
        golds = [(r["gold"], r["round"]) for r in rs if r["gold"] is not None]
        peak = max(golds) if golds else (None, None)
        last = rs[-1]
        out.append({"seed": seed, "method": method, "eta": rs[0]["eta"], "rounds": len(rs),
                    "gold_start": rs[0]["gold"], "gold_peak": peak[0], "peak_round": peak[1],
                    "gold_final": last["gold"], "proxy_start": rs[0]["proxy"],
                    "proxy_final": last["proxy"], "kl_final": last["kl"],
                    "chosen_logp_drop": None if last["chosen_logp_delta"] is None else -last["chosen_logp_delta"],
                    "win_rate_final": last["gold_win_rate_vs_ref"], "length_final": last["length"],
                    "sft_weight_final": last["sft_weight"]})
    return out


def _f(x: Any, digits: int = 2) -> str:
    return fmt(x, False, digits)


def summary_table(summary: Sequence[dict[str, Any]], title: str = ""):
    from rich.table import Table

    t = Table(title=title or "over-optimisation on adversarial-rm-v0 (gold = hidden true reward; proxy = BT "
                             "reward model)",
              caption="logπ(c) drop = fall of mean log π(chosen|x) on chosen answers of D since round 0; "
                      "SFT/DPO = RPO's SFT gradient weight relative to DPO's at the last round, η/σ(−βΔ); "
                      "paper = Liu et al. 2024 (Mistral-7B, MT-Bench / AlpacaEval-2 LC, η=0.005, β=0.01): "
                      "another task and scale", header_style="bold")
    for col in ("method", "η", "gold r0", "gold peak (round)", "gold final", "proxy r0", "proxy final", "KL final",
                "logπ(c) drop", "SFT/DPO", "length", "paper"):
        t.add_column(col, justify="left" if col in ("method", "paper") else "right")
    for s in summary:
        peak = "-" if s["gold_peak"] is None else f"{_f(s['gold_peak'])} ({s['peak_round']})"
        eta = s.get("eta")
        paper = PAPER.get(s["method"], PAPER["rpo-sum"] if s["method"].startswith("rpo-sum") else "")
        if s["method"].startswith("rpo-sum") and eta is not None:
            paper = f"η=0.005: {paper}" if eta == PAPER_ETA else f"η={PAPER_ETA:g} in the paper"
        t.add_row(s["method"], "-" if eta is None else f"{eta:g}", _f(s["gold_start"]), peak, _f(s["gold_final"]),
                  _f(s["proxy_start"]), _f(s["proxy_final"]), _f(s["kl_final"]), _f(s["chosen_logp_drop"]),
                  _f(s.get("sft_weight_final"), 3), _f(s["length_final"], 1), paper)
    return t


def plot(rows: Sequence[dict[str, Any]], methods: Sequence[str], path: Path) -> None:
    """Gold and proxy against sqrt(KL) (as in Gao et al. 2022), gold and log π(chosen) by round."""
    from arena.report.figures import new_figure, save_panels

    fig = new_figure(12, 8.5)
    axes = fig.subplots(2, 2)
    (ax_gold, ax_proxy), (ax_round, ax_logp) = axes
    colors = dict(zip(METHODS, ("tab:red", "tab:blue", "tab:green", "tab:olive", "tab:purple")))
    seed = rows[0]["seed"] if rows else 0  # the plot shows the first seed
    for method in methods:
        rs = [r for r in rows if r["method"] == method and r["kl"] is not None and r["seed"] == seed]
        if not rs:
            continue
        x = [math.sqrt(max(r["kl"], 0.0)) for r in rs]
        style = dict(color=colors.get(method), label=method, ms=3, lw=1.2)
        if all(r["gold"] is not None for r in rs):
            ax_gold.plot(x, [r["gold"] for r in rs], "o-", **style)
            ax_round.plot([r["round"] for r in rs], [r["gold"] for r in rs], "o-", **style)
        if all(r["proxy"] is not None for r in rs):
            ax_proxy.plot(x, [r["proxy"] for r in rs], "o-", **style)
        if all(r["chosen_logp_delta"] is not None for r in rs):
            ax_logp.plot([r["round"] for r in rs], [r["chosen_logp_delta"] for r in rs], "o-", **style)
    sqrt_kl = "sqrt KL(π‖π_ref)  [sqrt nats]"
    ax_gold.set(title="gold reward (hidden) vs KL", xlabel=sqrt_kl, ylabel="mean gold reward")
    ax_proxy.set(title="proxy reward (Bradley-Terry RM fitted to D) vs KL", xlabel=sqrt_kl, ylabel="mean proxy score")
    ax_round.set(title="gold reward by round", xlabel="round (updates so far)", ylabel="mean gold reward")
    ax_logp.set(title="log π(chosen | x) relative to round 0", xlabel="round (updates so far)",
                ylabel="Δ mean log π(chosen|x)  [nats]")
    save_panels(fig, path, dpi=100)


def eta_of(recipe: str, params: dict[str, Any]) -> float | None:
    """The η a run trained with (DPO: 0; None for the policy-gradient arms), from its resolved settings."""
    if recipe == "rpo-sum":
        return float(params["eta_sum"])
    if recipe == "rpo-mean":
        return float(params["eta_mean"])
    return 0.0 if recipe == "dpo" else None


def report(seeds: Sequence[SeedView], out_dir: Path, console) -> list[str]:
    """The CSV, the plot (first seed), summary.json and each seed's summary table."""
    from arena.store import read_round_summaries, read_run_config

    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for s in seeds:
        for arm, run in s.runs.items():
            config = read_run_config(run.run_dir)
            eta = eta_of(config.get("recipe", ""), config.get("recipe_params") or {})
            rows += rows_of(arm, read_round_summaries(run.run_dir), s.seed, eta)
            labels += [arm] if arm not in labels else []
    if not rows:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "overoptimization.csv", COLUMNS)
    plot(rows, labels, out_dir / "overoptimization.png")
    summary = summarize(rows, labels)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for s in seeds:
        data = next(iter(s.runs.values())).data_seed
        console.print(summary_table([x for x in summary if x["seed"] == s.seed],
                                    f"over-optimisation on adversarial-rm-v0, seed {s.seed} (data seed {data})"))
    return [f"wrote {out_dir / 'overoptimization.csv'}, {out_dir / 'overoptimization.png'} (seed {seeds[0].seed}) "
            f"and {out_dir / 'summary.json'}"]

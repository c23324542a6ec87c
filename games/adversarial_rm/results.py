"""The overoptimization experiment's results: CSV rows, the per-method summary, the paper's
dynamics checked per seed, their tables and the gold/proxy-against-KL plot (no training here)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

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
GOLD_DROP = 0.1
"""Gold falling more than this below its peak (gold units) counts as over-optimisation."""


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


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else round(r[k], 5) if isinstance(r[k], float) else r[k])
                        for k in COLUMNS})


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
        out.append({"seed": seed, "method": method, "eta": rs[0]["eta"], "rounds": len(rs), "gold_start": rs[0]["gold"], "gold_peak": peak[0],
                    "peak_round": peak[1], "gold_final": last["gold"], "proxy_start": rs[0]["proxy"],
                    "proxy_final": last["proxy"], "kl_final": last["kl"],
                    "chosen_logp_drop": None if last["chosen_logp_delta"] is None else -last["chosen_logp_delta"],
                    "win_rate_final": last["gold_win_rate_vs_ref"], "length_final": last["length"],
                    "sft_weight_final": last["sft_weight"]})
    return out


def _f(x, d=2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


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
        paper = PAPER.get(s["method"].split("@")[0], "")
        if s["method"].startswith("rpo-sum") and eta is not None:
            paper = f"η=0.005: {paper}" if eta == PAPER_ETA else f"η={PAPER_ETA:g} in the paper"
        t.add_row(s["method"], "-" if eta is None else f"{eta:g}", _f(s["gold_start"]), peak, _f(s["gold_final"]),
                  _f(s["proxy_start"]), _f(s["proxy_final"]), _f(s["kl_final"]), _f(s["chosen_logp_drop"]),
                  _f(s.get("sft_weight_final"), 3), _f(s["length_final"], 1), paper)
    return t


def dynamics(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's dynamics, each checked on every seed: [{dynamic, paper, held: {seed: bool|None}, values}]."""
    by = {(s["seed"], s["method"]): s for s in summary}
    seeds = list(dict.fromkeys(s["seed"] for s in summary))
    rpo = next((m for m in ("rpo-sum", "rpo-mean") if any(k[1] == m for k in by)), None)
    paper_rpo = next((m for (_, m) in by if m == f"rpo-sum@{PAPER_ETA:g}"), None)
    if paper_rpo is None and any(k[1] == "rpo-sum" and by[k].get("eta") == PAPER_ETA for k in by):
        paper_rpo = "rpo-sum"
    checks = []

    def overopt(s):
        return (s["proxy_final"] > s["proxy_start"] and s["gold_final"] < s["gold_peak"] - GOLD_DROP,
                f"proxy {_f(s['proxy_start'])}->{_f(s['proxy_final'])}, gold peak {_f(s['gold_peak'])} "
                f"final {_f(s['gold_final'])}")

    def gold_above(a, b):
        return (a["gold_final"] > b["gold_final"], f"{_f(a['gold_final'])} vs {_f(b['gold_final'])}")

    def logp_less(a, b):
        return (a["chosen_logp_drop"] < 0.5 * b["chosen_logp_drop"],
                f"{_f(a['chosen_logp_drop'])} vs {_f(b['chosen_logp_drop'])}")

    def add(name, paper, fn, *methods):
        held, values = {}, {}
        for seed in seeds:
            ss = [by.get((seed, m)) for m in methods]
            if any(x is None or x["gold_final"] is None for x in ss):
                held[seed] = None
                continue
            held[seed], values[seed] = fn(*ss)
        if any(v is not None for v in held.values()):
            checks.append({"dynamic": name, "paper": paper, "held": held, "values": values})

    add(f"baseline over-optimises: proxy up, gold > {GOLD_DROP:g} below its peak", "yes (Gao et al. 2022)",
        overopt, "baseline")
    add("DPO over-optimises (same test)", "DPO is what RPO fixes", overopt, "dpo")
    if rpo:
        add(f"{rpo} does not over-optimise", "yes", lambda s: (not overopt(s)[0], overopt(s)[1]), rpo)
        add(f"{rpo} ends above DPO on gold", "RPO > DPO: MT 7.381 vs 7.278", gold_above, rpo, "dpo")
        add(f"log π(chosen) falls < half as far under {rpo} as DPO", "much less (qualitative)", logp_less,
            rpo, "dpo")
    if paper_rpo and paper_rpo != rpo:
        add(f"at the paper's η={PAPER_ETA:g}: no over-optimisation", "yes", lambda s: (not overopt(s)[0],
                                                                                      overopt(s)[1]), paper_rpo)
        add(f"at the paper's η={PAPER_ETA:g}: ends above DPO on gold", "RPO > DPO", gold_above, paper_rpo, "dpo")
        add(f"at the paper's η={PAPER_ETA:g}: log π(chosen) falls < half as far as DPO", "much less", logp_less,
            paper_rpo, "dpo")
    return checks


def dynamics_table(checks: Sequence[dict[str, Any]]):
    from rich.table import Table

    t = Table(title="the paper's dynamics, per seed", header_style="bold",
              caption="held = seeds on which the dynamic appeared / seeds run")
    seeds = list(dict.fromkeys(k for c in checks for k in c["held"]))
    for col in ("dynamic", "paper", "held", *[f"seed {s}" for s in seeds]):
        t.add_column(col, justify="left" if col in ("dynamic", "paper") else "right")
    for c in checks:
        ran = [v for v in c["held"].values() if v is not None]
        cells = [("-" if c["held"][s] is None else ("yes " if c["held"][s] else "no ") + c["values"].get(s, ""))
                 for s in seeds]
        t.add_row(c["dynamic"], c["paper"], f"{sum(ran)}/{len(ran)}", *cells)
    return t


def plot(rows: Sequence[dict[str, Any]], methods: Sequence[str], path: Path) -> None:
    """Gold and proxy against sqrt(KL) (as in Gao et al. 2022), gold and log π(chosen) by round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
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
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""The attacks of a run in its report: one section per `<run>/attacks/<name>/attack.json`.

Each section has the attack's settings, a table per attacked round (steps-to-exploit with its
95% interval, how many seeds exploited the target, how many are censored, every seed's value,
the success at the end) and the attack's `attack.png`. A seed not exploited within the budget is
a censored value: `≥ budget` in the table, an open triangle in the plot, and counted.

`attack.json` is written by `arena attack` (`arena.attack.report.attack_document`); it is read
here as untrusted data (a value of the wrong type shows as `–`, a file that is not an attack
document as a one-line note).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from arena.report.page import GE, censored_value, ci, count_of, e, fmt, json_section, num, table, text


def attack_dirs(run_dir: Path) -> list[Path]:
    base = Path(run_dir) / "attacks"
    return sorted(d for d in base.iterdir() if d.is_dir()) if base.is_dir() else []


def attack_section(out_dir: Path, run_name: str) -> str:
    """One attack's settings, per-round table and plot."""
    head = f"<h3>Attack {e(out_dir.name)}</h3>"
    path = out_dir / "attack.json"
    if not path.is_file():
        return head + (f'<p class="note">No attack.json yet (the attack was interrupted before it ended, or an older '
                       f'arena ran it): running the same <code>arena attack {e(run_name)} --name '
                       f'{e(out_dir.name)} …</code> again plays only what is missing and writes it.</p>')
    return json_section(head, out_dir, "attack.json", _attack_body, "attack.png",
                        f"steps to exploit of attack {out_dir.name}")


def _attack_body(doc: Any) -> str:
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list):
        raise ValueError("not an attack document (no list of rounds)")
    metric, budget = text(doc.get("metric", "success")), num(doc.get("budget"))
    rounds = [r for r in doc["rounds"] if isinstance(r, dict)]
    parts = [f'<p class="meta">on {e(text(doc.get("seat", "?")))} checkpoints: {e(text(doc.get("attacker", "?")))}'
             f' · exploit: mean {e(metric)} over {e(fmt(doc.get("window"), "g"))} steps ≥ '
             f'{e(fmt(doc.get("threshold"), "g"))} · budget {e(fmt(budget, "g"))} steps</p>']
    rows, censored, attacks = [], 0, 0
    for r in rounds:
        seeds = [s for s in r.get("per_seed") or [] if isinstance(s, dict)]
        n, exploited = num(r.get("seeds")), num(r.get("exploited"))
        cens = int(n - exploited) if n is not None and exploited is not None else sum(
            s.get("steps_to_exploit") is None for s in seeds)
        censored, attacks = censored + cens, attacks + int(n if n is not None else len(seeds))
        per_seed = ", ".join(censored_value(budget, True, "g") if s.get("steps_to_exploit") is None
                             else e(fmt(s.get("steps_to_exploit"), "g")) for s in seeds)
        rows.append([e(fmt(r.get("round"), "g")),
                     ci(r.get("steps"), r.get("steps_lower"), r.get("steps_upper"), ".1f", censored=cens > 0),
                     e(f"{fmt(exploited, 'g')}/{fmt(n, 'g')}"),
                     f'<span class="cens">{cens}</span>' if cens else "0", per_seed or "–",
                     ci(r.get("success"), r.get("success_lower"), r.get("success_upper"), ".2f")])
    parts.append(table(["round", "steps to exploit (95% CI)", "exploited", "censored", "each seed",
                        f"{e(metric)} at end (95% CI)"], rows, left=0))
    parts.append(f'<p class="note">Means over attack seeds, 95% bootstrap intervals. Censored: '
                 f'{count_of(censored, attacks)} attacks did not exploit the target within the budget; each counts as '
                 f'the budget, shown <span class="cens">{e(GE)}{e(fmt(budget, "g"))}</span>, so a round with one is a '
                 f'lower bound (<span class="cens">{e(GE.strip())}</span>; open triangles in the plot).</p>')
    return "".join(parts)

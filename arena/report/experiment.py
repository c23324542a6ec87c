"""An experiment's results as HTML: its `summary.html` over seeds, and the section a run's report shows.

    write_summary_page(out_dir, dynamics)   <out_dir>/summary.html, beside the experiment's runs:
                                            the claims (each seed's value, the paper's figure, held on
                                            n of m seeds), the differences between arms (95% intervals
                                            over seeds, how many values are censored), one plot per
                                            series (a line per arm and seed), the arms, and a link to
                                            each run's report.html
    experiment_section(run_dir)             in a run's report.html: the same claims, differences and
                                            plots from `<run>/experiment.json` (that run's slice)

Both read the `dynamics.json` shape (`arena.report.dynamics`, checked first: a wrong type is a
one-line `ArenaError`). Censored values (a budget stopped the measurement) are `≥ x` in tables,
open triangles in plots, and counted. Every text from the file is escaped; the page loads nothing.
"""
from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

from arena.report import figures
from arena.report.dynamics import Claim, Dynamics, check_dynamics, read_dynamics
from arena.report.page import censored_value, ci, count_of, document, e, fmt, png_img, table, write_page
from arena.types import ArenaError

SUMMARY_FILE = "summary.html"
RUN_FILE = "experiment.json"


def write_summary_page(out_dir: Path, dynamics: dict[str, Any]) -> Path:
    """Write `<out_dir>/summary.html` (atomically) for an experiment's `dynamics.json` document."""
    out_dir = Path(out_dir)
    page = build_summary_page(out_dir, check_dynamics(dynamics))
    path = out_dir / SUMMARY_FILE
    return write_page(path, page)


def build_summary_page(out_dir: Path, d: Dynamics) -> str:
    name = d.title or d.experiment or "experiment"
    parts = [f"<h1>{e(name)}</h1>", _meta(d)]
    parts += ["<h2>Claims</h2>", claims_table(d)]
    parts += ["<h2>Differences between arms</h2>", differences_table(d)]
    parts += ["<h2>Over rounds</h2>", series_figures(d)]
    parts += ["<h2>Runs</h2>", runs_table(d, out_dir)]
    return document(f"{name} · summary", parts)


def experiment_section(run_dir: Path) -> str:
    """A run's slice of its experiment (`<run>/experiment.json`), or '' when it has none."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return ""
    try:
        d = read_dynamics(path)
    except ArenaError as err:
        return f'<h2>Experiment</h2><p class="note">{e(err)}</p>'
    name = d.title or d.experiment or "experiment"
    return "\n".join([f"<h2>Experiment: {e(name)}</h2>", _meta(d, when=False), claims_table(d),
                      differences_table(d, empty=""), series_figures(d, empty="")])


def _meta(d: Dynamics, when: bool = True) -> str:
    bits = [f"experiment {e(d.experiment)}" if d.experiment else "", f"after {e(d.source)}" if d.source else "",
            f"seeds {e(', '.join(d.seeds))}" if d.seeds else "",
            f"arms {e(', '.join(a.name for a in d.arms))}" if d.arms else "",
            f"written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" if when else ""]
    return f'<p class="meta">{" · ".join(b for b in bits if b)}</p>'


def _seeds_of(d: Dynamics, per_seed_lists: list) -> list[str]:
    seen = dict.fromkeys(d.seeds)
    for per_seed in per_seed_lists:
        for s in per_seed:
            seen.setdefault(s.seed)
    return list(seen)


def _held(held: bool | None) -> str:
    return {True: ' <span class="yes" title="held">✓</span>',
            False: ' <span class="no" title="did not hold">✗</span>'}.get(held, "")


def _claim_cells(c: Claim, seeds: list[str]) -> tuple[list[str], int, int]:
    """Each seed's cell, and (censored values, values) of the claim."""
    by_seed = {s.seed: s for s in c.per_seed}
    cells, censored, values = [], 0, 0
    for seed in seeds:
        s = by_seed.get(seed)
        if s is None:
            cells.append("–")
            continue
        if s.first is not None or s.last is not None:
            shown = [censored_value(x, cens, ".4g") for x, cens in ((s.first, s.first_censored),
                                                                     (s.last, s.last_censored)) if x is not None]
            censored += sum(cens for x, cens in ((s.first, s.first_censored), (s.last, s.last_censored))
                            if x is not None)
            values += len(shown)
            cells.append(" → ".join(shown) + _held(s.held))
        else:
            cells.append(e(s.value or "–") + _held(s.held))
    return cells, censored, values


def claims_table(d: Dynamics) -> str:
    if not d.claims:
        return '<p class="note">No claims.</p>'
    seeds = _seeds_of(d, [c.per_seed for c in d.claims])
    rows, any_censored = [], False
    for c in d.claims:
        cells, censored, values = _claim_cells(c, seeds)
        any_censored |= censored > 0
        measured = c.measured if c.measured is not None else sum(s.held is not None for s in c.per_seed)
        held = c.held if c.held is not None else sum(s.held is True for s in c.per_seed)
        rows.append([e(c.label), e(c.arm or "–"), e(c.paper or "–")] + cells
                    + [f"{held} of {measured} seeds" if measured else "–",
                       (f'<span class="cens">{count_of(censored, values)}</span>' if censored
                        else count_of(0, values)) if values else "–"])
    header = ["claim", "arm", "the paper's figure"] + [f"seed {e(s)}" for s in seeds] + ["held", "censored"]
    return (table(header, rows, left=2, wrap=(2,))
            + '<p class="note">Each seed: first round → last round, ✓ where the claim held on it, ✗ where it did '
              'not. ' + ('<span class="cens">≥</span>: a censored value (the budget ran out before it was '
                         'measured: the truth is at least this); censored: how many of the claim\'s values are.'
                         if any_censored else "censored: how many of the claim's values a budget cut short.")
            + "</p>")


def differences_table(d: Dynamics, empty: str = '<p class="note">No differences between arms.</p>') -> str:
    if not d.differences:
        return empty
    seeds = _seeds_of(d, [x.per_seed for x in d.differences])
    rows = []
    for x in d.differences:
        by_seed = {s.seed: s for s in x.per_seed}
        cells = [_difference_value(by_seed[s].value, by_seed[s].censored) if s in by_seed else "–" for s in seeds]
        # counted from the seeds shown; the stated fraction only where no seed is listed
        k, n = sum(s.censored for s in x.per_seed), len(x.per_seed)
        censored = count_of(k, n) if n else f"{x.censored_fraction:.0%}" if x.censored_fraction is not None else "–"
        marked = k if n else x.censored_fraction
        rows.append([e(x.label), e(" − ".join(x.arms) or "–")] + cells
                    + [ci(x.mean, x.lower, x.upper, "+.3g"),
                       f'<span class="cens">{e(censored)}</span>' if marked else e(censored)])
    header = ["difference", "arms"] + [f"seed {e(s)}" for s in seeds] + ["mean (95% CI)", "censored"]
    return (table(header, rows, left=2)
            + '<p class="note">Paired by seed: the first arm minus the second; 95% interval over seeds. '
              '<span class="cens">*</span>: computed from a censored value (a budget ran out), so a bound rather '
              'than a measurement; censored: how many seeds\' differences are.</p>')


def _difference_value(value: float | None, censored: bool) -> str:
    if not censored or value is None:
        return e(fmt(value, "+.3g"))
    return f'<span class="cens" title="from a censored value: a bound">{e(fmt(value, "+.3g"))}*</span>'


def series_figures(d: Dynamics, empty: str = '<p class="note">No series.</p>') -> str:
    """One figure per series key: a line per (arm, seed), censored points open, counted in the legend."""
    if not d.series:
        return empty
    by_key: dict[str, list] = {}
    for s in d.series:
        by_key.setdefault(s.key, []).append(s)
    imgs = []
    for key, group in by_key.items():
        label = group[0].label or key
        lines = [(s.arm or "?", s.seed, s.x, s.y, s.censored) for s in group]
        fig = figures.series_figure(label, lines)
        imgs.append(png_img(figures.png_bytes(fig), f"{label}: each arm and seed over rounds", "mid"))
    return ('<div class="figs">' + "".join(imgs) + '</div><p class="note">One line per arm and seed; open '
            'triangles: censored values (at least the value drawn), counted in each legend.</p>')


def run_link(out_dir: Path, path: str, run: str) -> tuple[str, bool]:
    """(href of the run's report.html relative to `out_dir`, whether that file is there)."""
    p = Path(path or run)
    target = p if p.is_absolute() else Path(out_dir) / p
    rel = os.path.relpath(p, out_dir) if p.is_absolute() else p.as_posix()
    # quoted: a path is data, never a URL scheme (`javascript:` becomes a harmless relative path)
    return urllib.parse.quote(Path(rel, "report.html").as_posix()), (target / "report.html").is_file()


def runs_table(d: Dynamics, out_dir: Path) -> str:
    if not d.runs and not d.arms:
        return '<p class="note">No runs listed.</p>'
    rows = []
    for r in d.runs:
        href, there = run_link(out_dir, r.path, r.run)
        report = (f'<a href="{e(href)}">report.html</a>' if there
                  else f'<span class="note">no report.html yet: <code>arena report {e(r.path or r.run)}</code></span>')
        rows.append([e(r.arm or "–"), e(r.seed), e(r.run or r.path or "–"), report])
    arms = table(["arm", "what it is"], [[e(a.name), e(a.description or "–")] for a in d.arms], wrap=(1,)) \
        if d.arms else ""
    return arms + (table(["arm", "seed", "run", "its report"], rows, left=4) if rows else "")

"""An experiment's summary.html from its dynamics.json (schema 1), and a run's experiment section:
claims with each seed's value and the paper's figure, differences with intervals, one plot per
series with censored points open, links to each run's report; untrusted input escaped or refused."""
from __future__ import annotations

import base64
import html
import io
import json
import re

import pytest

from arena.report import figures
from arena.report.dynamics import check_dynamics
from arena.report.experiment import write_summary_page
from arena.types import ArenaError

BUDGET = 120.0


def dynamics(arms=("game", "initial"), seeds=(0, 1, 2)) -> dict:
    """A made-up checkability experiment: steps to exploit rise under the game (censored at the
    budget on seeds 1 and 2), stay low for the control; sneaky success falls under the game."""
    runs, series = [], []
    for arm in arms:
        for seed in seeds:
            runs.append({"arm": arm, "seed": seed, "run": f"ck-{arm}-s{seed}", "path": f"ck-{arm}-s{seed}"})
            steps = [min(40.0 + 10 * seed + (30 if arm == "game" else 5) * k, BUDGET) for k in range(4)]
            series.append({"key": "steps", "label": "steps to exploit", "arm": arm, "seed": seed,
                           "x": [0, 1, 2, 3], "y": steps, "censored": [y >= BUDGET for y in steps]})
            series.append({"key": "sneaky", "label": "sneaky success", "arm": arm, "seed": seed,
                           "x": [0, 1, 2, 3], "y": [0.6 - (0.1 * k if arm == "game" else 0) for k in range(4)]})
    return {
        "schema": 1, "experiment": "checkability", "title": "Checkability <script>alert(1)</script>",
        "source": "Kirchner et al. 2024",
        "arms": [{"name": "game", "description": "the game"}, {"name": "initial", "description": "no <i>game</i>"}],
        "seeds": list(seeds), "runs": runs,
        "claims": [{"key": "steps", "label": "steps to exploit", "arm": "game", "direction": "rises",
                    "paper": "rises <b>(Fig. 5)</b>", "held": 2, "measured": 3,
                    "per_seed": [{"seed": s, "value": "…", "first": 40.0 + 10 * s, "last": BUDGET,
                                  "first_censored": False, "last_censored": s > 0, "held": s != 1} for s in seeds]},
                   {"key": "sneaky", "label": "sneaky success", "arm": "game", "paper": "falls",
                    "per_seed": [{"seed": s, "value": "0.6 -> 0.3", "held": True} for s in seeds]}],
        "differences": [{"key": "steps_last", "label": "steps, last round", "arms": ["game", "initial"],
                         "per_seed": [{"seed": s, "value": 30.0 - s, "censored": s == 2} for s in seeds],
                         "mean": 29.0, "lower": 28.0, "upper": 30.0, "censored_fraction": 1 / 3}],
        "series": series}


def rows_of(page: str, heading: str) -> list[list[str]]:
    """The cells (tags stripped) of the first table after `heading`."""
    part = page[page.index(heading):]
    part = part.split("</table>")[0]
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", part)]


def test_summary_page_shows_claims_differences_plots_and_links(tmp_path):
    (tmp_path / "ck-game-s0").mkdir()
    (tmp_path / "ck-game-s0" / "report.html").write_text("<html></html>")
    path = write_summary_page(tmp_path, dynamics())
    assert path == tmp_path / "summary.html"
    page = path.read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # text, never markup
    assert "<b>(Fig. 5)</b>" not in page and "rises &lt;b&gt;(Fig. 5)&lt;/b&gt;" in page
    assert "<i>game</i>" not in page

    claims = rows_of(page, "<h2>Claims</h2>")
    assert claims[0] == ["claim", "arm", "the paper's figure", "seed 0", "seed 1", "seed 2", "held", "censored"]
    assert claims[1] == ["steps to exploit", "game", "rises <b>(Fig. 5)</b>", "40 → 120 ✓", "50 → ≥ 120 ✗",
                         "60 → ≥ 120 ✓", "2 of 3 seeds", "2 of 6"]
    assert claims[2][3:] == ["0.6 -> 0.3 ✓"] * 3 + ["3 of 3 seeds", "–"]  # the experiment's words, as written

    diffs = rows_of(page, "<h2>Differences between arms</h2>")
    assert diffs[1] == ["steps, last round", "game − initial", "+30", "+29", "+28*", "+29 [+28, +30]", "1 of 3"]

    plots = re.findall(r'<img class="mid" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [alt for alt, _ in plots] == ["steps to exploit: each arm and seed over rounds",
                                         "sneaky success: each arm and seed over rounds"]  # one per series key
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for _, b in plots)

    arms_table, runs_table = page.split("<h2>Runs</h2>")[1].split("</table>", 1)
    assert rows_of(arms_table, "<table>")[1:] == [["game", "the game"], ["initial", "no <i>game</i>"]]
    runs = rows_of(runs_table, "<table>")
    assert runs[0] == ["arm", "seed", "run", "its report"] and len(runs) == 1 + 6
    assert ["game", "0", "ck-game-s0", "report.html"] in runs
    assert '<a href="ck-game-s0/report.html">report.html</a>' in page  # relative: the folder can move
    assert page.count("<a href=") == 1  # only reports that are there are linked
    assert "no report.html yet: arena report ck-initial-s2" in re.sub(r"<[^>]+>", "", page)


def test_run_links_are_relative_and_never_a_url_scheme(tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    for name in ("abs-run", "javascript:alert(1)"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.html").write_text("")
    d = {"runs": [{"arm": "a", "seed": 0, "run": "abs", "path": str(tmp_path / "abs-run")},
                  {"arm": "a", "seed": 1, "run": "js", "path": "../javascript:alert(1)"}]}
    page = write_summary_page(out, d).read_text()
    hrefs = re.findall(r'<a href="([^"]+)"', page)
    assert hrefs == ["../abs-run/report.html", "../javascript%3Aalert%281%29/report.html"]


def test_a_summary_of_nothing_still_renders(tmp_path):
    page = write_summary_page(tmp_path, {}).read_text()
    for note in ("No claims.", "No differences between arms.", "No series.", "No runs listed."):
        assert note in page


@pytest.mark.parametrize("doc, where", [
    ([], "the document must be a JSON object"),
    ({"schema": 2}, "schema 2 is newer"),
    ({"claims": {"a": 1}}, "claims must be a list"),
    ({"claims": [{"per_seed": [{"first": "abc"}]}]}, 'claims[0].per_seed[0].first must be a number, not "abc"'),
    ({"claims": [{"per_seed": [{"last_censored": "yes"}]}]}, "claims[0].per_seed[0].last_censored must be true or"),
    ({"differences": [{"arms": ["game", 3]}]}, "differences[0].arms[1] must be a string"),
    ({"series": [{"x": [0, 1], "y": [1.0]}]}, "series[0] has 2 x, 1 y"),
    ({"series": [{"x": [0], "y": ["a"]}]}, "series[0].y[0] must be a number"),
    ({"runs": [{"path": ["a"]}]}, "runs[0].path must be a string"),
    ({"seeds": [0.5]}, "seeds[0] must be a whole number or a string"),
])
def test_wrong_types_are_one_line_errors_naming_the_field(tmp_path, doc, where):
    with pytest.raises(ArenaError) as err:
        write_summary_page(tmp_path, doc)
    assert where in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "summary.html").exists()


def test_checked_dynamics_keep_values_and_fill_what_is_missing():
    d = check_dynamics(dynamics(seeds=(0, 1)))
    (c, _), (x,) = d.claims, d.differences
    assert [(s.seed, s.first, s.last, s.last_censored, s.held) for s in c.per_seed] == [
        ("0", 40.0, BUDGET, False, True), ("1", 50.0, BUDGET, True, False)]
    assert (x.mean, x.lower, x.upper, x.arms) == (29.0, 28.0, 30.0, ("game", "initial"))
    sneaky = [s for s in d.series if s.key == "sneaky"][0]
    assert sneaky.censored == (False,) * 4  # no censored list: nothing censored
    assert check_dynamics({"claims": [{"key": "k"}]}).claims[0].label == "k"


def test_series_figure_draws_censored_points_open_and_counts_them():
    lines = [("game", "0", [0, 1, 2], [10.0, 20.0, 30.0], [False, False, True]),
             ("initial", "0", [0, 1, 2], [10.0, 11.0, 12.0], [False, False, False])]
    fig = figures.series_figure("steps", lines)
    ax = fig.axes[0]
    open_points = [(x, y) for line in ax.lines if line.get_marker() == "^" for x, y in zip(line.get_xdata(),
                                                                                           line.get_ydata())]
    assert open_points == [(2.0, 30.0)]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["game", "initial", "censored (≥): 1 of 6 points"]
    buf = io.BytesIO()
    fig.savefig(buf, format="png")


@pytest.mark.slow
def test_a_runs_report_shows_its_experiment_slice_and_survives_a_broken_one(runs, capsys):
    from arena.cli import main

    assert main(["train", "duel-v0", "--rounds", "1", "--episodes", "2", "--run", "e", "--plain"]) == 0
    d = dynamics(arms=("game",), seeds=(1,))
    d["claims"][0].update(held=0, measured=1)  # the run's slice: its one seed
    (runs / "e" / "experiment.json").write_text(json.dumps(d))
    assert main(["report", "e"]) == 0
    page = (runs / "e" / "report.html").read_text()
    assert "<h2>Experiment: Checkability &lt;script&gt;" in page
    claims = rows_of(page, "<h2>Experiment")
    assert claims[1] == ["steps to exploit", "game", "rises <b>(Fig. 5)</b>", "50 → ≥ 120 ✗", "0 of 1 seeds",
                         "1 of 2"]
    assert page.index("<h2>Experiment") < page.index("<h2>Over rounds</h2>")  # claims first
    (runs / "e" / "experiment.json").write_text(json.dumps({"claims": [{"held": "many"}]}))
    assert main(["report", "e"]) == 0  # the rest of the report is still written
    page = (runs / "e" / "report.html").read_text()
    assert "claims[0].held must be a whole number" in page and "<h2>Rounds</h2>" in page

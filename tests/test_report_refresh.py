"""A run's report.html is rewritten by every command that adds to the run: after `tournament` it has
that tournament's ratings, after `attack` that attack's table with its censored values marked and
counted; training rewrites it under the lock it holds; a run another process holds is left alone."""
from __future__ import annotations

import json
import re

import pytest

from arena.cli import main
from arena.report import figures
from arena.report.html import refresh_report
from arena.runs.lock import RunLock
from arena.types import ArenaError

STRONG = "verifier=scripted:spot-check?check_rate=1"  # a verifier that checks every step: attacks take long


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end)]


@pytest.mark.slow
def test_tournament_and_attack_rewrite_the_report_with_censored_values_marked(runs, capsys):
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "2", "--episodes", "8",
                 "--run", "r", "--plain", "--seat", STRONG]) == 0
    report = runs / "r" / "report.html"
    assert f"report: {report}" in capsys.readouterr().out
    page = report.read_text()
    assert "No tournament yet" in page and "No attack yet" in page

    assert main(["tournament", "r", "-n", "4", "--bootstrap", "50", "--plain"]) == 0
    assert f"report: {report}" in capsys.readouterr().out
    page = report.read_text()
    tournament = section(page, "<h2>Tournaments</h2>", "<h2>Attacks</h2>")
    doc = json.loads((runs / "r/tournaments/default/tournament.json").read_text())
    assert "No tournament yet" not in page and "Tournament default" in tournament
    for r in doc["ratings"]:  # every rating of the tournament, with its interval
        assert f"<td class=l>{r['label']}</td><td>{r['bt_rating']:.0f} <span class=\"ci\">" in tournament
    assert 'alt="cross-play heatmap of tournament default"' in tournament

    # 2 seeds x 2 rounds, 5 steps: too few to fool a verifier that checks every step (test_attack: >= 6)
    assert main(["attack", "r", "--seat", "verifier", "--seeds", "2", "--budget", "5"]) == 0
    out = capsys.readouterr().out
    units = [json.loads(p.read_text()) for p in sorted((runs / "r/attacks/default/units").glob("*.json"))]
    censored = sum(u["steps_to_exploit"] is None for u in units)
    assert len(units) == 4 and censored > 0  # the premise: some attacks ran out of budget
    assert f"censored: {censored} of 4 attacks" in " ".join(out.split())  # the terminal table counts them too
    assert f"report: {report}" in out
    page = report.read_text()
    attack = section(page, "<h2>Attacks</h2>", "<h2>Config</h2>")
    assert "Attack default" in attack and "No attack yet" not in page
    assert f"Censored: {censored} of 4 attacks did not exploit" in attack
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(\d)/(\d)</td><td>(.*?)</td><td>(.*?)</td>", attack)
    assert [int(r[0]) for r in rows] == [0, 1]
    for k, steps, exploited, seeds, cens, each in rows:
        mine = [u for u in units if u["round"] == int(k)]
        n_cens = sum(u["steps_to_exploit"] is None for u in mine)
        assert (int(exploited), int(seeds)) == (2 - n_cens, 2)
        assert ("≥ " in steps) == (n_cens > 0)  # a mean over a censored seed is a lower bound, marked
        assert each.count("≥ 5") == n_cens and (str(n_cens) in cens)
        shown = [u["steps_to_exploit"] for u in sorted(mine, key=lambda u: u["seed"])]
        assert re.sub(r"<[^>]+>", "", each) == ", ".join("≥ 5" if s is None else str(s) for s in shown)
    assert 'alt="steps to exploit of attack default"' in attack  # the plot, embedded
    doc = json.loads((runs / "r/attacks/default/attack.json").read_text())
    assert [r["censored"] for r in doc["rounds"]] == [sum(u["steps_to_exploit"] is None for u in units
                                                          if u["round"] == k) for k in (0, 1)]
    assert "Tournament default" in page  # the tournament is still there


@pytest.mark.slow
def test_a_run_held_by_another_process_is_not_rewritten_and_the_command_still_succeeds(runs, capsys, monkeypatch):
    import arena.report.html as html

    monkeypatch.setattr(html, "LOCK_WAIT_S", 0.2)  # how long a command waits for the holder to let go
    assert main(["train", "duel-v0", "--rounds", "1", "--episodes", "4", "--run", "d", "--plain"]) == 0
    report = runs / "d" / "report.html"
    before = report.read_text()
    lock = RunLock(runs / "d").acquire()  # as a training of the run would hold it
    try:
        with pytest.raises(ArenaError, match="in use by process"):
            refresh_report(runs / "d", wait_s=0.1)
        capsys.readouterr()
        assert main(["tournament", "d", "-n", "2", "--bootstrap", "20", "--plain"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert f"{report} not rewritten: run 'd' is in use by process" in out and "arena report d" in out
        assert report.read_text() == before
        assert main(["report", "d"]) == 2 and "in use by" in capsys.readouterr().err
        assert refresh_report(runs / "d", lock=lock) == report  # the holder itself may
    finally:
        lock.release()
    assert "Tournament default" in report.read_text()


@pytest.mark.slow
def test_training_rewrites_the_report_between_rounds_under_its_own_lock(runs, monkeypatch):
    import arena.cli.train as train
    import arena.report.html as html

    calls = []
    real = html.refresh_report

    def spy(run_dir, *, lock=None, **kw):
        calls.append(lock is not None and lock.held)
        return real(run_dir, lock=lock, **kw)

    monkeypatch.setattr(train, "REPORT_EVERY_S", 0.0)
    monkeypatch.setattr(html, "refresh_report", spy)
    assert main(["train", "duel-v0", "--rounds", "3", "--episodes", "2", "--run", "t", "--plain"]) == 0
    assert calls == [True, True, True, False]  # after each round with the trainer's lock; then once more


@pytest.mark.slow
def test_a_training_that_fails_leaves_a_report_of_the_rounds_it_completed(runs, monkeypatch, capsys):
    from arena.selfplay import Trainer

    real = Trainer.play_round

    def play_round(self, k, history):
        if k == 2:
            raise RuntimeError("the machine fell over")
        return real(self, k, history)

    monkeypatch.setattr(Trainer, "play_round", play_round)
    with pytest.raises(RuntimeError, match="fell over"):
        main(["train", "duel-v0", "--rounds", "4", "--episodes", "2", "--run", "f", "--plain"])
    assert capsys.readouterr().err == ""  # the one thing a failed command says is its error
    page = (runs / "f" / "report.html").read_text()
    assert section(page, "<h2>Rounds</h2>", "<h2>Tournaments</h2>").count("<tr>") == 1 + 2  # rounds 0 and 1


def test_attack_figure_draws_censored_values_open_and_counts_them():
    fig = figures.attack_figure("t", [0, 3], [(4.0, False), (9.0, True)], [3.0, 8.0], [5.0, 10.0],
                                [[(3.0, False), (5.0, False)], [(8.0, False), (10.0, True)]],
                                [(0.5, 0.4, 0.6), (0.2, 0.1, 0.3)], 10, "fooled")
    ax = fig.axes[0]
    open_points = [(x, y) for line in ax.lines if line.get_marker() == "^" and line.get_markerfacecolor() == "white"
                   for x, y in zip(line.get_xdata(), line.get_ydata())]
    filled = [(x, y) for line in ax.lines if line.get_marker() == "o" for x, y in zip(line.get_xdata(),
                                                                                      line.get_ydata())]
    assert sorted(y for _, y in open_points) == [9.0, 10.0]  # the censored mean and the censored seed
    assert (0.0, 4.0) in filled and all(y != 10.0 for _, y in filled)  # never drawn as a measurement
    assert "censored (≥): 1 of 4 attacks" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert figures.png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_every_command_of_the_reports_doc_runs_and_leaves_a_report_with_all_it_added(runs, capsys):
    import shlex
    from pathlib import Path

    doc = Path(__file__).parent.parent / "docs" / "reports.md"
    commands = [shlex.split(line)[1:] for line in doc.read_text().splitlines() if line.startswith("arena ")]
    assert [c[0] for c in commands] == ["train", "tournament", "attack", "report"]
    for argv in commands:
        assert main(argv) == 0, argv
    page = (runs / "pv-demo" / "report.html").read_text()
    assert "Tournament default" in page and "Attack default" in page
    assert f"report: {runs / 'pv-demo' / 'report.html'}" in capsys.readouterr().out

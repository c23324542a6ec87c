"""Tournaments: over a scripted self-play run, resume after interruption, bad input, rating methods."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from arena import tournament as T
from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from arena.tournament import play as playing
from arena.tournament import report
from arena.types import ArenaError

GAME = "prover-verifier-v1"


@pytest.fixture(scope="module")
def pvg_runs(tmp_path_factory) -> Path:
    """A scripted prover-verifier run with 2 rounds: checkpoints round-0, round-1 per seat."""
    base = tmp_path_factory.mktemp("runs")
    trainer = new_run(TrainConfig(game=GAME, recipe="scripted", rounds=2, episodes=8, concurrency=4,
                                  run="pvg"), base)
    trainer.run(trainer.restore())
    return base


def cfg(**kw) -> T.TournamentConfig:
    return T.TournamentConfig(**{"run": "pvg", "episodes": 4, "concurrency": 4, "bootstrap": 50, **kw})


def rows(run_dir: Path, name: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "arena.db") as c:
        return c.execute("SELECT pairing, idx, seed, seats FROM matches WHERE tournament=?", (name,)).fetchall()


@pytest.fixture
def no_png(monkeypatch):
    """Skip drawing the heatmap (the slow part) where a test is about something else."""
    monkeypatch.setattr(report, "heatmap", lambda result, path: Path(path).write_bytes(b""))


class CountingPlay:
    """Wraps `arena.tournament.play.play` (the runner) to count pairings played."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = playing.play

        def fake(env_fn, seats, n, **kw):
            self.calls.append(kw["seed"])
            return real(env_fn, seats, n, **kw)

        monkeypatch.setattr(playing, "play", fake)


def test_tournament_over_selfplay_run_writes_tables_and_files(pvg_runs, monkeypatch):
    counter = CountingPlay(monkeypatch)
    result = T.run_tournament(cfg(name="full"), pvg_runs)
    run_dir = pvg_runs / "pvg"
    # Cross-play: 2 prover checkpoints x 2 verifier checkpoints, one play call each, same seed.
    assert len(counter.calls) == 4 and len(set(counter.calls)) == 1
    stored = rows(run_dir, "full")
    assert len(stored) == 4 * 4
    seeds_per_idx = {}
    for _, idx, seed, _ in stored:
        seeds_per_idx.setdefault(idx, set()).add(seed)
    assert all(len(s) == 1 for s in seeds_per_idx.values())  # same episode seeds for every pairing

    out = run_dir / "tournaments" / "full"
    assert out == result.out_dir
    assert (out / "crossplay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "ratings.csv") as f:
        table = list(csv.DictReader(f))
    keys = {r["key"] for r in table}
    assert keys == {f"{GAME}/prover/round-0", f"{GAME}/prover/round-1",
                    f"{GAME}/verifier/round-0", f"{GAME}/verifier/round-1"}
    for r in table:
        assert float(r["bt_lower"]) <= float(r["bt_rating"]) <= float(r["bt_upper"])
        assert r["method"] == "paired" and int(r["episodes"]) == 8
    with open(out / "crossplay.csv") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 2 * 4 and {c["paid_seat"] for c in cells} == {"prover", "verifier"}
    doc = json.loads((out / "tournament.json").read_text())
    assert doc["pairings"] == doc["pairings_done"] == 4 and doc["episodes"] == 16
    assert doc["crossplay"][0]["rows"] == ["prover/round-0", "prover/round-1"]
    assert np.array(doc["crossplay"][0]["episodes"]).tolist() == [[4, 4], [4, 4]]
    with sqlite3.connect(run_dir / "arena.db") as c:
        assert c.execute("SELECT count(*) FROM ratings WHERE tournament='full' AND method='bradley-terry'"
                         ).fetchone()[0] == 4

    console = Console(file=io.StringIO(), width=120)
    console.print(T.ratings_table(result))
    for c in result.crossplay:
        console.print(T.crossplay_table(c))
    text = console.file.getvalue()
    assert "verifier/round-1" in text and "mean prover reward" in text and "mean verifier reward" in text


def test_interrupted_tournament_resumes_without_replaying(pvg_runs, monkeypatch, no_png):
    class Stop(Exception):
        pass

    ended = []

    def interrupt(event):  # the 2nd pairing is committed, then the 3rd dies half-way
        if event["type"] == "pairing_end":
            ended.append(event["pairing"])
        if event["type"] == "episode" and len(ended) == 2 and event["done"] == 2:
            raise Stop

    counter = CountingPlay(monkeypatch)
    with pytest.raises(Stop):
        T.run_tournament(cfg(name="resume"), pvg_runs, on_event=interrupt)
    assert len(counter.calls) == 3
    assert {p for p, *_ in rows(pvg_runs / "pvg", "resume")} == set(ended)  # the half pairing left nothing

    counter.calls.clear()
    T.run_tournament(cfg(name="resume"), pvg_runs)
    assert len(counter.calls) == 2  # only the two missing pairings
    stored = rows(pvg_runs / "pvg", "resume")
    assert len(stored) == 16 and len({(p, i) for p, i, *_ in stored}) == 16

    # Lose one pairing's rows: exactly that pairing is played again.
    with sqlite3.connect(pvg_runs / "pvg" / "arena.db") as c:
        c.execute("DELETE FROM matches WHERE tournament='resume' AND pairing=?", (ended[0],))
    counter.calls.clear()
    events = []
    T.run_tournament(cfg(name="resume"), pvg_runs, on_event=events.append)
    assert len(counter.calls) == 1
    assert [e["pairing"] for e in events if e["type"] == "pairing_start"] == [ended[0]]
    counter.calls.clear()
    T.run_tournament(cfg(name="resume"), pvg_runs)
    assert counter.calls == []


def test_changed_settings_need_a_new_name(pvg_runs, no_png):
    T.run_tournament(cfg(name="fixed", bootstrap=0), pvg_runs)
    with pytest.raises(ArenaError, match="episodes=4"):
        T.run_tournament(cfg(name="fixed", episodes=5), pvg_runs)


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_bad_input_is_one_line(pvg_runs, tmp_path):
    empty = new_run(TrainConfig(game=GAME, recipe="scripted", rounds=1, episodes=2, run="empty"), pvg_runs)
    empty.store.close()
    with pytest.raises(ArenaError, match="no checkpoints") as e:
        T.plan_tournament(cfg(run="empty"), pvg_runs)
    one_line(e)

    other = tmp_path / "other" / "checkpoints" / "verifier" / "round-0"
    other.mkdir(parents=True)
    (other / "arena_checkpoint.json").write_text(json.dumps(
        {"kind": "scripted", "game": "duel-v0", "seat": "verifier", "round": 0}))
    with pytest.raises(ArenaError, match="for game 'duel-v0'") as e:
        T.plan_tournament(cfg(seats={"verifier": [f"ckpt:{other}"]}), pvg_runs)
    one_line(e)

    with pytest.raises(ArenaError, match="unknown seat.*judge") as e:
        T.plan_tournament(cfg(seats={"judge": ["scripted:random"]}), pvg_runs)
    one_line(e)
    with pytest.raises(ArenaError, match="is a prover-verifier-v1 run") as e:
        T.plan_tournament(cfg(game="duel-v0"), pvg_runs)
    one_line(e)
    with pytest.raises(ArenaError, match="for seat 'prover'"):
        T.plan_tournament(cfg(seats={"verifier": ["ckpt:pvg/prover/round-0"]}), pvg_runs)
    with pytest.raises(ArenaError, match="no run named"):
        T.plan_tournament(cfg(run="nope"), pvg_runs)
    with pytest.raises(ArenaError, match="no checkpoint at"):
        T.plan_tournament(cfg(seats={"verifier": ["ckpt:pvg/verifier/round-9"]}), pvg_runs)
    with pytest.raises(ArenaError, match="unknown agent kind 'nosuch'"):
        T.plan_tournament(cfg(seats={"verifier": ["nosuch:x"]}), pvg_runs)
    with pytest.raises(ArenaError, match="malformed --seat"):
        T.parse_seat_lists(["verifier"])


def test_explicit_seat_lists_and_labels(pvg_runs):
    plan = T.plan_tournament(cfg(seats={"verifier": ["ckpt:pvg/verifier/round-1", "scripted:constant?value=1"]}),
                             pvg_runs)
    labels = {g.name: [e.label for e in g.entrants] for g in plan.groups}
    assert labels == {"prover": ["prover/round-0", "prover/round-1"],
                      "verifier": ["verifier/round-1", "verifier/scripted:constant?value=1"]}
    assert plan.key("verifier/round-1") == f"{GAME}/verifier/round-1"


def test_symmetric_seats_play_round_robin_from_the_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir")
    T.add_parser(parser.add_subparsers())
    specs = "scripted:random,scripted:constant?value=0,scripted:constant?value=7"
    args = parser.parse_args(["--runs-dir", str(tmp_path), "tournament", "--game", "duel-v0", "--env", "judge=gold",
                              "--seat", f"policy_a={specs}", "-n", "3", "--bootstrap", "20", "--plain"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "[6/6]" in printed and "row \\ column" in printed
    out = tmp_path / "duel-v0-tournament" / "tournaments" / "duel-v0-tournament"
    doc = json.loads((out / "tournament.json").read_text())
    assert doc["pairings"] == 6  # 3 entrants: every ordered pair of distinct entrants
    assert {r["key"] for r in doc["ratings"]} == {f"duel-v0/{s}" for s in specs.split(",")}
    assert all(r["method"] == "direct" for r in doc["ratings"])
    counts = np.array(doc["crossplay"][0]["episodes"], dtype=float)
    np.testing.assert_array_equal(counts, 6 * (1 - np.eye(3)))  # 3 episodes in each seat order
    assert (out / "crossplay.png").is_file()


# -- the rating methods on hand-made match records -----------------------------------

def hand_plan(pvg_runs) -> T.Plan:
    return T.plan_tournament(cfg(seats={"prover": ["scripted:role-play"],
                                        "verifier": ["scripted:constant?value=1", "scripted:constant?value=-1",
                                                     "scripted:spot-check"]}), pvg_runs)


def test_paired_comparisons_rank_an_asymmetric_seat(pvg_runs):
    plan = hand_plan(pvg_runs)
    strong, weak, mid = (e.label for e in plan.groups[1].entrants)
    prover = plan.groups[0].entrants[0].label
    matches = []
    for p in plan.pairings():
        pid, v = plan.pairing_id(p), p["verifier"].label
        for idx in range(10):
            reward = {strong: 1.0, weak: -1.0, mid: 1.0 if idx % 2 else -1.0}[v]
            matches.append(T.MatchRecord(pid, {"prover": prover, "verifier": v}, idx, 0,
                                         {"prover": -reward, "verifier": reward}))
    result = T.analyze(plan, matches, rounds=100, rng=np.random.default_rng(0))
    prover_g, verifier_g = result.groups
    assert prover_g.bt is None  # one entrant: nothing to rate
    assert [verifier_g.labels[i] for i in verifier_g.order()] == [strong, mid, weak]
    assert verifier_g.method == "paired" and verifier_g.n_matches == 3 * 10  # 3 pairs x 10 shared seeds
    assert verifier_g.reward.mean.tolist() == [1.0, -1.0, 0.0]
    (cp_prover, cp_verifier) = result.crossplay
    assert cp_verifier.cells.mean.tolist() == [[1.0, -1.0, 0.0]]
    assert cp_prover.cells.mean.tolist() == [[-1.0, 1.0, 0.0]]


def test_standings_ignore_pairings_outside_the_schedule(pvg_runs):
    plan = hand_plan(pvg_runs)
    stray = T.MatchRecord("prover=x | verifier=y", {"prover": "x", "verifier": "y"}, 0, 0,
                          {"prover": 0.0, "verifier": 0.0})
    result = T.analyze(plan, [stray])
    assert result.n_episodes == 0 and result.pairings_done == 0


def test_plain_view_prints_one_line_per_pairing(pvg_runs, no_png):
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    with T.TournamentView(console) as view:
        T.run_tournament(cfg(name="view", bootstrap=0), pvg_runs, on_event=view)
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("tournament view (prover-verifier-v1): 4 pairings, 0 already played")
    assert sum(line.startswith("[") for line in lines) == 4

    live = Console(file=io.StringIO(), force_terminal=True, width=120)
    with T.TournamentView(live) as view:
        T.run_tournament(cfg(name="live", bootstrap=0), pvg_runs, on_event=view)
    shown = live.file.getvalue()
    assert "pairings" in shown and "ratings: prover-verifier-v1 · live · 4/4 pairings" in shown


def scripted_short_problems(ctx):
    """The scripted recipe on 1-step problems: a recipe that sets the game up its own way."""
    from games.prover_verifier.recipe import scripted

    setup = scripted(ctx)
    setup.env_kwargs = {"min_steps": 1, "max_steps": 1}
    return setup


def test_tournament_plays_the_game_as_the_runs_recipe_set_it_up(tmp_path, monkeypatch, no_png):
    from games.prover_verifier.env import ProverVerifierEnv

    monkeypatch.setitem(ProverVerifierEnv.game_info.recipes, "short", f"{__name__}:scripted_short_problems")
    trainer = new_run(TrainConfig(game=GAME, recipe="short", rounds=1, episodes=4, concurrency=4, run="short"),
                      tmp_path)
    trainer.run(trainer.restore())
    config = json.loads((tmp_path / "short" / "config.json").read_text())
    assert config["env_kwargs"] == {"min_steps": 1, "max_steps": 1}

    plan = T.plan_tournament(cfg(run="short"), tmp_path)
    assert plan.cfg.env == {"min_steps": 1, "max_steps": 1}
    assert T.plan_tournament(cfg(run="short", env={"max_steps": 3}), tmp_path).cfg.env == {"min_steps": 1,
                                                                                           "max_steps": 3}
    envs = []
    real = playing.play

    def recording(env_fn, seats, n, **kw):
        envs.append(env_fn())
        return real(env_fn, seats, n, **kw)

    monkeypatch.setattr(playing, "play", recording)
    T.run_tournament(cfg(run="short"), tmp_path)
    assert envs and all((e.min_steps, e.max_steps) == (1, 1) for e in envs)

"""`arena train --opponents`: the pool's rounds, a kill mid-round resumed exactly, fixed members, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from arena.cli import main
from arena.runs.config import TrainConfig
from arena.selfplay import load_run, new_run
from arena.store import RunStore

RPS = "examples.rps.env:RPSEnv"


class Killed(Exception):
    pass


def cfg(run: str, rule: str, **kw) -> TrainConfig:
    return TrainConfig(game=RPS, rounds=4, episodes=24, concurrency=5, seed=3, run=run,
                       opponents={"player_0": rule}, league_episodes=8, params={"lr": "6"}, **kw)


def finished(runs, run: str):
    store = RunStore(runs / run)
    try:
        return store.round_summaries(), [(e.round, e.index, e.rewards, e.info) for e in store.episodes()]
    finally:
        store.close()


def logits(runs, run: str, k: int) -> list[float]:
    return json.loads((runs / run / "checkpoints" / "player_0" / f"round-{k}" / "scripted.json").read_text())["logits"]


@pytest.mark.parametrize("rule, extra", [("nash", {"exploiters": 2, "exploiter_steps": 3, "exploiter_episodes": 8}),
                                         ("pfsp", {}), ("uniform", {})])
def test_a_pool_run_killed_mid_round_and_resumed_equals_an_uninterrupted_one(tmp_path, rule, extra):
    whole = new_run(cfg("whole", rule, **extra), tmp_path)
    whole.run()
    whole.close()

    seen = []

    def kill_in_round_2(event):
        seen.append(event)
        if event.get("type") == "episode" and event["round"] == 2 and event["done"] == 10:
            raise Killed()

    t = new_run(cfg("killed", rule, **extra), tmp_path, on_event=kill_in_round_2)
    with pytest.raises(Killed):
        t.run()
    t.close()
    t = load_run(tmp_path / "killed", tmp_path, game=RPS)
    start = t.restore()
    assert start == 2
    t.run(start)
    t.close()

    (a, ep_a), (b, ep_b) = finished(tmp_path, "whole"), finished(tmp_path, "killed")
    assert [s["league"] for s in a] == [s["league"] for s in b]
    if extra:  # the exploiters' units of rounds 0-1 were kept, round 2's played again, all equal
        assert [s["league"]["exploiters"]["gains"] for s in a] == [s["league"]["exploiters"]["gains"] for s in b]
        assert len(list((tmp_path / "killed" / "attacks" / "exploiters" / "units").glob("*.json"))) == 4 * 2
    assert [s["metrics"] for s in a] == [s["metrics"] for s in b]
    assert ep_a == ep_b and len(ep_a) == 4 * 24
    assert logits(tmp_path, "whole", 3) == logits(tmp_path, "killed", 3)
    league = a[-1]["league"]
    assert [m["label"] for m in league["members"]] == ["init", "r0", "r1", "r2", "r3"]
    assert sum(league["counts"]) == 24 and sum(league["weights"]) == pytest.approx(1.0)
    if rule == "uniform":
        assert league["weights"] == pytest.approx([0.2] * 5)
    if rule == "nash":  # the weights are the meta-game's Nash: no member beats the mixture
        payoff = np.array(league["payoff"])
        assert (payoff @ np.array(league["weights"])).max() <= 1e-9
    if rule == "pfsp":
        p = np.array(league["win"][-1])
        f = (1 - p) ** 2
        assert league["weights"] == pytest.approx(list(f / f.sum()))


def test_a_fixed_scripted_opponent_stays_fixed(tmp_path):
    t = new_run(cfg("fixed", "uniform", pool=["scripted:move?move=paper"]), tmp_path)
    t.run()
    t.close()
    summaries, episodes = finished(tmp_path, "fixed")
    for s in summaries:
        assert s["league"]["members"][0] == {"label": "fixed0", "spec": "scripted:move?move=paper"}
    against = [info for _, _, _, info in episodes if info["player_1"]["opponent"] == "fixed0"]
    assert len(against) >= 10
    assert all(i["player_1"]["move"] == "paper" for i in against)
    others = [info for _, _, _, info in episodes if info["player_1"]["opponent"] != "fixed0"]
    assert any(i["player_1"]["move"] != "paper" for i in others)
    # the learner, which meets paper a fifth of the time and more, learns to play scissors more than at the start
    assert logits(tmp_path, "fixed", 3)[2] > 0


def test_latest_draws_the_newest_checkpoint_and_no_flag_changes_nothing(tmp_path):
    t = new_run(cfg("latest", "latest"), tmp_path)
    t.run()
    t.close()
    summaries, episodes = finished(tmp_path, "latest")
    assert [s["league"]["used_weights"] for s in summaries][1] == [0.0, 1.0]
    assert {info["player_1"]["opponent"] for r, _, _, info in episodes if r == 3} == {"r2"}
    plain = TrainConfig(game=RPS, rounds=2, episodes=24, concurrency=5, seed=3, run="plain")
    t = new_run(plain, tmp_path)
    t.run()
    t.close()
    summaries, episodes = finished(tmp_path, "plain")
    assert all("league" not in s and set(s["losses"]) == {"player_0", "player_1"} for s in summaries)
    assert all("opponent" not in info["player_1"] for _, _, _, info in episodes)


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr()


@pytest.mark.parametrize("argv, pattern", [
    (["--opponents", "player_0=best"], "unknown rule; rules: latest, uniform, pfsp, nash"),
    (["--opponents", "nobody=nash"], "unknown seat"),
    (["--pool", "scripted:move?move=rock"], "--pool needs --opponents"),
    (["--opponents", "nash", "--pool", "scripted:move?move=lizard"], "move must be one of"),
    (["--opponents", "nash", "--league-episodes", "0"], "--league-episodes must be at least 1"),
    (["--opponents", "nash", "--opponents", "uniform"], "--opponents is given once"),
])
def test_bad_league_flags_are_one_line_errors(capsys, tmp_path, argv, pattern):
    code, (_, err) = run_cli(capsys, "train", RPS, "--rounds", "1", "--runs-dir", str(tmp_path), "--plain", *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], err
    assert not any(p.name.startswith("examples") for p in tmp_path.iterdir())


def test_opponents_on_a_game_without_symmetric_seats_is_refused(capsys, tmp_path):
    code, (_, err) = run_cli(capsys, "train", "examples.ultimatum.env:UltimatumEnv", "--opponents", "nash",
                             "--runs-dir", str(tmp_path))
    assert code == 2 and "two-seat game whose seats are symmetric" in err

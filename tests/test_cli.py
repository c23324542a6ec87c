"""Bad input is one line `error: ...` on stderr and exit status 2, never a traceback."""
import sqlite3

import pytest

from arena.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(capsys, argv, pattern):
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("argv, pattern", [
    (["play", "prover-verifer-v0"], "did you mean prover-verifier-v1"),
    (["train", "nonsense-v0", "--rounds", "1"], "unknown game 'nonsense-v0'"),
    (["play", "prover-verifier-v1", "--seat", "judge=scripted:random"], "unknown seat(s) judge"),
    (["train", "prover-verifier-v1", "--recipe", "scripted", "--seat", "judge=scripted:random"],
     "unknown seat(s) judge"),
    (["play", "prover-verifier-v1", "--seat", "prover=Bad Spec!"], "malformed agent spec"),
    (["play", "prover-verifier-v1", "--seat", "prover"], "malformed --seat"),
    (["play", "prover-verifier-v1", "--seat", "prover=warp:drive"], "unknown agent kind 'warp'"),
    (["play", "prover-verifier-v1", "--seat", "prover=scripted:telepath"], "unknown scripted agent 'telepath'"),
    (["play", "prover-verifier-v1", "--seat", "prover=ckpt:nope/prover/round-0"], "no checkpoint at"),
    (["play", "prover-verifier-v1", "--seat", "prover=ckpt:nope"], "malformed checkpoint spec"),
    (["play", "prover-verifier-v1", "--env", "reward=bogus"], "cannot make prover-verifier-v1"),
    (["play", "prover-verifier-v1", "--seat", "prover=hf:./no/such/model"], "no model at './no/such/model'"),
    (["play", "prover-verifier-v1", "--seat", "verifier=hf:/no/such/scorer"], "no model at '/no/such/scorer'"),
    (["train", "prover-verifier-v1", "--recipe", "scripted", "--run", "../escape"], "invalid run name"),
    (["train", "prover-verifier-v1", "--recipe", "scripted", "--run", "a/b"], "invalid run name"),
    (["train", "prover-verifier-v1", "--recipe", "nope"], "has no recipe 'nope'"),
    (["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "0"], "--rounds must be at least 1"),
    (["resume", "never-was"], "no run named 'never-was'"),
    (["resume", "../x"], "no run at ../x"),
    (["watch", "never-was"], "no run named 'never-was'"),
    (["experiment", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
])
@pytest.mark.slow
def test_bad_input_is_a_one_line_error(capsys, runs, argv, pattern):
    assert_one_line_error(capsys, argv, pattern)


@pytest.mark.slow
def test_corrupt_database_is_a_one_line_error(capsys, runs):
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "1", "--episodes", "4",
                 "--run", "r", "--plain"]) == 0
    (runs / "r" / "arena.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (runs / "r" / f"arena.db{suffix}").unlink(missing_ok=True)
    capsys.readouterr()
    assert_one_line_error(capsys, ["resume", "r"], "corrupt or unreadable run database")


@pytest.mark.slow
def test_games_lists_every_game_with_description(capsys):
    code, out, _ = run(capsys, "games")
    assert code == 0 and "prover-verifier-v1" in out and "duel-v0" in out and "scripted" in out


def test_play_prints_transcripts_and_results(capsys):
    code, out, _ = run(capsys, "play", "prover-verifier-v1", "-n", "3", "--seat", "prover=scripted:helpful",
                       "--seat", "verifier=scripted:spot-check?check_rate=1")
    assert code == 0
    assert out.count("episode ") >= 3 and "Answer:" in out
    assert "helpful_accuracy=1" in out  # the helpful bot is always right


@pytest.mark.slow
def test_train_then_resume_a_finished_run(capsys, runs):
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "2", "--episodes", "8",
                 "--run", "done", "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.count("round ") >= 2 and "helpful_accuracy=" in out
    code, out, _ = run(capsys, "resume", str(runs / "done"))
    assert code == 0 and "already completed its 2 rounds" in out
    code, out, _ = run(capsys, "resume", "done", "--rounds", "3", "--plain")
    assert code == 0 and "round 2 " in out
    with sqlite3.connect(runs / "done" / "arena.db") as c:
        assert c.execute("SELECT count(*) FROM rounds WHERE completed=1").fetchone()[0] == 3


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("games", "play", "train", "resume", "watch", "pretrain", "experiment"):
        assert command in out


def test_no_command_prints_the_help_with_plugin_summaries(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: arena" in out and "tournament" in out
    # the bench plugin's line is its module docstring's first line, read without importing it
    assert "Rollout benchmark" in out


@pytest.mark.slow
def test_play_a_run_uses_its_game_settings_and_checkpoints(capsys, runs, monkeypatch):
    import re

    from games.prover_verifier.env import ProverVerifierEnv
    from test_tournament import scripted_short_problems  # noqa: F401 (the recipe, by import path)

    monkeypatch.setitem(ProverVerifierEnv.game_info.recipes, "short", "test_tournament:scripted_short_problems")
    assert main(["train", "prover-verifier-v1", "--recipe", "short", "--rounds", "2", "--episodes", "4",
                 "--run", "pl", "--plain"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "play", "pl", "-n", "3")
    assert code == 0
    assert "ckpt:pl/prover/round-1" in out and "ckpt:pl/verifier/round-1" in out  # the last round's
    questions = re.findall(r"Question: (.*?)How many", out, re.S)  # transcripts wrap lines
    assert questions and all(len(re.findall(r"(Gets|Loses) \d+\.", q)) == 1 for q in questions)  # 1-step problems
    code, out, _ = run(capsys, "play", str(runs / "pl"), "-n", "1", "-q", "--round", "0",
                       "--seat", "verifier=scripted:random")
    agents = "".join(line.split("│")[2].strip() for line in out.splitlines() if line.count("│") > 3)  # folded cells
    assert code == 0 and f"ckpt:{runs / 'pl'}/prover/round-0" in agents and "scripted:random" in agents
    assert_one_line_error(capsys, ["play", "pl", "--round", "5"], "has no round-5 checkpoint")
    assert_one_line_error(capsys, ["play", "prover-verifier-v1", "--round", "1"], "--round needs a run")
    assert_one_line_error(capsys, ["play", "no-such-thing"], "nor is it a run")


@pytest.mark.slow
def test_runs_lists_each_run_with_its_rounds_and_last_figures(capsys, runs):
    code, out, _ = run(capsys, "runs")
    assert code == 0 and "no runs in" in out
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "2", "--episodes", "8",
                 "--run", "listed", "--plain"]) == 0
    assert main(["tournament", "listed", "-n", "2", "--name", "t1", "--bootstrap", "0"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "runs")
    text = " ".join(out.split())  # undo the wrapping
    assert code == 0
    assert "listed prover-verifier-v1 · recipe scripted · 2/2 rounds · tournaments: t1" in text
    assert "round 1: helpful_accuracy=1" in text


@pytest.mark.slow
def test_a_run_whose_setup_fails_leaves_no_directory_behind(capsys, runs):
    assert_one_line_error(capsys, ["train", "prover-verifier-v1", "--set", "nope=1", "--run", "typo"],
                          "unknown parameter(s) nope")
    assert not (runs / "typo").exists()
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "1", "--episodes", "4",
                 "--run", "typo", "--plain"]) == 0  # the corrected command is not blocked


def test_train_help_for_a_game_lists_its_recipe_keys_and_settings(capsys):
    from arena.cli import main
    from games.prover_verifier.recipe import CheckabilityParams

    assert main(["train", "prover-verifier-v1", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--rounds" in out and "(default 3)" in out  # the flags, defaults from TrainConfig
    assert "recipe default, correctness: --set KEY=VALUE" in out  # two recipes, one params dataclass
    line = next(x for x in out.splitlines() if x.split()[:1] == ["kl_coef"])
    assert repr(CheckabilityParams().kl_coef) in line and "KL penalty" in line
    assert "game settings: --env KEY=VALUE" in out and "max_value" in out


@pytest.mark.slow
def test_train_logs_every_round_to_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from arena.cli import main

    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "2", "--episodes", "8",
                 "--run", "tb", "--plain", "--tensorboard"]) == 0
    acc = EventAccumulator(str(runs / "tb" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"metrics/sneaky_success", "reward/prover", "learner/verifier/check_rate"} <= set(tags)
    steps = [e.step for e in acc.Scalars("learner/verifier/check_rate")]
    assert steps == [0, 1]
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "1", "--episodes", "4",
                 "--run", "notb", "--plain", "--no-tensorboard"]) == 0
    assert not (runs / "notb" / "tensorboard").exists()

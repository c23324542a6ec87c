"""`arena train --keep-last K [--keep-every N]`: old rounds' checkpoints go once a round is committed;
tournaments, `ckpt:` and resume see exactly the rounds kept."""
from __future__ import annotations

import os

import pytest

from arena.checkpoints import kept_rounds
from arena.cli import main
from arena.store import read_checkpoints


def test_kept_rounds_are_the_last_k_and_every_nth():
    assert kept_rounds([0, 1, 2, 3, 4], 0) == {0, 1, 2, 3, 4}
    assert kept_rounds([0, 1, 2, 3, 4], 2) == {3, 4}
    assert kept_rounds([0, 1, 2, 3, 4], 1, 2) == {0, 2, 4}


@pytest.mark.slow
def test_train_keeps_the_last_k_and_tournament_and_resume_use_them(capsys, runs):
    argv = ["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "5", "--episodes", "8",
            "--run", "k", "--keep-last", "2", "--keep-every", "3", "--plain", "--no-tensorboard"]
    assert main(argv) == 0
    for seat in ("prover", "verifier"):
        assert sorted(os.listdir(runs / "k" / "checkpoints" / seat)) == ["round-0", "round-3", "round-4"]
    assert {s: sorted(v) for s, v in read_checkpoints(runs / "k").items()} == \
        {"prover": [0, 3, 4], "verifier": [0, 3, 4]}
    assert main(["tournament", "k", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "prover/round-3" in out and "prover/round-1" not in out
    assert main(["resume", "k", "--rounds", "6", "--plain", "--no-tensorboard"]) == 0
    assert sorted(os.listdir(runs / "k" / "checkpoints" / "prover")) == ["round-0", "round-3", "round-4", "round-5"]
    assert main(["train", "prover-verifier-v1", "--rounds", "1", "--run", "bad", "--keep-last", "-1"]) == 2


"""The Python API (`import arena`): its docstring example runs, and train -> tournament works
from a notebook without internal imports."""
import doctest

import pytest

import arena


def test_the_package_docstring_example_runs():
    result = doctest.testmod(arena, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.slow
def test_train_then_tournament_from_python(tmp_path):
    summaries = arena.train("prover-verifier-v1", recipe="scripted", rounds=2, episodes=24, concurrency=6,
                            run="nb", runs_dir=tmp_path, seed=11)
    assert [s["round"] for s in summaries] == [0, 1]
    rates = [s["losses"]["verifier"]["check_rate"] for s in summaries]
    assert rates[1] > rates[0]  # the scripted learner got stricter
    arena.run_tournament(tmp_path / "nb", episodes=4, runs_dir=tmp_path)
    ratings = (tmp_path / "nb" / "tournaments" / "default" / "ratings.csv").read_text()
    for key in ("prover/round-0", "prover/round-1", "verifier/round-0", "verifier/round-1"):
        assert f"prover-verifier-v1/{key}" in ratings


def test_unknown_seat_is_one_line():
    import pytest

    with pytest.raises(arena.ArenaError, match="unknown seat"):
        arena.play("prover-verifier-v1", {"judge": "scripted:random"})

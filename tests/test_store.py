"""The run store's tournament tables: whole pairings, resumable writes, ratings read back."""
from __future__ import annotations

import pytest

from arena.store import RunStore, TournamentTables
from arena.types import Episode

SEATS = {"prover": "prover/round-0", "verifier": "verifier/round-1"}


def episode(idx: int, prover: float) -> Episode:
    return Episode(index=idx, seed=100 + idx, rewards={"prover": prover, "verifier": -prover},
                   info={"prover": {"correct": idx % 2 == 0}}, transcript=[])


@pytest.fixture
def tables(tmp_path):
    store = RunStore(tmp_path / "run", create=True)
    yield TournamentTables(store)
    store.close()


def test_a_pairing_interrupted_while_written_leaves_no_rows(tables, monkeypatch):
    tables.add_pairing("t", "g-v0", "p=a | v=b", SEATS, [episode(0, 1.0), episode(1, 0.0)])

    class Crash(Exception):
        pass

    def dying():  # the process dies after the first row of the second pairing
        yield episode(0, 1.0)
        raise Crash

    with pytest.raises(Crash):
        tables.add_pairing("t", "g-v0", "p=a | v=c", SEATS, dying())
    assert tables.completed_pairings("t", 2) == {"p=a | v=b"}
    assert [m[0] for m in tables.matches("t")] == ["p=a | v=b"] * 2
    assert tables.completed_pairings("other", 2) == set()


def test_pairings_with_another_episode_count_are_not_complete_and_are_discarded(tables):
    tables.add_pairing("t", "g-v0", "short", SEATS, [episode(0, 1.0)])
    tables.add_pairing("t", "g-v0", "whole", SEATS, [episode(0, 1.0), episode(1, -1.0)])
    tables.add_pairing("u", "g-v0", "short", SEATS, [episode(0, 1.0)])
    assert tables.completed_pairings("t", 2) == {"whole"}
    tables.discard_incomplete("t", 2)
    assert {m[0] for m in tables.matches("t")} == {"whole"}
    assert len(tables.matches("u")) == 1  # another tournament's rows stay


def test_matches_read_back_in_the_order_written(tables):
    tables.add_pairing("t", "g-v0", "b", SEATS, [episode(1, 0.5), episode(0, float("nan"))])
    tables.add_pairing("t", "g-v0", "a", SEATS, [episode(0, 1.0)])
    got = tables.matches("t")
    assert [(p, idx, seed) for p, _, idx, seed, _ in got] == [("b", 1, 101), ("b", 0, 100), ("a", 0, 100)]
    assert got[0][1] == SEATS and got[0][4] == {"prover": 0.5, "verifier": -0.5}
    assert got[1][4]["prover"] == "nan"  # non-finite rewards are stored as JSON strings (jsonable)
    assert tables.match_infos("t")[0] == (SEATS, {"prover": {"correct": False}})


def test_saved_ratings_read_back_and_replace_the_old(tables):
    tables.save_ratings("t", [("g-v0/a", "elo", 1010.0, None, None),
                              ("g-v0/b", "bradley-terry", 990.0, 970.0, 1005.0)])
    tables.save_ratings("u", [("g-v0/a", "elo", 1.0, None, None)])
    assert tables.ratings("t") == [("g-v0/a", "elo", 1010.0, None, None),
                                   ("g-v0/b", "bradley-terry", 990.0, 970.0, 1005.0)]
    tables.save_ratings("t", [("g-v0/c", "mean-reward", 0.25, -0.1, 0.6)])
    assert tables.ratings("t") == [("g-v0/c", "mean-reward", 0.25, -0.1, 0.6)]
    assert tables.ratings("u") == [("g-v0/a", "elo", 1.0, None, None)]


def test_tournament_config_registered_and_replaced(tables, tmp_path):
    assert tables.config("t") is None
    tables.register("t", "g-v0", {"episodes": 4, "entrants": {"prover": []}})
    tables.register("t", "g-v0", {"episodes": 4, "entrants": {"prover": [{"label": "x"}]}})
    assert tables.config("t") == {"episodes": 4, "entrants": {"prover": [{"label": "x"}]}}
    again = RunStore(tmp_path / "run")  # the tables persist for the next invocation
    try:
        assert TournamentTables(again).config("t")["entrants"]["prover"] == [{"label": "x"}]
    finally:
        again.close()

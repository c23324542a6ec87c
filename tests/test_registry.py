import pytest

from arena.registry import Registry, list_games, spec
from arena.types import ArenaError


def test_builtin_games_come_from_entry_points():
    assert {"prover-verifier-v1", "duel-v0"} <= set(list_games())
    assert spec("duel-v0").make().possible_agents == ["policy_a", "policy_b", "judge"]


def test_register_make_and_defaults_override():
    reg = Registry(group=None)
    reg.register("pv-v1", "games.prover_verifier.env:ProverVerifierEnv", reward="cgc")
    assert reg.make("pv-v1").reward_mode == "cgc"
    assert reg.make("pv-v1", reward="goodhart").reward_mode == "goodhart"
    assert reg.ids() == ["pv-v1"]


def test_ids_must_be_versioned():
    with pytest.raises(ArenaError, match="name-vN"):
        Registry(group=None).register("prover", "x:y")


def test_unknown_id_names_closest():
    with pytest.raises(ArenaError, match="did you mean prover-verifier-v1"):
        spec("prover-verifer-v0")


def test_import_path_game(external_game_path):
    s = spec("ext_game:GuessEnv")
    assert s.id == "guess-v0"
    assert s.make().possible_agents == ["guesser"]


def test_bad_import_path_is_one_line_error():
    with pytest.raises(ArenaError, match="cannot import"):
        spec("no_such_module_xyz:Env")
    with pytest.raises(ArenaError, match="no attribute"):
        spec("games.duel.env:Nope")


def test_bad_constructor_kwargs_are_arena_errors():
    with pytest.raises(ArenaError, match="cannot make prover-verifier-v1"):
        spec("prover-verifier-v1").make(reward="bogus")

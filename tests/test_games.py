"""Every registered game passes the contract checks (PettingZoo api/seed tests, garbage, determinism)."""
import pytest

from arena import registry
from arena.testing import check_game


@pytest.mark.parametrize("game_id", registry.list_games())
def test_every_registered_game_passes_check_game(game_id):
    check_game(lambda: registry.make(game_id))


def test_external_game_passes_check_game(external_game_path):
    check_game(lambda: registry.make("ext_game:GuessEnv"))


def test_check_game_catches_a_game_that_raises_on_garbage():
    from games.prover_verifier.env import ProverVerifierEnv

    class Fragile(ProverVerifierEnv):
        def step(self, action):
            if self.agent_selection == "prover" and action is not None and not isinstance(action, str):
                raise TypeError("not text")
            super().step(action)

    with pytest.raises(TypeError):
        check_game(Fragile)

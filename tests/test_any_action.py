"""A game scores any string its seats play (issue 13, item 9): long digit runs, markup, control
characters, NaN and inf scores never abort an episode or a round."""
from __future__ import annotations

import numpy as np
import pytest

from arena.cli import main

def test_duel_scores_an_answer_of_any_length():
    from games.duel.env import DuelEnv

    env = DuelEnv(judge="gold")
    env.reset(seed=0)
    env.step("9" * 5000)
    env.step("-" + "0" * 6000 + "7")
    assert env.rewards == {"policy_a": 0.0, "policy_b": 0.0} and all(env.terminations.values())


def test_a_long_answer_does_not_abort_a_round(capsys):
    digits = "9" * 5000
    code = main(["play", "duel-v0", "--env", "judge=gold", "-n", "2", "-q",
                 "--seat", f"policy_a=scripted:constant?value={digits}", "--seat", "policy_b=scripted:adder"])
    assert code == 0, capsys.readouterr().err


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # the `test` extra installs it
    given = None


def registered_games():
    from arena import registry

    return registry.list_games()


if given is None:
    def test_every_game_scores_any_action():
        pytest.skip("hypothesis is not installed (pip install -e .[test])")
else:
    def any_action():
        """Any text (long digit runs, markup, control characters), and any score, NaN and inf included."""
        digits = st.builds(lambda sign, d, n: sign + d * n, st.sampled_from(["", "-"]), st.sampled_from("0179"),
                           st.integers(4000, 6000))
        text = st.one_of(st.text(max_size=200), digits,
                         st.builds(lambda d, s: f"Answer: {d}{s}", digits, st.text(max_size=20)))
        score = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(width=32).map(lambda x: np.array([x], dtype=np.float32)),
                          st.text(max_size=5), st.none())
        return text, score

    @pytest.mark.parametrize("game_id", registered_games())
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_every_game_scores_any_action(game_id, data):
        """Property: whatever every seat plays, an episode ends with finite rewards and never raises."""
        import math

        from gymnasium import spaces

        from arena import registry

        env = registry.spec(game_id).make()
        text, score = any_action()
        env.reset(seed=data.draw(st.integers(0, 2**31 - 1)))
        for _ in range(1000):
            if not env.agents:
                break
            agent = env.agent_selection
            if env.terminations[agent] or env.truncations[agent]:
                env.step(None)
                continue
            space = env.action_space(agent)
            env.step(data.draw(score if isinstance(space, spaces.Box) else text))
            assert all(isinstance(r, (int, float)) and math.isfinite(r) for r in env.rewards.values()), env.rewards
        assert not env.agents, "the episode did not end"

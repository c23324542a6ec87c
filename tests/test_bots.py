"""Every scripted bot of every registered game meets the agent contract (`arena.testing.check_agent`):
batched, one action per observation, the same seed gives the same actions, and the game scores
what it plays. Bots are built by spec, as a user would (`scripted:<bot>`), for each seat that takes them."""
import numpy as np
import pytest

from arena import registry
from arena.gameinfo import GameInfo
from arena.specs import AgentContext, build_agent
from arena.testing import check_agent, play_scripted
from arena.types import ArenaError


def seat_observations(gspec, seat, env_kwargs, n=6):
    """Observations `seat` sees in a few episodes of random play."""
    env = gspec.make(**env_kwargs)
    seen = []

    def choose(agent, step):
        if agent == seat:
            seen.append(dict(env.observe(agent)))
        return env.action_space(agent).sample()

    for seed in range(n):
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed)
        play_scripted(env, seed, choose)
    return seen


CASES = [(gid, bot) for gid in registry.list_games() for bot in [*GameInfo.of(registry.spec(gid).load()).bots,
                                                               "random", "constant"]]


@pytest.mark.parametrize("game_id,bot", CASES, ids=[f"{g}:{b}" for g, b in CASES])
def test_every_scripted_bot_meets_the_agent_contract(game_id, bot, tmp_path):
    gspec = registry.spec(game_id)
    seats_served = 0
    info = GameInfo.of(gspec.load())
    seats = {**{s: {} for s in gspec.make().possible_agents}, **info.extra_seats}
    for seat, env_kwargs in seats.items():
        ctx = AgentContext.for_seat(gspec, seat, tmp_path, **env_kwargs)
        try:
            agent = build_agent(f"scripted:{bot}", ctx)
        except ArenaError:
            continue  # a bot for another seat
        observations = seat_observations(gspec, seat, env_kwargs)
        assert observations, f"{seat} never moved"
        actions = [getattr(a, "action", a) for a in check_agent(agent, observations)]
        space = ctx.action_space
        for action in actions:
            if isinstance(action, str):
                assert space.contains(action), (seat, action)  # in the seat's charset and length
            else:
                assert np.asarray(action).shape == space.shape, (seat, action)
        seats_served += 1
    assert seats_served >= 1, f"scripted:{bot} plays no seat of {game_id}"


def test_a_bot_option_it_does_not_know_is_one_line():
    gspec = registry.spec("prover-verifier-v1")
    ctx = AgentContext.for_seat(gspec, "verifier", ".")
    with pytest.raises(ArenaError, match=r"unknown scripted:spot-check option\(s\) nokey; known: "):
        build_agent("scripted:spot-check?nokey=1", ctx)
    with pytest.raises(ArenaError, match="takes a number"):
        build_agent("scripted:spot-check?check_rate=lots", ctx)

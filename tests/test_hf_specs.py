"""The `hf:` spec and the agent factory: options, checkpoints as specs, a game played through the runner."""
from __future__ import annotations

import pytest
from hf_tiny import PROMPTS, ids_of, obs

from agents.hf import GeneratorAgent, SamplingConfig, ScorerAgent, parse_hf_arg, split_options
from arena.spaces import score_space, text_space
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError

# -- specs and the factory -------------------------------------------------------------------

class DummyGame:
    """A PettingZoo-like class with one Text seat and one Box seat."""

    possible_agents = ["writer", "judge"]

    def action_space(self, seat):
        return {"writer": text_space(64), "judge": score_space()}[seat]


def ctx_for(seat, game_cls=DummyGame, game_id="dummy-v0", runs_dir="runs"):
    from pathlib import Path

    return AgentContext(game_id, game_cls, seat, Path(runs_dir), "cpu")


def test_parse_hf_arg_and_options():
    assert parse_hf_arg("Qwen/Qwen2-0.5B") == ("Qwen/Qwen2-0.5B", None, {})
    assert parse_hf_arg("/m/x.Q4.gguf?temperature=0.5") == ("/m", "x.Q4.gguf", {"temperature": ["0.5"]})
    ref, gguf, opts = parse_hf_arg("org/repo::f.gguf?stop=%0A%0A&stop=END&ignore_eos=1&max_batch=8")
    assert (ref, gguf) == ("org/repo", "f.gguf")
    sampling, load = split_options(opts, generator=True)
    assert sampling.stop == ("\n\n", "END") and sampling.ignore_eos is True and load.max_batch == 8
    with pytest.raises(ArenaError, match="unknown hf option"):
        split_options({"temprature": ["1"]}, generator=True)
    with pytest.raises(ArenaError, match="unknown hf option"):
        split_options({"temperature": ["1"]}, generator=False)
    with pytest.raises(ArenaError, match="bad hf option top_k"):
        split_options({"top_k": ["many"]}, generator=True)
    with pytest.raises(ArenaError):
        SamplingConfig(top_p=0)


def test_text_options_are_kept_as_typed_and_numbers_follow_arena_options():
    _, _, opts = parse_hf_arg("m?system=+Be+brief.%0A&stop=,&temperature=+0.5&chat_template=off")
    sampling, _ = split_options(opts, generator=True)
    assert sampling.system == " Be brief.\n" and sampling.stop == (",",)
    assert sampling.temperature == 0.5 and sampling.chat_template is False
    with pytest.raises(ArenaError, match="bad hf option temperature"):
        split_options({"temperature": ["nan"]}, generator=True)


def test_quiet_transformers_restores_what_it_changed():
    import warnings

    from transformers.utils import logging as hf_logging

    from agents.hf import quiet_transformers

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), list(warnings.filters))
    with pytest.raises(RuntimeError):
        with quiet_transformers(warnings=False):
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert not hf_logging.is_progress_bar_enabled()
            with warnings.catch_warnings(record=True) as seen:
                warnings.warn_explicit("noise", UserWarning, "x.py", 1, module="transformers.modeling_utils")
            assert seen == []
            raise RuntimeError("the block fails")
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), list(warnings.filters)) == before


def test_build_agent_picks_generator_or_scorer_from_the_action_space(model_dir):
    gen = build_agent(f"hf:{model_dir}?temperature=0&max_new_tokens=7", ctx_for("writer"))
    assert isinstance(gen, GeneratorAgent) and gen.kind == "hf"
    assert gen.sampling.temperature == 0 and gen.sampling.max_new_tokens == 7
    assert gen.sampling.top_k == 5  # saved with the model (arena_agent.json), not overridden
    assert len(gen.act(obs(["hello"]))[0].extras["completion_ids"]) <= 7
    judge = build_agent(f"hf:{model_dir}?max_batch=2", ctx_for("judge"))
    assert isinstance(judge, ScorerAgent) and judge.max_batch == 2
    assert judge.act(obs(PROMPTS))[0].shape == (1,)
    with pytest.raises(ArenaError, match="unknown hf option"):
        build_agent(f"hf:{model_dir}?temperature=0", ctx_for("judge"))
    with pytest.raises(ArenaError, match="no model at '/no/such/model/dir'"):
        build_agent("hf:/no/such/model/dir", ctx_for("writer"))
    with pytest.raises(ArenaError, match="cannot load a causal LM"):  # exists, but holds no model
        build_agent(f"hf:{model_dir.parent}", ctx_for("writer"))


def test_ckpt_spec_rebuilds_the_agent_with_its_sampling_settings(tiny, tmp_path):
    from arena.checkpoints import write_checkpoint

    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=0, max_new_tokens=6))
    path = write_checkpoint(tmp_path / "run", "writer", 2, agent, None, {"game": "dummy-v0"})
    again = build_agent("ckpt:run/writer/round-2", ctx_for("writer", runs_dir=tmp_path))
    assert isinstance(again, GeneratorAgent) and again.sampling == agent.sampling
    assert ids_of(again.act(obs(PROMPTS))) == ids_of(agent.act(obs(PROMPTS)))
    assert (path / "model.safetensors").is_file()


def test_plays_prover_verifier_through_the_runner(model_dir, scorer_dir):
    pytest.importorskip("games.prover_verifier.env")
    from arena.registry import make, spec
    from arena.runner import play

    cls = spec("prover-verifier-v1").load()
    prover = build_agent(f"hf:{model_dir}?max_new_tokens=8",
                         ctx_for("prover", cls, "prover-verifier-v1"))
    verifier = build_agent(f"hf:{scorer_dir}", ctx_for("verifier", cls, "prover-verifier-v1"))
    assert isinstance(prover, GeneratorAgent) and isinstance(verifier, ScorerAgent)
    episodes, stats = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6,
                           concurrency=4, seed=1)
    assert len(episodes) == 6 and stats.act_calls["prover"] == 2 and stats.mean_batch == 3.0
    for ep in episodes:
        p, judged = ep.moves("prover")[0], [v.observation["solution"] for v in ep.moves("verifier")]
        assert 1 <= p.extras["completion_tokens"] <= 8 and isinstance(p.action, str)
        assert p.action in judged and len(judged) == 2  # the solution, and the reference solution
        assert ep.info["verifier"]["valid_score"] is True
    assert stats.completion_tokens == sum(ep.completion_tokens for ep in episodes)
    # the runner does not reset agents; the same agent seed gives the same transcripts
    prover.reset(0)
    a, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=4, seed=1)
    prover.reset(0)
    b, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=4, seed=1)
    assert [e.to_json() for e in a] == [e.to_json() for e in b]
    # per-move seeds: the transcripts do not depend on the agent's own seed, on K, or on
    # which episodes are played together (two halves played apart, as two workers would)
    prover.reset(123)
    c, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=6, seed=1)
    halves = [play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 3,
                   concurrency=2, seed=1, first_index=i)[0] for i in (0, 3)]
    for other in (c, halves[0] + halves[1]):  # floats differ between batch shapes in the last bits only
        assert [[(m.seat, m.action if isinstance(m.action, str) else None, m.extras.get("completion_ids"))
                 for m in e.transcript] for e in other] == \
               [[(m.seat, m.action if isinstance(m.action, str) else None, m.extras.get("completion_ids"))
                 for m in e.transcript] for e in a]
        assert [e.rewards["prover"] for e in other] == pytest.approx([e.rewards["prover"] for e in a], abs=1e-5)

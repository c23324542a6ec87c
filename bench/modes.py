"""What gets timed: the two rollout modes, one `generate` on shared prompts, one step per learner.

(a) batched: `arena.runner.play` with K concurrent episodes, every Text seat a
    `GeneratorAgent`; (b) naive: one episode at a time, one `model.generate` per
    move on a single prompt, as TextArena-style agents do.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import time
from typing import Any, Callable

import torch

from arena.seeding import derive
from arena.types import Move
from bench.players import build_scorer

# -- the two modes ------------------------------------------------------------------------

def run_batched(args, make_env: Callable[[], Any], seats: dict[str, Any], n: int, seed: int):
    from arena.runner import play

    for s, agent in seats.items():
        agent.reset(derive(seed, "agent", s))
    return play(make_env, seats, n, concurrency=args.concurrency, seed=seed)


def naive_generate(agent, prompt: str) -> Move:
    """One TextArena-style move: tokenise one prompt, call `model.generate`, decode."""
    from agents.hf import encode_prompt

    s, model, tok = agent.sampling, agent.model, agent.tokenizer
    ids = torch.tensor([encode_prompt(tok, prompt, s)], device=agent.device)
    kw: dict[str, Any] = dict(max_new_tokens=s.max_new_tokens, pad_token_id=agent.pad_id,
                              do_sample=s.temperature > 0)
    if s.temperature > 0:
        kw.update(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)  # top_k=0: off, as in the agent
    if s.ignore_eos:
        kw["min_new_tokens"] = s.max_new_tokens  # EOS suppressed: fixed length, as in batched mode
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
    completion = out[0, ids.shape[1]:].tolist()
    return Move(tok.decode(completion, skip_special_tokens=True), {"completion_tokens": len(completion)})


def run_naive(make_env: Callable[[], Any], seats: dict[str, Any], n: int, seed: int) -> tuple[int, float]:
    """Play n episodes one after another, one move per call; return (completion tokens, wall s)."""
    from agents.hf import GeneratorAgent

    tokens = 0
    t0 = time.perf_counter()
    for i in range(n):
        env = make_env()
        env.reset(seed=derive(seed, "episode", i))
        while env.agents:
            seat = env.agent_selection
            if env.terminations[seat] or env.truncations[seat]:
                env.step(None)
                continue
            obs = env.observe(seat)
            agent = seats[seat]
            if isinstance(agent, GeneratorAgent):
                move = naive_generate(agent, obs["prompt"])
            else:
                a = agent.act([obs])[0]
                move = a if isinstance(a, Move) else Move(a)
            tokens += int(move.extras.get("completion_tokens", 0))
            env.step(move.action)
    return tokens, time.perf_counter() - t0


# -- shared prompts -----------------------------------------------------------------------

def grouped_generation(agent, episodes, seat: str, group: int, device: torch.device) -> dict[str, float]:
    """One `generate` call on K prompts of the run, all distinct, against one on K/group distinct
    prompts repeated `group` times (RLOO/GRPO and ReST sample a group per prompt; the agent
    prefills each distinct prompt once). Seconds of each, best of 3."""
    prompts = [st.extras["prompt_ids"] for ep in episodes for st in ep.moves(seat) if "prompt_ids" in st.extras]
    k = len(prompts) - len(prompts) % group
    if k < group or group < 2:
        return {}
    distinct, grouped = prompts[:k], [p for p in prompts[:k // group] for _ in range(group)]

    def best_of_3(batch) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            agent.generate(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times)

    return {"rows": float(k), "group": float(group), "distinct_s": best_of_3(distinct),
            "grouped_s": best_of_3(grouped)}


def grouped_update(agent, episodes, seat: str, group: int, device: torch.device, seed: int) -> dict[str, float]:
    """One policy-gradient update (KL to a frozen copy, one optimizer step) on K sampled completions after K
    distinct prompts, against the same completions after K/group prompts repeated `group` times: the
    learners' forward runs each repeated prompt once, and each row that is a copy of another once
    (`agents.batch.completion_logprobs`; `grouped_distinct_rows` counts the grouped side's distinct rows). The
    agent's weights are restored after each. Seconds of each, best of 3."""
    from agents.learners import Optimization, PolicyGradientLearner
    from arena.types import Episode, Step

    moves = [st for ep in episodes for st in ep.moves(seat) if "completion_ids" in st.extras]
    k = len(moves) - len(moves) % group
    if k < group or group < 2:
        return {}
    moves = moves[:k]

    def batch(prompt_of) -> list[Episode]:
        return [Episode(i, 0, {}, {}, [Step(seat, {"prompt": str(prompt_of(i))}, st.action,
                                             {"prompt_ids": moves[prompt_of(i)].extras["prompt_ids"],
                                              "completion_ids": st.extras["completion_ids"]})], 0)
                for i, st in enumerate(moves)]

    distinct, grouped = batch(lambda i: i), batch(lambda i: i // group)
    rewards = [float(i % 3) for i in range(k)]
    learner = PolicyGradientLearner(seat=seat, reference=copy.deepcopy(agent.model), beta=0.05,
                                    opt=Optimization(lr=1e-5, batch_size=k))
    saved = {n: v.clone() for n, v in agent.model.state_dict().items()}

    def best_of_3(eps) -> float:
        times = []
        for _ in range(3):
            learner.reset(seed)
            t0 = time.perf_counter()
            learner.fit_rewards(agent, eps, rewards)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            agent.model.load_state_dict(saved)
        return min(times)

    # a group's rows that sampled the same completion are copies, and copies run once too (`copied_rows`)
    grouped_rows = {(i // group, tuple(st.extras["completion_ids"])) for i, st in enumerate(moves)}
    return {"rows": float(k), "group": float(group), "grouped_distinct_rows": float(len(grouped_rows)),
            "distinct_s": best_of_3(distinct), "grouped_s": best_of_3(grouped)}


# -- learner steps ------------------------------------------------------------------------

def learner_steps(args, seats: dict[str, Any], episodes) -> dict[str, float]:
    """Seconds for one `update` (= one optimizer step on a micro-batch of `--learner-batch`) per loss."""
    try:
        from agents import learners as L
    except ImportError as e:
        return {"unavailable": str(e)}  # type: ignore[dict-item]
    from agents.hf import GeneratorAgent, ScorerAgent

    gen = next((a for a in seats.values() if isinstance(a, GeneratorAgent)), None)
    if gen is None:
        return {}
    seat = next(s for s, a in seats.items() if a is gen)
    scorer = next((a for a in seats.values() if isinstance(a, ScorerAgent)), None) or build_scorer(args)
    b = args.learner_batch
    moves = [(ep, st) for ep in episodes for st in ep.moves(seat)][:b + 1]
    pairs = [(st.observation["prompt"], st.action) for _, st in moves]
    texts = [st.observation["prompt"] + st.action for _, st in moves]
    opt = L.Optimization(batch_size=b, lr=1e-5)
    reference = copy.deepcopy(gen.model)
    learners: dict[str, tuple[Any, Any]] = {
        "sft": (L.SFTLearner(data=pairs[:b], opt=opt), gen),
        "dpo": (L.DPOLearner(data=[(p, c, pairs[i + 1][1]) for i, (p, c) in enumerate(pairs[:b])],
                             reference=reference, loss="dpo", opt=opt), gen),
        "rpo-sum": (L.DPOLearner(data=[(p, c, pairs[i + 1][1]) for i, (p, c) in enumerate(pairs[:b])],
                                 reference=reference, loss="rpo-sum", opt=opt), gen),
        "rpo-mean": (L.DPOLearner(data=[(p, c, pairs[i + 1][1]) for i, (p, c) in enumerate(pairs[:b])],
                                  reference=reference, loss="rpo-mean", opt=opt), gen),
        "bradley-terry": (L.BradleyTerryLearner(data=list(zip(texts[:b], texts[1:b + 1])), opt=opt), scorer),
        "verifier": (L.VerifierLearner(data=[(i // 2, t, i % 2 == 0) for i, t in enumerate(texts[:2 * (b // 2)])],
                                       opt=dataclasses.replace(opt, batch_size=max(1, b // 2))), scorer),
        "policy-gradient+kl": (L.PolicyGradientLearner(
            seat=seat, reward_fn=lambda eps: [float(i % 3) for i in range(len(eps))], reference=reference,
            beta=0.05, opt=opt, group_fn=lambda e, s: e.index % 2), gen),
        "filtered-nll": (L.FilteredNLLLearner(data=[(p, c, (i % 4) / 4 + 0.1) for i, (p, c) in enumerate(pairs[:b])],
                                              thresholds=(0.0,), opt=opt), gen),
    }
    pg_episodes = [ep for ep, _ in moves[:b]]
    out = {}
    saved = {id(a): {k: v.clone() for k, v in a.model.state_dict().items()} for a in (gen, scorer)}
    for name, (learner, agent) in learners.items():
        learner.reset(args.seed)
        t0 = time.perf_counter()
        metrics = learner.update(agent, pg_episodes)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = time.perf_counter() - t0
        if metrics.get("steps", 1.0) != 1.0:
            print(f"  (note: {name} took {metrics.get('steps')} steps)", file=sys.stderr)
    for a in (gen, scorer):  # leave the agents as they were
        a.model.load_state_dict(saved[id(a)])
    return out


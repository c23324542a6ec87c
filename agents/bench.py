"""Rollout benchmark: the engine's batched runner against a naive one-`generate`-per-move loop.

    python -m agents.bench                      # tiny random model, prover-verifier-v0, CPU
    python -m agents.bench --model runs/tiny-pv --eos
    python -m agents.bench --preset qwen2-0.5b --device cuda --dtype bfloat16

Both modes play the same game with the same model and sampling settings:

(a) batched: `arena.runner.play` with K concurrent episodes; every Text seat is a
    `GeneratorAgent` (left-padded batched decoding with a KV cache);
(b) naive: one episode at a time, one `model.generate` call per move on a single
    prompt, as TextArena-style agents do (still with transformers' KV cache).

By default generation length is fixed (EOS suppressed in both modes) so both do
exactly the same number of tokens; `--eos` lets completions end early. Box seats
(verifier, reward model) get the generic `scripted:random` bot, so the comparison
is about generation; `--seat verifier=scorer` puts a `ScorerAgent` on a fresh tiny
scorer there instead, and `--seat SEAT=SPEC` any other agent (e.g.
`--seat verifier=scripted:spot-check`). A scorer reads whole texts in one forward
pass, which is compute-bound on a CPU even for one text, so it gains little from
batching there and dilutes the ratio.

Both modes run on the same torch threads (`--threads`; default torch's choice,
one per physical core): the batched runner's large ops use every core, the naive
loop's batch-1 ops are too small to split.

Printed per mode: completion tokens/s, episodes/s, the fraction of wall time
outside the agents' `act` calls (`PlayStats.overhead_fraction`, batched only),
the fraction outside model forward passes (timed by forward hooks on every model,
synchronised on CUDA), and the process's peak RSS (plus the Python heap peak
from a separate `tracemalloc` pass, and CUDA peak memory on a GPU). Then one
`generate` call on K of the run's prompts as K/G distinct prompts x G is timed
against K distinct ones (`--group-size`; the agent prefills a prompt once), and
one learner step of each loss in `agents.learners` on data from the run.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import resource
import sys
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from arena.seeding import derive
from arena.types import Move

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    # Qwen2-0.5B's shape (494M parameters), randomly initialised; the char tokenizer's
    # ids are a subset of the 151936-token vocabulary (sampled ids beyond it decode to nothing).
    "qwen2-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                       num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True),
}


@dataclass
class ForwardClock:
    """Wall time inside the forward calls of the models it is attached to."""

    seconds: float = 0.0
    calls: int = 0
    sync: bool = False
    _start: dict[int, float] = field(default_factory=dict)

    @contextmanager
    def attach(self, *models: torch.nn.Module) -> Iterator["ForwardClock"]:
        handles = []
        for m in models:
            handles.append(m.register_forward_pre_hook(self._pre))
            handles.append(m.register_forward_hook(self._post))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _pre(self, module, args) -> None:
        self._start[id(module)] = self._now()

    def _post(self, module, args, output) -> None:
        self.seconds += self._now() - self._start.pop(id(module))
        self.calls += 1


@dataclass
class ModeResult:
    """Figures of one mode. `wall_s` is the whole call (for batched: env construction too);
    `loop_s` the episode loop alone (batched: `PlayStats.wall_s`; naive: = wall_s)."""

    mode: str
    episodes: int
    wall_s: float
    cpu_s: float
    """CPU seconds of this process (all threads): a figure other processes on the machine disturb less."""
    loop_s: float
    completion_tokens: int
    forward_s: float
    forward_calls: int
    act_overhead: float | None = None
    mean_batch: float | None = None
    peak_rss_mb: float = 0.0
    python_heap_peak_mb: float | None = None
    cuda_peak_mb: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.wall_s

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.completion_tokens / self.cpu_s

    @property
    def setup_s(self) -> float:
        return max(0.0, self.wall_s - self.loop_s)

    @property
    def outside_forward(self) -> float:
        return max(0.0, 1.0 - self.forward_s / self.wall_s)

    @property
    def outside_forward_loop(self) -> float:
        return max(0.0, 1.0 - self.forward_s / self.loop_s)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(tokens_per_s=self.tokens_per_s, episodes_per_s=self.episodes_per_s,
                 tokens_per_cpu_s=self.tokens_per_cpu_s, setup_s=self.setup_s,
                 outside_forward=self.outside_forward, outside_forward_loop=self.outside_forward_loop)
        return d


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cuda_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


# -- building the players ---------------------------------------------------------------

def build_generator(args):
    from agents.hf import GeneratorAgent, SamplingConfig, parse_hf_arg, split_options
    from agents.tiny import new_tiny_causal_lm

    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, ignore_eos=not args.eos)
    if args.model:
        ref, gguf, options = parse_hf_arg(args.model)
        _, load = split_options(options, generator=True)
        load = dataclasses.replace(load, device=args.device, dtype=args.dtype)
        return GeneratorAgent.from_pretrained(ref, gguf_file=gguf, sampling=sampling, load=load)
    model, tok = new_random_causal_lm(args.preset, args.seed) if args.preset != "tiny" else \
        new_tiny_causal_lm(args.seed)
    model.to(device=args.device, dtype=_dtype(args.dtype)).eval()
    return GeneratorAgent(model, tok, sampling, seed=args.seed)


def new_random_causal_lm(preset: str, seed: int):
    """A randomly initialised model of a real architecture's shape, with the char tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from agents.tiny import char_tokenizer, init_weights

    kw = dict(PRESETS[preset])
    tok = char_tokenizer()
    config = AutoConfig.for_model(kw.pop("model_type"), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **kw)
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(config)
    return init_weights(model, seed), tok


def build_scorer(args):
    from agents.hf import ScorerAgent
    from agents.tiny import new_tiny_scorer

    model, tok = new_tiny_scorer(derive(args.seed, "scorer") % 2**31)
    model.to(args.device).eval()
    return ScorerAgent(model, tok)


def _dtype(name: str):
    from agents.hf import resolve_dtype

    d = resolve_dtype(name)
    return None if d == "auto" else d


def build_seats(args, env) -> dict[str, Any]:
    from gymnasium import spaces

    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent

    overrides = dict(s.split("=", 1) for s in args.seat)
    gen = build_generator(args)
    seats = {}
    gspec = game_spec(args.game)
    for seat in env.possible_agents:
        space = env.action_space(seat)
        spec = overrides.get(seat, "generator" if isinstance(space, spaces.Text) else "scripted:random")
        if spec == "generator":
            seats[seat] = gen  # one model even if several seats generate (as in self-play)
        elif spec == "scorer":
            seats[seat] = build_scorer(args)
        else:
            seats[seat] = build_agent(spec, AgentContext.for_seat(gspec, seat, Path("runs"), args.device))
    return seats


def models_of(seats: dict[str, Any]) -> list[torch.nn.Module]:
    found: dict[int, torch.nn.Module] = {}
    for agent in seats.values():
        m = getattr(agent, "model", None)
        if isinstance(m, torch.nn.Module):
            found[id(m)] = m
    return list(found.values())


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


def measure(fn: Callable[[], Any], models: list[torch.nn.Module],
            device: torch.device) -> tuple[Any, float, float, ForwardClock]:
    """Run fn with forward hooks on `models`: (result, wall s, process CPU s, clock)."""
    clock = ForwardClock(sync=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    with clock.attach(*models):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, wall, cpu, clock


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


# -- main ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="arena bench", description=__doc__.split("\n\n")[0],
                                epilog="Figures are printed; --json writes them to a file too.")
    p.add_argument("--game", default="prover-verifier-v0", help="game id (default: %(default)s)")
    p.add_argument("--model", default="", help="hf spec of the generator (dir, hub id, .gguf); default: "
                   "a fresh random model of --preset")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="random model shape (default: tiny)")
    p.add_argument("--episodes", type=int, default=128, help="episodes in the batched run (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent episodes (default: %(default)s)")
    p.add_argument("--naive-episodes", type=int, default=16, help="episodes in the naive run (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens per move (default: %(default)s)")
    p.add_argument("--eos", action="store_true", help="let completions end at EOS (default: fixed length)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seat", action="append", default=[], metavar="SEAT=SPEC",
                   help="agent for a seat: an agent spec, `generator` (the benchmarked model) or `scorer` "
                   "(a tiny ScorerAgent); default: Text seats = generator, others = scripted:random")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for both modes (default: 0 = torch's choice, one per physical core; "
                   "on a busy machine use fewer than its free cores, or every op spin-waits)")
    p.add_argument("--group-size", type=int, default=4,
                   help="also time one generate call on K prompts as K/G distinct prompts x G against K distinct "
                   "(0: skip; default: %(default)s)")
    p.add_argument("--no-learners", action="store_true", help="skip timing the learner steps")
    p.add_argument("--learner-batch", type=int, default=8, help="micro-batch for learner steps (default: 8)")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the Python-heap pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from arena.registry import make

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    make_env = lambda: make(args.game)  # noqa: E731
    seats = build_seats(args, make_env())
    models = models_of(seats)
    n_params = {type(m).__name__: sum(p.numel() for p in m.parameters()) for m in models}
    print(f"game {args.game}  seats {', '.join(f'{s}={type(a).__name__}' for s, a in seats.items())}  "
          f"models {n_params}  device {device}  threads {torch.get_num_threads()}  "
          f"max_new_tokens {args.max_new_tokens}{' (EOS on)' if args.eos else ' (fixed length)'}")

    # warm-up: first calls pay for lazy init, allocator growth, kernel selection
    run_batched(args, make_env, seats, min(args.concurrency, 8), derive(args.seed, "warmup"))
    run_naive(make_env, seats, 1, derive(args.seed, "warmup"))

    (tokens, _), wall_n, cpu_n, clock_n = measure(
        lambda: run_naive(make_env, seats, args.naive_episodes, args.seed), models, device)
    naive = ModeResult("naive", args.naive_episodes, wall_n, cpu_n, wall_n, tokens, clock_n.seconds, clock_n.calls,
                       peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak_mb(device))

    (episodes, stats), wall_b, cpu_b, clock_b = measure(
        lambda: run_batched(args, make_env, seats, args.episodes, args.seed), models, device)
    batched = ModeResult("batched", len(episodes), wall_b, cpu_b, stats.wall_s, stats.completion_tokens,
                         clock_b.seconds, clock_b.calls, act_overhead=stats.overhead_fraction,
                         mean_batch=stats.mean_batch, peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak_mb(device))
    if not args.no_tracemalloc:  # a separate pass: tracing slows Python code, so it is not timed
        for result, fn in ((naive, lambda: run_naive(make_env, seats, 2, args.seed)),
                           (batched, lambda: run_batched(args, make_env, seats, args.concurrency, args.seed))):
            tracemalloc.start()
            fn()
            result.python_heap_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()

    print(render(naive, batched))
    gen_seat = next((s for s, a in seats.items() if hasattr(a, "generate")), None)
    grouped = grouped_generation(seats[gen_seat], episodes[:args.concurrency], gen_seat, args.group_size,
                                 device) if gen_seat and args.group_size > 1 else {}
    if grouped:
        print(f"shared prompts: {grouped['rows']:.0f} rows as {grouped['rows'] / grouped['group']:.0f} distinct "
              f"prompts x {grouped['group']:.0f} in {grouped['grouped_s'] * 1000:.0f} ms, "
              f"{grouped['rows']:.0f} distinct in {grouped['distinct_s'] * 1000:.0f} ms "
              f"({grouped['distinct_s'] / grouped['grouped_s']:.2f}x; each distinct prompt is prefilled once)")
    learners = {} if args.no_learners else learner_steps(args, seats, episodes)
    if learners:
        print("learner step (one update, one optimizer step on a micro-batch of "
              f"{args.learner_batch}):")
        for name, s in learners.items():
            print(f"  {name:<20} {s * 1000:9.1f} ms" if isinstance(s, float) else f"  {name}: {s}")
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "device": str(device), "threads": torch.get_num_threads(), "parameters": n_params,
            "naive": naive.to_json(), "batched": batched.to_json(), "shared_prompts": grouped,
            "speedup_tokens": batched.tokens_per_s / naive.tokens_per_s,
            "speedup_tokens_cpu": batched.tokens_per_cpu_s / naive.tokens_per_cpu_s,
            "speedup_episodes": batched.episodes_per_s / naive.episodes_per_s,
            "learner_step_s": learners}, indent=2))
    return 0


def render(naive: ModeResult, batched: ModeResult) -> str:
    rows = [("", "naive (generate/move)", f"batched (K={batched.mean_batch and round(batched.mean_batch)})")]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for label, get, f in [
        ("episodes", lambda r: r.episodes, "d"),
        ("wall s", lambda r: r.wall_s, ".2f"),
        ("  of which env construction s", lambda r: r.setup_s if r.mode == "batched" else None, ".2f"),
        ("process CPU s", lambda r: r.cpu_s, ".2f"),
        ("completion tokens", lambda r: r.completion_tokens, "d"),
        ("tokens/s", lambda r: r.tokens_per_s, ",.0f"),
        ("episodes/s", lambda r: r.episodes_per_s, ",.2f"),
        ("tokens per CPU-second", lambda r: r.tokens_per_cpu_s, ",.0f"),
        ("forward calls", lambda r: r.forward_calls, "d"),
        ("time outside forward (wall)", lambda r: r.outside_forward, ".1%"),
        ("time outside forward (play loop)", lambda r: r.outside_forward_loop, ".1%"),
        ("time outside act (PlayStats)", lambda r: r.act_overhead, ".1%"),
        ("mean act batch", lambda r: r.mean_batch, ".1f"),
        ("peak RSS MiB (process)", lambda r: r.peak_rss_mb, ",.0f"),
        ("Python heap peak MiB", lambda r: r.python_heap_peak_mb, ",.1f"),
        ("CUDA peak MiB", lambda r: r.cuda_peak_mb, ",.0f"),
    ]:
        rows.append((label, fmt(get(naive), f), fmt(get(batched), f)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
    lines.append(f"speed-up: {batched.tokens_per_s / naive.tokens_per_s:.1f}x tokens/s, "
                 f"{batched.episodes_per_s / naive.episodes_per_s:.1f}x episodes/s (wall); "
                 f"{batched.tokens_per_cpu_s / naive.tokens_per_cpu_s:.1f}x tokens per CPU-second")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

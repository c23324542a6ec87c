"""The generator: `GeneratorAgent`, a causal LM playing a `Text` seat.

Batched, KV-cached, seedable decoding (`GeneratorAgent.generate`; the cache it
decodes into is `agents.hf.kvcache`'s, preallocated per batch), and `encode_prompt`, the
one function that turns a prompt into the ids the model conditions on (learners
and pretraining call it too, so train and play see identical inputs).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from agents.hf.cpu_attention import decode_attention_for
from agents.hf.decode_step import LlamaStep
from agents.hf.config import DEFAULT_MAX_BATCH, LoadConfig, SamplingConfig, resolve_device
from agents.hf.kvcache import BufferPool, PreallocLayer, cache_argument, new_kv_cache, rows_of_cache
from agents.hf.loading import (check_model_ref, load_adapter_in_place, load_errors, load_model, load_tokenizer,
                               load_weights_in_place, save_agent_dir)
from agents.hf.lora import is_lora
from arena.textobs import read_text
from arena.types import ArenaError, Move, Observation


def encode_prompt(tokenizer, prompt: str, sampling: SamplingConfig | None = None) -> list[int]:
    """The token ids a generator conditions on for `prompt`.

    With a chat template (and `sampling.chat_template`): the prompt as the user
    message, plus the assistant turn's opening. Otherwise the raw prompt with the
    tokenizer's own special tokens (the tiny tokenizer adds `<s>`). Pretraining
    and learners use this same function, so train and play see identical inputs.
    """
    sampling = sampling or SamplingConfig()
    if sampling.chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        if sampling.system:
            messages.insert(0, {"role": "system", "content": sampling.system})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(prompt)["input_ids"]
    if sampling.max_prompt_tokens and len(ids) > sampling.max_prompt_tokens:
        ids = ids[-sampling.max_prompt_tokens:]
    return list(ids)


def generate_seeds(prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None, draw) -> list[int]:
    """The sampling seeds of one `generate` call, one per prompt (`draw(n)` when none are given);
    a seed count that does not match or an empty prompt is one line. Every generator agent's rule."""
    seeds = [int(x) for x in seeds] if seeds is not None else draw(len(prompts))
    if len(seeds) != len(prompts):
        raise ArenaError(f"generate got {len(seeds)} seeds for {len(prompts)} prompts")
    if min(len(p) for p in prompts) == 0:
        raise ArenaError("empty prompt: the tokenizer produced no tokens")
    return seeds


def _stop_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if eos is None:
            continue
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return {int(i) for i in ids}


# -- the agent ----------------------------------------------------------------------

CPU_PREFILL_TOKENS = 1024
"""Prompt tokens (rows x padded length) per prefill pass on a CPU when `GeneratorAgent.prefill_tokens`
is None: a chunk's activations stay in the CPU's caches. 64 prompts of ~90 tokens on the tiny model,
one thread, on a loaded 2-core machine: the prefill was 1.1-1.4x faster (paired min-max; median 1.2) in
chunks of this size than in one pass, with the same logits (`arena bench --floors`, docs/benchmarks.md)."""

CPU_KV_POOL_BYTES = 128 * 2**20
"""KV cache buffers a `GeneratorAgent` keeps from one batch to the next on a CPU (`BufferPool`): the tiny
model's batch-64 prefill was 6% faster with its cache's 33 MB kept, the same tokens. Layers whose
buffers would pass the limit get new ones each batch."""

RACE_FLOATS_PER_ROW = 2**18
"""Uniform draws buffered per batch row (steps x vocabulary): each row's generator fills up to
`RACE_STEPS_PER_CALL` steps of its draws in one call instead of one call a step (the same numbers on a CPU)."""
RACE_STEPS_PER_CALL = 32
"""At most this many steps of draws a call (a row that ends sooner leaves the rest unused): at 8, the 64 rows' calls
cost ~56 us a decode step at the tiny model's batch 64, ~1% of the step since it is the project's own."""


@dataclass
class Completion:
    """One generated completion."""

    text: str
    """Decoded completion (special tokens skipped), cut before the first stop string."""
    prompt_ids: list[int]
    completion_ids: list[int]
    """Every sampled token, including the EOS or the tokens that spelled a stop string."""
    logprobs: list[float]
    """log p(token | prefix) under the model itself (temperature 1, no top-k/p), one per completion id."""
    finish: str
    """'eos', 'stop' or 'length'."""


class GeneratorAgent:
    """A causal LM playing a `Text` seat: batched, KV-cached, seedable sampling.

    One `act` call is cut into batches of at most `max_batch` prompts (0: 64), so memory is
    bounded by a batch size; each batch is left-padded (position ids count real tokens only,
    as in transformers' `generate`) and decoded together with a
    KV cache preallocated for the batch (`new_kv_cache`; on a CPU its buffers are kept for the next
    batch, `BufferPool`); identical prompts are
    prefilled once and their cache rows copied; rows whose completion has ended
    are dropped from the batch and the cache (once they are a quarter of it), so
    the others run faster.
    Sampling is seeded per row: every prompt gets a seed (the runner passes one per move, derived
    from the episode's seed, see `seeded`; otherwise one is drawn from the agent's own
    `torch.Generator`, re-seeded by `reset(seed)`), and its tokens are drawn from a generator
    seeded with it alone. So a completion depends on its prompt and seed, not on which other
    prompts share the batch, how `act` calls are cut into batches, or which process runs them
    (up to float differences between batch shapes, which can flip a near-tie).

    `model`, `tokenizer`, `device` and `sampling` are public: learners train
    `model` in place, and `encode_prompt(tokenizer, prompt, sampling)` gives the
    exact prompt ids the agent conditions on.
    """

    kind = "hf"
    produces = "text"
    seeded = True
    """`act` takes `seeds=` (one sampling seed per observation): see `arena.types.Agent`."""
    text_field = "prompt"
    """The observation field this agent reads (its factory sets the seat's: `AgentContext.llm_text_field`)."""
    prefill_tokens: int | None = None
    """Prompt tokens (rows x padded length) per prefill forward pass: a batch's prompts are prefilled in
    chunks of rows, written in place into the one KV cache. None: `CPU_PREFILL_TOKENS` on a CPU, the
    whole batch in one pass on other devices (a GPU wants the large matmul); 0: always one pass."""
    cpu_decode: bool = True
    """On a CPU in float32, decode steps run this project's own code: a Llama-architecture model's whole step
    (`agents.hf.decode_step`), and any model's attention in `agents.hf.cpu_attention`'s loop (where a C compiler
    builds it); docs/benchmarks.md has the figures. False: transformers' forward and sdpa, as on other devices."""
    pool = None
    """Set by a rollout backend with workers (`arena.rollout.ray.SeatPool`): `act` then draws the
    seeds here and `pool.act(self, observations, seeds)` generates on the workers' replicas, so
    generation inside a learner's `update` is spread too. None: generate in this process."""

    def __init__(self, model, tokenizer, sampling: SamplingConfig | None = None, *,
                 seed: int = 0, max_batch: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingConfig()
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.stop_token_ids = _stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._pieces: dict[int, str] = {}
        self.base: dict[str, Any] | None = None
        """`{"ref", "gguf_file"}` of the base weights (set by `from_pretrained`): what a LoRA seat's
        adapter checkpoint names as its base."""

    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None, sampling: SamplingConfig | None = None,
                        load: LoadConfig | None = None) -> "GeneratorAgent":
        from transformers import AutoModelForCausalLM

        load = load or LoadConfig()
        device = resolve_device(load.device)  # a device this torch cannot use: one line, before loading
        check_model_ref(ref, gguf_file, download=load.download)
        try:
            model, base, _ = load_model(AutoModelForCausalLM, ref, gguf_file, load, "generator")
        except load_errors() as e:
            raise ArenaError(f"cannot load a causal LM from {ref!r}: {type(e).__name__}: {e}") from e
        model.to(device).eval()
        agent = cls(model, load_tokenizer(ref, gguf_file, download=load.download), sampling, seed=load.seed,
                    max_batch=load.max_batch)
        agent.base = base
        return agent

    # -- the Agent protocol
    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def draw_seeds(self, n: int) -> list[int]:
        """`n` sampling seeds from the agent's own generator (for calls that pass none)."""
        return torch.randint(0, 2**62, (n,), generator=self.generator, device=self.generator.device).tolist()

    def act(self, observations: Sequence[Observation], seeds: Sequence[int] | None = None) -> list[Move]:
        seeds = list(seeds) if seeds is not None else self.draw_seeds(len(observations))
        if self.pool is not None:
            return self.pool.act(self, observations, seeds)
        prompts = [encode_prompt(self.tokenizer, read_text(obs, self.text_field), self.sampling)
                   for obs in observations]
        out: list[Move] = []
        step = self.max_batch or DEFAULT_MAX_BATCH  # memory bounded by a batch, however many come
        for i in range(0, len(prompts), step):
            for c in self.generate(prompts[i:i + step], seeds[i:i + step]):
                out.append(Move(c.text, {"prompt_ids": c.prompt_ids, "completion_ids": c.completion_ids,
                                         "logprobs": c.logprobs, "completion_tokens": len(c.completion_ids),
                                         "finish": c.finish}))
        return out

    # -- Checkpointable
    def save(self, directory: Path) -> None:
        save_agent_dir(self.model, self.tokenizer, directory,
                       {"agent": "generator", "sampling": dataclasses.asdict(self.sampling)}, base=self.base)

    def load(self, directory: Path) -> None:
        if is_lora(self.model):
            load_adapter_in_place(self.model, Path(directory))
        else:
            load_weights_in_place(self.model, Path(directory))

    # -- decoding
    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return piece

    def _sample(self, logits: torch.Tensor, race: torch.Tensor | None) -> torch.Tensor:
        """(b, V) float logits -> (b,) token ids; `race` (b, V): row r's Exp(1) draws (`_race`), from
        its own generator alone (None when greedy)."""
        s = self.sampling
        if s.temperature == 0:
            return logits.argmax(-1)
        if s.temperature != 1.0:  # x / 1.0 is x: one op fewer a step
            logits = logits / s.temperature
        if s.top_k and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]  # (b, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if s.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs > s.top_p  # mass before this token already reaches top_p
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        # Exponential race: argmax p_i / E_i with E_i ~ Exp(1) is a draw from p (same law as
        # torch.multinomial, several times faster on CPU).
        return (logits.softmax(-1) / race).argmax(-1)

    @staticmethod
    def _race(gens: Sequence[torch.Generator], steps: int, vocab: int, dev: torch.device) -> torch.Tensor:
        """(b, steps, V) Exp(1) draws: row r's from `gens[r]` alone, so a row's tokens do not depend on the
        batch it is in. E = -log U with U ~ uniform is Exp(1), and `rand` draws U ~5x faster than
        `exponential_` draws E. Several steps per call: one call a row a step was ~3% of the tiny
        model's batch-64 decode step. On a CPU a generator's stream does not depend on how it is cut
        (the same numbers as one call a step); on a GPU it does, but the steps per call depend on the
        vocabulary alone (`RACE_FLOATS_PER_ROW`), never on the batch."""
        race = torch.empty((len(gens), steps, vocab), device=dev)
        for r, g in enumerate(gens):
            torch.rand((steps, vocab), generator=g, device=dev, out=race[r])
        return race.log_().neg_()

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None = None) -> list[Completion]:
        """Decode one batch of tokenised prompts together; one `Completion` per prompt, in order.
        `seeds`: one sampling seed per prompt (default: drawn from the agent's generator)."""
        if not prompts:
            return []
        seeds = generate_seeds(prompts, seeds, self.draw_seeds)
        s, dev, model = self.sampling, self.device, self.model
        was_training = model.training
        model.eval()
        try:
            with decode_attention_for(model) if self.cpu_decode else contextlib.nullcontext():
                return self._decode([list(p) for p in prompts], seeds, s, dev)
        finally:
            model.train(was_training)

    def _decode(self, prompts: list[list[int]], seeds: list[int], s: SamplingConfig,
                dev: torch.device) -> list[Completion]:
        B, T = len(prompts), max(len(p) for p in prompts)
        # Identical prompts (a group of samples per prompt, as RLOO/GRPO and ReST draw them)
        # are prefilled once; their rows of the KV cache are copied before decoding.
        row_of: dict[tuple[int, ...], int] = {}
        source = [row_of.setdefault(tuple(p), len(row_of)) for p in prompts]  # unique row of each prompt
        U = len(row_of)
        ids = torch.full((U, T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((U, T), dtype=torch.long)
        for p, i in row_of.items():  # left padding: every row's last prompt token is at T-1
            ids[i, T - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, T - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (U, T) positions count real tokens only
        cache = new_kv_cache(self.model.config, T + s.max_new_tokens, rows=U, pool=self._buffer_pool(dev))
        fast_step = LlamaStep.of(self.model, cache) if self.cpu_decode else None
        logits = self._prefill(ids, mask, pos, cache, fast_step)  # (U, V)
        if U < B:
            expand = torch.tensor(source, device=dev)
            cache.batch_select_indices(expand)
            logits, mask, pos = logits[expand], mask[expand], pos[expand]
        # every step's positions and attention mask made once: step k's are views of them (b, 1) and
        # (b, T + k + 1); the step of its own reads a bool mask, transformers' forward the model's long one
        positions = pos[:, -1:] + torch.arange(1, s.max_new_tokens + 1, device=dev)  # (b, max_new_tokens)
        full_mask = torch.ones((B, T + s.max_new_tokens), dtype=torch.bool if fast_step else mask.dtype, device=dev)
        full_mask[:, :T] = mask
        rows = list(range(B))  # original index of each batch row
        gens = [torch.Generator(device=dev).manual_seed(x) for x in seeds] if s.temperature else []
        vocab = logits.shape[-1]
        per_call = max(1, min(RACE_STEPS_PER_CALL, RACE_FLOATS_PER_ROW // vocab))  # steps of draws per generator call
        race = None
        done = [False] * B  # by original index
        tokens: list[list[int]] = [[] for _ in range(B)]
        logps: list[list[float]] = [[] for _ in range(B)]
        texts = [""] * B
        finish = ["length"] * B
        stops, eos = s.stop, (set() if s.ignore_eos else self.stop_token_ids)
        for step in range(s.max_new_tokens):
            if gens and step % per_call == 0:  # (b, per_call, V): the next steps' draws of every row
                race = self._race([gens[i] for i in rows], min(per_call, s.max_new_tokens - step), vocab, dev)
            tok = self._sample(logits, race[:, step % per_call] if gens else None)  # (b,)
            lp = torch.log_softmax(logits, -1).gather(1, tok[:, None]).squeeze(1)  # (b,)
            keep = []
            for r, (i, t, t_lp) in enumerate(zip(rows, tok.tolist(), lp.tolist())):
                if done[i]:  # finished earlier, still in the batch until the next compaction
                    continue
                tokens[i].append(t)
                logps[i].append(t_lp)
                if t in eos:
                    finish[i], done[i] = "eos", True
                    continue
                if stops:
                    piece = self._piece(t)
                    texts[i] += piece
                    if any(x in texts[i][-(len(x) + len(piece)):] for x in stops):
                        finish[i], done[i] = "stop", True
                        continue
                keep.append(r)
            if not keep or step == s.max_new_tokens - 1:
                break
            # Drop finished rows from the batch and the KV cache once they are a quarter of
            # it: compacting copies the whole cache, so doing it for every single row that
            # ends costs more than carrying a few dead rows for some steps.
            if 4 * (len(rows) - len(keep)) >= len(rows):
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                tok, full_mask, positions = tok[sel], full_mask[sel], positions[sel]
                race = race[sel] if race is not None else None
                rows = [rows[r] for r in keep]
            mask, next_pos = full_mask[:, :T + step + 1], positions[:, step:step + 1]
            if fast_step is not None:
                logits = fast_step(tok, next_pos, mask)
            else:
                logits = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                                    **self._cache_kw(cache), use_cache=True).logits[:, -1, :].float()
        return [Completion(self._final_text(tokens[i]), prompts[i], tokens[i], logps[i], finish[i])
                for i in range(B)]

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache,
                 own: LlamaStep | None = None) -> torch.Tensor:
        """(U, V) float logits at the last prompt position of each row; `cache` filled for all U rows,
        in chunks of rows of about `prefill_tokens` tokens (every row keeps the batch's padded length,
        so each row's figures are those of one pass); through `own`'s prefill where given."""
        U, T = ids.shape
        budget = self.prefill_tokens
        if budget is None:
            budget = CPU_PREFILL_TOKENS if self.device.type == "cpu" else 0
        step = max(1, budget // T) if budget else U
        if own is not None:
            logits = [own.prefill(ids[i:i + step], mask[i:i + step], pos[i:i + step], i) for i in range(0, U, step)]
            return logits[0] if len(logits) == 1 else torch.cat(logits)
        if step >= U or not all(isinstance(layer, PreallocLayer) for layer in cache.layers):
            parts = [(slice(0, U), cache)]
        else:
            parts = [(slice(i, i + step), rows_of_cache(cache, self.model.config, i)) for i in range(0, U, step)]
        logits = [self.model(input_ids=ids[r], attention_mask=mask[r], position_ids=pos[r], **self._cache_kw(c),
                             use_cache=True, logits_to_keep=1).logits[:, -1, :].float() for r, c in parts]
        return logits[0] if len(logits) == 1 else torch.cat(logits)

    def _buffer_pool(self, dev: torch.device) -> BufferPool | None:
        """The pool the KV cache's buffers come from on a CPU; None elsewhere (a GPU's caching allocator
        keeps freed memory already)."""
        if dev.type != "cpu":
            return None
        pool = self.__dict__.get("_buffers")
        if pool is None:
            pool = self._buffers = BufferPool(CPU_KV_POOL_BYTES)
        return pool

    def _cache_kw(self, cache) -> dict[str, Any]:
        """The KV cache as the model's forward names it (`cache_argument`, looked up once)."""
        name = self.__dict__.get("_cache_arg")
        if name is None:
            name = self._cache_arg = cache_argument(self.model) or "past_key_values"
        return {name: cache}

    def _final_text(self, completion: list[int]) -> str:
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        cuts = [text.find(x) for x in self.sampling.stop if x in text]
        return text[:min(cuts)] if cuts else text

"""The likelihood scorer: `LikelihoodScorer`, a causal LM that scores a text by how unsurprising it finds it.

A generative verifier (cf. Zhang et al. 2024, "Generative Verifiers"): the score of
a text is a soft minimum, over the tokens after a marker (e.g. `"Solution:\\n"`, its first occurrence:
the prompt template's), of the LM's log-probability of each token given the ones before it:

    V = -T * log sum_t exp(-log p(x_t | x_<t) / T)

so one token the LM did not expect -- a wrong result in an arithmetic step --
pulls the whole score down (T -> 0: the minimum; T large: the sum). The end of
the text is scored as one more token, the LM's end-of-text token (`score_end`):
a text cut short is then as suspect as a wrong step. Without it a weak LM, whose
whole solutions add up many small surprises, scored a single line higher than a
whole correct solution, and a sneaky-only attacker collapsed onto one-line
"solutions" (fooled 0.1 -> 1.0 in two steps). `skip_last` leaves trailing tokens
out. The score is an unbounded scalar like a scalar head's, so every learner and
game that uses `ScorerAgent` uses this one unchanged (it overrides `_forward`
only); Bradley-Terry on it trains the LM where its errors are.

Why it exists: a tiny LM with a scalar head at the last token never learned to
check multi-step arithmetic from one bit per solution; the same LM read as a
generative verifier checks what its language model knows, and Bradley-Terry
training moves the LM where its errors are (`docs/results/checkability.md`). The
readout is data in `arena_agent.json` (`"readout"`), checked on load.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from agents.batch import PairBatch, completion_logprobs
from agents.hf.config import LoadConfig, resolve_device
from agents.hf.loading import check_model_ref, load_errors, load_model, load_tokenizer, save_agent_dir
from agents.hf.scorer import ScorerAgent
from arena.types import ArenaError


@dataclass(frozen=True)
class Readout:
    """How a `LikelihoodScorer` turns token log-probabilities into a score (`arena_agent.json`'s `readout`)."""

    after: str = ""
    """Score only the tokens after the first occurrence of this marker in the text ("" = all tokens): the
    prompt template's marker, which comes before the scored text, so a text that itself writes the
    marker is still scored whole."""
    temperature: float = 3.0
    """T of the soft minimum over token log-probabilities (small: the least likely token decides)."""
    skip_last: int = 0
    """Tokens of the text left out at its end (e.g. a closing newline the LM was never taught)."""
    score_end: bool = True
    """Score the end of the text too: log p(end-of-text token | the whole text). A text cut short is then
    as suspect as a wrong step (the LM expects the end only after a whole solution)."""

    def __post_init__(self) -> None:
        if not isinstance(self.after, str) or len(self.after) > 200:
            raise ArenaError("readout 'after' must be a string of at most 200 characters")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not math.isfinite(self.temperature) or not 0 < self.temperature <= 1000:
            raise ArenaError(f"readout 'temperature' must be a number in (0, 1000], not {self.temperature!r}")
        if isinstance(self.skip_last, bool) or not isinstance(self.skip_last, int) or not 0 <= self.skip_last <= 16:
            raise ArenaError(f"readout 'skip_last' must be an integer in 0..16, not {self.skip_last!r}")
        if not isinstance(self.score_end, bool):
            raise ArenaError(f"readout 'score_end' must be true or false, not {self.score_end!r}")

    @classmethod
    def from_meta(cls, value: Any) -> "Readout":
        """The readout an agent dir declares (untrusted JSON): known keys only, typed, in range."""
        if not isinstance(value, dict) or value.get("kind") != "likelihood":
            raise ArenaError("arena_agent.json 'readout' must be an object with kind 'likelihood'")
        unknown = set(value) - {"kind", "after", "temperature", "skip_last", "score_end"}
        if unknown:
            raise ArenaError(f"arena_agent.json 'readout' has unknown keys: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in value.items() if k != "kind"})

    def to_meta(self) -> dict[str, Any]:
        return {"kind": "likelihood", **dataclasses.asdict(self)}


def is_likelihood_meta(meta: dict[str, Any]) -> bool:
    """Whether an agent dir's `arena_agent.json` declares a likelihood scorer."""
    return meta.get("agent") == "scorer" and "readout" in meta


class LikelihoodScorer(ScorerAgent):
    """A causal LM playing a `Box(shape=(1,))` seat: the score is the soft-min token log-probability."""

    def __init__(self, model, tokenizer, *, readout: Readout, max_batch: int = 0, max_length: int = 0,
                 seed: int = 0):
        super().__init__(model, tokenizer, max_batch=max_batch, max_length=max_length, seed=seed)
        self.readout = readout

    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None, load: LoadConfig | None = None,
                        readout: Readout | None = None) -> "LikelihoodScorer":
        from transformers import AutoModelForCausalLM

        load = load or LoadConfig()
        device = resolve_device(load.device)
        check_model_ref(ref, gguf_file, download=load.download)
        tokenizer = load_tokenizer(ref, gguf_file, download=load.download)
        try:
            model, base, _ = load_model(AutoModelForCausalLM, ref, gguf_file, load, "generator")
        except load_errors() as e:
            raise ArenaError(f"cannot load a likelihood scorer from {ref!r}: {type(e).__name__}: {e}") from e
        readout = readout or Readout()
        if readout.score_end and tokenizer.eos_token_id is None:
            raise ArenaError(f"{ref}: the tokenizer has no end-of-text token; set the readout's score_end to false")
        model.to(device).eval()
        agent = cls(model, tokenizer, readout=readout, max_batch=load.max_batch,
                    max_length=load.max_length, seed=load.seed)
        agent.base = base
        return agent

    def _forward(self, texts: list[str]) -> torch.Tensor:
        """(B,) scores of one batch: the soft minimum of the scored tokens' log-probabilities."""
        r = self.readout
        starts = [self._start_token(t) for t in texts]
        enc = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt",
                             truncation=bool(self.max_length), max_length=self.max_length or None)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        length = mask.sum(1, keepdim=True)  # (B, 1): tokens of each text
        if r.score_end:  # one more position per row: the end-of-text token right after the text
            ids = torch.cat([ids, torch.full_like(ids[:, :1], self.tokenizer.pad_token_id or 0)], 1)
            mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], 1)
            rows = torch.arange(len(texts), device=self.device)
            ids[rows, length[:, 0]] = self.tokenizer.eos_token_id
            mask[rows, length[:, 0]] = 1
        # log p(x_{j+1}) at entry j, for the tokens from the first scored one on (earlier entries 0): texts with
        # the same head (one question's solutions) run it once (`completion_logprobs` shares their prompts)
        start = torch.tensor(starts, device=self.device)[:, None]
        first = torch.minimum(start, length - 1)  # the first token any rule below may score
        tokens = torch.arange(ids.shape[1], device=self.device)[None, :]
        token_lp, _ = completion_logprobs(self.model, PairBatch(ids, mask, (tokens >= first) & mask.bool()))
        pos = tokens[:, 1:]  # (1, L-1): the token each entry scores
        keep = (pos >= start) & (pos < length - r.skip_last)
        if r.score_end:
            keep = keep | (pos == length)
        keep = keep | ((pos == length - 1) & ~keep.any(1, keepdim=True))  # nothing else: the text's last token
        t = r.temperature
        return -t * torch.logsumexp(torch.where(keep, -token_lp / t, torch.full_like(token_lp, -1e9)), dim=1)

    def _start_token(self, text: str) -> int:
        """Index of the first token after the readout's marker (1: after BOS, when there is no marker)."""
        r = self.readout
        at = text.find(r.after) if r.after else -1
        if at < 0:
            return 1
        head = text[:at + len(r.after)]
        return len(self.tokenizer(head, truncation=bool(self.max_length),
                                  max_length=self.max_length or None)["input_ids"])

    def save(self, directory) -> None:
        save_agent_dir(self.model, self.tokenizer, directory, {"agent": "scorer", "readout": self.readout.to_meta()},
                       base=self.base)


"""The tiny default model: a character-level tokenizer and a small Llama, trained on a game's task.

Everything here produces ordinary Hugging Face objects: the tokenizer is a
`PreTrainedTokenizerFast` (a `tokenizers` BPE model with no merges, i.e. one
token per character of `arena.spaces.CHARSET`, plus `<pad> <s> </s> <unk>`),
the models are `LlamaForCausalLM` / `LlamaForSequenceClassification`, and
`pretrain` writes a directory that loads with plain
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`
(safetensors, no `trust_remote_code`).

Default size (`TINY_DEFAULTS`): 4 layers, width 128, 4 heads, MLP 384, tied
embeddings, 197-token vocabulary -- about 0.88M parameters. A game's recipe
calls `pretrain(pairs, out_dir, ...)` with its synthetic (prompt, completion)
pairs to implement `arena pretrain <game>`.

Weights are initialised from an explicit seed with a private `torch.Generator`
(`init_weights`), so the same seed gives the same model; the global RNG's state
is left exactly as it was.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from arena.spaces import CHARSET

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

TINY_DEFAULTS: dict[str, Any] = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=1024,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    tie_word_embeddings=True,
    attention_dropout=0.0,
)
"""The tiny Llama's shape; any key can be overridden in `tiny_config(**overrides)`."""


def char_tokenizer(charset: str = CHARSET, model_max_length: int = 1024):
    """A character-level `PreTrainedTokenizerFast`: ids 0-3 are `<pad> <s> </s> <unk>`, then one per char.

    Encoding adds `<s>` in front (the post-processor), never `</s>`; characters
    outside `charset` become `<unk>`; decoding concatenates characters.
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for c in charset:
        vocab.setdefault(c, len(vocab))
    # BPE without merges = one token per character, whitespace included (no pre-tokenizer).
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, model_max_length=model_max_length)


def tiny_config(vocab_size: int, *, num_labels: int | None = None, pad_token_id: int = 0, bos_token_id: int = 1,
                eos_token_id: int = 2, **overrides: Any):
    """A `LlamaConfig` of the tiny shape (`TINY_DEFAULTS` updated by `overrides`)."""
    from transformers import LlamaConfig

    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown tiny config key(s) {sorted(unknown)}; known: {sorted(TINY_DEFAULTS)}")
    kw = {**TINY_DEFAULTS, **overrides}
    if num_labels is not None:
        kw["num_labels"] = num_labels
    return LlamaConfig(vocab_size=vocab_size, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                       eos_token_id=eos_token_id, **kw)


def parse_shape(spec: str) -> dict[str, int | float]:
    """`hidden_size=64,num_hidden_layers=2` -> {"hidden_size": 64, "num_hidden_layers": 2}: a recipe's
    `tiny_shape` setting (overrides of `TINY_DEFAULTS`; empty: none). One line for a bad item or key."""
    from arena.types import ArenaError

    out: dict[str, int | float] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        key, _, value = (x.strip() for x in item.partition("="))
        if key not in TINY_DEFAULTS:
            raise ArenaError(f"bad tiny_shape item {item!r}: keys are {', '.join(sorted(TINY_DEFAULTS))}")
        try:
            out[key] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            raise ArenaError(f"bad tiny_shape item {item!r}: expected key=number") from None
    return out


def _config_for(tokenizer, **kw: Any):
    return tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, **kw)


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int, std: float | None = None) -> torch.nn.Module:
    """Re-initialise a Llama-family model deterministically from `seed` (no global RNG).

    Linear and embedding weights ~ N(0, std) (std defaults to the config's
    `initializer_range`), biases 0, norm weights 1 -- the Llama recipe.
    """
    std = std if std is not None else getattr(model.config, "initializer_range", 0.02)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # tied weights: initialise once
                continue
            seen.add(id(p))
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and name == "weight":
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std)
            elif name == "bias":
                p.zero_()
            elif p.dim() == 1:  # RMSNorm / LayerNorm scales
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std)
    return model


def new_tiny_causal_lm(seed: int = 0, tokenizer=None, *, init_std: float | None = None, **overrides: Any):
    """A freshly initialised tiny `LlamaForCausalLM` and its char tokenizer: `(model, tokenizer)`."""
    from transformers import LlamaForCausalLM

    tokenizer = tokenizer or char_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the constructor's own init draws from the global RNG
        model = LlamaForCausalLM(_config_for(tokenizer, **overrides))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return init_weights(model, seed, init_std).eval(), tokenizer


def new_tiny_scorer(seed: int = 0, tokenizer=None, *, init_std: float | None = None, **overrides: Any):
    """A freshly initialised tiny `LlamaForSequenceClassification` (one label): `(model, tokenizer)`."""
    from transformers import LlamaForSequenceClassification

    tokenizer = tokenizer or char_tokenizer()
    with torch.random.fork_rng(devices=[]):
        model = LlamaForSequenceClassification(_config_for(tokenizer, num_labels=1, **overrides))
    return init_weights(model, seed, init_std).eval(), tokenizer


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# -- pretraining --------------------------------------------------------------------------

def sft_batch(tokenizer, pairs: Sequence[tuple[str, str]], sampling=None):
    """A right-padded `agents.batch.PairBatch` for SFT on (prompt, completion) pairs.

    The prompt is encoded exactly as the `GeneratorAgent` encodes it
    (`agents.hf.encode_prompt`); the completion is followed by EOS so the model
    learns to stop. Only completion tokens (and that EOS) are targets.
    """
    from functools import partial

    from agents.batch import encode_pairs
    from agents.hf import encode_prompt

    return encode_pairs(tokenizer, [p for p, _ in pairs], [c for _, c in pairs],
                        encode_prompt=partial(encode_prompt, tokenizer, sampling=sampling))


@dataclass
class PretrainResult:
    """What `pretrain` did (also written to `<out_dir>/pretrain.json`)."""

    out_dir: str
    steps: int
    seed: int
    lr: float
    batch_size: int
    n_pairs: int
    parameters: int
    first_loss: float
    final_loss: float
    """Mean loss over the last `log_every` steps."""
    seconds: float


def pretrain(pairs: Sequence[tuple[str, str]], out_dir: str | Path, steps: int = 2000, seed: int = 0,
             lr: float = 3e-3, *, batch_size: int = 32, warmup: int = 50, weight_decay: float = 0.01,
             init: str | Path | None = None, device: str | None = None, log_every: int = 50,
             progress: bool = True, log: Callable[[str], None] | None = None,
             sampling: Any = None, **config_overrides: Any) -> PretrainResult:
    """Train the tiny causal LM by SFT on (prompt, completion) pairs and save it to `out_dir`.

    Batches of `batch_size` pairs are drawn with `numpy.random.default_rng(seed)`;
    AdamW with linear warm-up and cosine decay to 10% of `lr`; the loss is
    `agents.losses.sft_nll` (token-averaged NLL of completion + EOS; the prompt is masked). `init` continues from an
    existing directory instead of a fresh model (`config_overrides` then must be
    empty). `sampling` (an `agents.hf.SamplingConfig`) is stored as the agent's
    default sampling settings and used to encode prompts. Shows a rich progress
    bar (`progress`) and calls `log` (default: print) every `log_every` steps.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.batch import completion_logprobs
    from agents.hf import quiet_transformers, save_agent_dir
    from agents.losses import sft_nll

    if not pairs:
        raise ValueError("pretrain needs at least one (prompt, completion) pair")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if init is not None:
        if config_overrides:
            raise TypeError("config overrides cannot be combined with init=")
        with quiet_transformers():
            model, tokenizer = AutoModelForCausalLM.from_pretrained(init), AutoTokenizer.from_pretrained(init)
    else:
        model, tokenizer = new_tiny_causal_lm(seed, **config_overrides)
    model.to(dev).train()
    rng = np.random.default_rng(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    log = log or print
    losses: list[float] = []
    first_loss = float("nan")
    t0 = time.perf_counter()
    with _progress(progress) as bar:
        # which model
        task = bar.add_task(f"pretrain {Path(out_dir).name}", total=steps, loss=float("nan")) if bar else None
        for step in range(steps):
            idx = rng.integers(len(pairs), size=min(batch_size, len(pairs)))
            batch = sft_batch(tokenizer, [pairs[i] for i in idx], sampling).to(dev)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss = sft_nll(*completion_logprobs(model, batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            value = float(loss.detach())
            first_loss = value if step == 0 else first_loss
            losses.append(value)
            recent = float(np.mean(losses[-log_every:]))
            if bar:
                bar.update(task, advance=1, loss=recent)
            if (step + 1) % log_every == 0 or step + 1 == steps:
                log(f"pretrain step {step + 1}/{steps}  loss {recent:.4f}  lr {lr_at(step):.2e}  "
                    f"{time.perf_counter() - t0:.0f}s")
    model.eval()
    out = Path(out_dir)
    meta = {"agent": "generator"}
    if sampling is not None:
        meta["sampling"] = asdict(sampling)
    save_agent_dir(model, tokenizer, out, meta)
    result = PretrainResult(str(out), steps, seed, lr, batch_size, len(pairs), count_parameters(model),
                            first_loss, float(np.mean(losses[-log_every:])), time.perf_counter() - t0)
    (out / "pretrain.json").write_text(json.dumps(asdict(result), indent=2))
    return result


class _progress:
    """A rich progress bar showing the running loss, or a no-op."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total}"), TextColumn("loss {task.fields[loss]:.4f}"),
                                TimeElapsedColumn(), TimeRemainingColumn())

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)
        return False

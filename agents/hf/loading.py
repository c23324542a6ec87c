"""Loading and saving `hf:` agents: model refs, tokenizers (GGUF too), weights in place, agent dirs.

An agent dir is a standard `save_pretrained` directory (safetensors, tokenizer)
plus `arena_agent.json` (`AGENT_META`), which holds the agent's kind and sampling
settings. Weights are loaded *in place* into an existing model, so an optimizer
that holds its parameters stays valid.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from agents.hf.quiet import quiet_transformers
from arena.types import ArenaError

AGENT_META = "arena_agent.json"


def load_errors() -> tuple[type[BaseException], ...]:
    """What loading a broken or foreign model dir raises (a truncated `model.safetensors` is a
    `SafetensorError`, a shape mismatch a `RuntimeError`): each becomes one `ArenaError` line."""
    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, SafetensorError)


def check_model_ref(ref: str, gguf_file: str | None = None, *, download: bool = False) -> None:
    """Refuse at once, in one line, a `ref` that is not there. A ref that can only be a local path
    (absolute, `./`, `../`, `~`, or more than one `/`; a hub id is `name` or `owner/name`) must
    exist; a hub id must be in the local Hugging Face cache unless `download` (then the hub is asked)."""
    if Path(ref).expanduser().exists():
        return
    local = ref.startswith(("/", "./", "../", "~")) or ref.count("/") > 1
    if local:
        raise ArenaError(f"no model at {ref!r}: no such file or directory")
    if not download and not in_hf_cache(ref, gguf_file or "config.json"):
        raise ArenaError(f"hf:{ref} is not a local directory and not in the Hugging Face cache; "
                         f"to fetch it from the hub, add ?download=true to the spec")


def in_hf_cache(repo_id: str, filename: str) -> bool:
    """Whether the hub repo's `filename` is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except ValueError:  # not a valid repo id
        return False


def load_tokenizer(ref: str, gguf_file: str | None = None, *, download: bool = False):
    """The tokenizer of `ref`; from disk or the cache only unless `download`."""
    from transformers import AutoTokenizer

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=not download, **kw)
    except Exception as e:  # noqa: BLE001 (the tokenizers library raises a bare Exception on a bad file)
        raise ArenaError(f"cannot load a tokenizer from {ref!r}{' / ' + gguf_file if gguf_file else ''}: "
                         f"{type(e).__name__}: {e}") from e
    if tok.pad_token_id is None:  # many causal LMs ship without one; padding is masked anyway
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_weights_in_place(model: torch.nn.Module, directory: Path) -> None:
    """Copy the safetensors weights in `directory` into `model`'s existing parameters.

    Keys missing from the files are allowed only for tied parameters (e.g. an
    `lm_head` that shares the embedding), which `save_pretrained` writes once.
    """
    from safetensors.torch import load_file

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise ArenaError(f"no safetensors weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    try:
        for f in files:
            state.update(load_file(str(f)))
        result = model.load_state_dict(state, strict=False)
    except load_errors() as e:
        raise ArenaError(f"cannot load the weights in {directory}: {type(e).__name__}: {e}") from None
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in result.missing_keys if own[k].data_ptr() not in loaded_ptrs]
    if untied or result.unexpected_keys:
        raise ArenaError(f"checkpoint {directory} does not fit the model: missing {untied[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")


def slow_to_load(ref: str) -> bool:
    """Whether loading `ref` may take long enough to deserve a progress bar: a hub id,
    or a local checkpoint of 1 GiB or more."""
    path = Path(ref)
    if not path.exists():
        return True
    files = [path] if path.is_file() else [*path.glob("*.safetensors"), *path.glob("*.gguf"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files) >= 2**30


def save_agent_dir(model, tokenizer, directory: Path, meta: dict[str, Any]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(directory)  # safetensors only in transformers >= 5
        tokenizer.save_pretrained(directory)
    (directory / AGENT_META).write_text(json.dumps(meta, indent=2))


def read_agent_meta(ref: str) -> dict[str, Any]:
    """An agent dir's `arena_agent.json` ({} when `ref` is not such a dir, e.g. a hub id)."""
    try:
        path = Path(ref) / AGENT_META
        if not path.is_file():
            return {}
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArenaError(f"unreadable {Path(ref[:200]) / AGENT_META}: {e}") from None
    if not isinstance(meta, dict):
        raise ArenaError(f"unreadable {path}: not a JSON object")
    return meta

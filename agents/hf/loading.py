"""Loading and saving `hf:` agents: model refs, tokenizers (GGUF too), weights and LoRA adapters in place,
agent dirs.

An agent dir is a standard `save_pretrained` directory (safetensors, tokenizer)
plus `arena_agent.json` (`AGENT_META`), which holds the agent's kind and sampling
settings. Weights are loaded *in place* into an existing model, so an optimizer
that holds its parameters stays valid.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from agents.hf.lora import ADAPTER_CONFIG, base_ref_for_meta, is_lora, save_adapter, wrap_lora
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
    cached = in_hf_cache(ref, gguf_file or "config.json")
    if not download and not cached:
        raise ArenaError(f"hf:{ref} is not a local directory and not in the Hugging Face cache; "
                         f"to fetch it from the hub, add ?download=true to the spec")
    if not cached:
        check_hub_reachable(ref)


def check_hub_reachable(ref: str, timeout: float = 5.0) -> None:
    """One line at once when the hub cannot be reached, instead of huggingface_hub's minute of
    retries; the endpoint is `HF_ENDPOINT`'s, as the hub client uses it."""
    import os
    import socket
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ArenaError(f"hf:{ref} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ArenaError(f"cannot download hf:{ref}: {endpoint} is not reachable ({e.strerror or e}); "
                         "copy the model to a local directory and use hf:<dir>") from None


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
    except Exception as e:  # the tokenizers library raises a bare Exception on a bad file
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


def load_adapter_in_place(model: Any, directory: Path) -> None:
    """Copy an adapter checkpoint's weights into `model`'s existing adapter parameters (an
    optimizer that holds them stays valid); a checkpoint of another shape is one line."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(directory) / "adapter_model.safetensors"
    if not path.is_file():
        raise ArenaError(f"no adapter weights (adapter_model.safetensors) in {directory}")
    try:
        result = set_peft_model_state_dict(model, load_file(str(path)))
    except load_errors() as e:
        raise ArenaError(f"cannot load the adapter in {directory}: {type(e).__name__}: {e}") from None
    if getattr(result, "unexpected_keys", None):
        raise ArenaError(f"adapter {directory} does not fit the model: unexpected {result.unexpected_keys[:5]}")


def load_trainable_adapter(model: Any, directory: Path) -> Any:
    """A base `model` with the adapter checkpoint in `directory`, trainable (a `ckpt:` of a LoRA seat)."""
    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(model, str(directory), is_trainable=True)
    except load_errors() as e:
        raise ArenaError(f"cannot load the adapter in {directory}: {type(e).__name__}: {e}") from None


def slow_to_load(ref: str) -> bool:
    """Whether loading `ref` may take long enough to deserve a progress bar: a hub id,
    or a local checkpoint of 1 GiB or more."""
    path = Path(ref)
    if not path.exists():
        return True
    files = [path] if path.is_file() else [*path.glob("*.safetensors"), *path.glob("*.gguf"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files) >= 2**30


def save_agent_dir(model, tokenizer, directory: Path, meta: dict[str, Any],
                   base: dict[str, Any] | None = None) -> None:
    """A standard `save_pretrained` directory plus `arena_agent.json`. A LoRA model writes its
    adapter only (`agents.hf.lora.save_adapter`), naming `base` (`{"ref", "gguf_file"}`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        if is_lora(model):
            if base is None:
                raise ArenaError("a LoRA agent needs its base model's ref to be saved")
            save_adapter(model, directory, base)
            meta = {**meta, "base": base,
                    "lora": {k: v for k, v in next(iter(model.peft_config.values())).to_dict().items()
                             if k in ("r", "lora_alpha", "lora_dropout", "target_modules", "task_type")}}
        else:
            refuse_save_off_rank_0(directory)
            model.save_pretrained(directory)  # safetensors only in transformers >= 5
        tokenizer.save_pretrained(directory)
    (directory / AGENT_META).write_text(json.dumps(meta, indent=2, default=_jsonable))


def distributed_rank() -> int:
    """This process's rank in torch.distributed's default group (0 when there is none)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def refuse_save_off_rank_0(directory: Path) -> None:
    """Once torch.distributed is initialised, transformers' `save_pretrained` writes model files on
    rank 0 only (`should_save_on_this_rank`): on another rank it would leave a directory without
    weights, which a later load finds broken. Under torchrun only rank 0 saves (checkpoints);
    a model another rank must save is an error here, in one line, instead."""
    rank = distributed_rank()
    if rank:
        raise ArenaError(f"cannot save a model to {directory} on process {rank}: under torchrun only rank 0 "
                         "writes models (fill caches such as runs/_cache with a one-process run first)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)


def load_model(auto_cls: Any, ref: str, gguf_file: str | None, load: Any, kind: str, **kw: Any):
    """`auto_cls.from_pretrained` as `load` (a `LoadConfig`) asks, made ready to train; returns
    `(model, base, info)`: `base` is `{"ref", "gguf_file"}` of the base weights (what a LoRA
    checkpoint names), `info` transformers' loading info.

    - An adapter checkpoint (a dir with `adapter_config.json` and `arena_agent.json`'s `base`) is its
      base loaded the same way with the adapter on top, trainable.
    - A GGUF file is dequantised at load (transformers does this); the model is then marked as
      ordinary weights, so it saves as safetensors like any other.
    - `lora > 0` wraps the model in a fresh adapter; `gradient_checkpointing` turns it on.
    """
    from agents.hf.config import resolve_dtype

    meta = read_agent_meta(ref) if gguf_file is None else {}
    adapter = isinstance(meta.get("base"), dict) and (Path(ref) / ADAPTER_CONFIG).is_file()
    base = dict(meta["base"]) if adapter else base_ref_for_meta(ref, gguf_file)
    if not isinstance(base.get("ref"), str) or not isinstance(base.get("gguf_file") or "", str):
        raise ArenaError(f"unreadable {Path(ref) / AGENT_META}: 'base' is not a model ref")
    if adapter:
        check_model_ref(base["ref"], base["gguf_file"], download=load.download)
    extra = {"gguf_file": base["gguf_file"]} if base["gguf_file"] else {}
    with quiet_transformers(progress=slow_to_load(base["ref"]), warnings=kind != "scorer"):
        model, info = auto_cls.from_pretrained(base["ref"], dtype=resolve_dtype(load.dtype),
                                               local_files_only=not load.download, output_loading_info=True,
                                               **extra, **kw)
    if base["gguf_file"]:
        dequantised(model)
    if load.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # the name in transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # generation passes its own cache; training must not build one
    if adapter:
        model = load_trainable_adapter(model, Path(ref))
    elif load.lora:
        model = wrap_lora(model, load, kind)
    if load.lora and not adapter and load.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need a grad-carrying input under LoRA
    model.arena_mixed_precision = load.mixed_precision  # read by `agents.learners.resolve_mixed_precision`
    return model, base, info


def dequantised(model: Any) -> Any:
    """Mark a model loaded from GGUF as ordinary weights. transformers dequantises GGUF tensors to
    torch ones at load but keeps its GGUF quantizer on the model, and `save_pretrained` then refuses
    ("quantized with gguf and is not serializable"); the weights are plain tensors already."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if getattr(model, attr, False) is True:
            try:
                setattr(model, attr, False)
            except AttributeError:  # a read-only property computed from hf_quantizer
                pass
    if getattr(model.config, "quantization_config", None) is not None:
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None
    return model


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

"""LoRA adapters through `peft`: wrapping a loaded model, the base policy view, adapter checkpoints.

`hf:<model>?lora=16` wraps the seat's model in a `peft` LoRA adapter of rank 16
(`lora_alpha`, `lora_dropout`, `lora_targets` are options too; see `LoadConfig`).
Only the adapter (and, for a scorer, its scalar head) requires grad, so learners
train the adapter alone and the base weights stay bit-identical.

- `wrap_lora(model, load, kind)`: the model inside a `PeftModel`, its adapter
  initialised from `load.seed` (peft draws from the global RNG; here it is forked).
- `BasePolicy(model)`: the same base with the adapter disabled, for the KL / DPO
  reference: a view, not a second copy of the weights (`reference_policy` in
  `agents.learners` hands it out for a LoRA model).
- `save_adapter`: an adapter checkpoint is what `PeftModel.save_pretrained` writes
  (`adapter_config.json`, `adapter_model.safetensors`) with `base_model_name_or_path` set to the
  base's absolute path or hub id, so it loads in plain transformers + peft
  (`AutoPeftModelForCausalLM.from_pretrained(dir)`) without this project; `arena_agent.json` adds
  the base ref (and GGUF file) and the LoRA settings, so a `ckpt:` spec rebuilds the agent.
  Loading one (into a model, in place or trainable) is `agents.hf.loading`'s, beside loading
  whole models.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from arena.types import ArenaError

ADAPTER_CONFIG = "adapter_config.json"

DEFAULT_TARGETS = {
    # attention and MLP projections of the common decoder families (the QLoRA choice: every linear layer
    # of the blocks; the embeddings and lm_head stay frozen)
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}
"""`lora_targets` when the spec names none, by `config.model_type`; any other architecture gets
peft's "all-linear" (every linear layer but the output head)."""


def is_lora(model: Any) -> bool:
    """Whether `model` is a peft-wrapped model (a LoRA seat)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def lora_targets(model: Any, targets: tuple[str, ...]) -> list[str] | str:
    if targets:
        return list(targets)
    return list(DEFAULT_TARGETS.get(getattr(model.config, "model_type", ""), ())) or "all-linear"


def wrap_lora(model: Any, load: Any, kind: str) -> Any:
    """`model` inside a trainable LoRA `PeftModel` as `load` (a `LoadConfig`) asks. `kind`:
    "generator" (CAUSAL_LM) or "scorer" (SEQ_CLS: the scalar head is trained and saved too)."""
    from peft import LoraConfig, TaskType, get_peft_model

    alpha = load.lora_alpha or 2.0 * load.lora
    config = LoraConfig(r=load.lora, lora_alpha=alpha, lora_dropout=load.lora_dropout,
                        target_modules=lora_targets(model, load.lora_targets),
                        task_type=TaskType.CAUSAL_LM if kind == "generator" else TaskType.SEQ_CLS)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # peft initialises lora_A from the global RNG
        warnings.simplefilter("ignore", FutureWarning)  # peft asks transformers a deprecated attribute name
        torch.manual_seed(int(load.seed))
        try:
            wrapped = get_peft_model(model, config)
        except ValueError as e:  # a target module the model does not have
            raise ArenaError(f"cannot add a LoRA adapter: {' '.join(str(e).split())[:300]}") from None
    return wrapped


def lora_settings(load: Any) -> dict[str, Any]:
    return {"r": load.lora, "alpha": load.lora_alpha or 2.0 * load.lora, "dropout": load.lora_dropout,
            "targets": list(load.lora_targets)}


def base_ref_for_meta(ref: str, gguf_file: str | None) -> dict[str, Any]:
    """How an adapter checkpoint names its base: an absolute path for a local model, else the hub id."""
    path = Path(ref).expanduser()
    return {"ref": str(path.resolve()) if path.exists() else ref, "gguf_file": gguf_file}


def save_adapter(model: Any, directory: Path, base: dict[str, Any]) -> None:
    """The adapter only, as `PeftModel.save_pretrained` writes it, naming its base model."""
    for cfg in model.peft_config.values():
        cfg.base_model_name_or_path = base["ref"]
    model.save_pretrained(directory, save_embedding_layers=False)  # LoRA here never trains the embeddings


class BasePolicy:
    """The base model under a LoRA adapter, with the adapter disabled: π_ref without a second copy.

    Callable like the model (inference only: learners call a reference under
    `torch.inference_mode`); `requires_grad_` and `eval` do nothing, so freezing this
    view never freezes the adapter it shares its modules with.
    """

    def __init__(self, model: Any):
        if not is_lora(model):
            raise ArenaError("BasePolicy needs a LoRA (peft) model")
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.disabled():
            return self.model(*args, **kwargs)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()  # no LoRA dropout either
        try:
            with self.model.disable_adapter():
                yield
        finally:
            self.model.train(was_training)

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        return self.model.parameters(recurse)

    def requires_grad_(self, requires_grad: bool = True) -> "BasePolicy":
        return self

    def eval(self) -> "BasePolicy":
        return self

    def train(self, mode: bool = True) -> "BasePolicy":
        return self

    @property
    def training(self) -> bool:
        return False

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

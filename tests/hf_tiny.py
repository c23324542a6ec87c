"""The tiny models the Hugging Face agent tests share (`tests/test_hf_agents.py`, `tests/test_hf_specs.py`):
fixtures `tiny`, `model_dir` and `scorer_dir` live in conftest.py and build from these."""
from __future__ import annotations

from agents.hf import SamplingConfig

# A small random model whose weights are large enough (init_std) that greedy
# choices are never near-ties, so batched and one-at-a-time decoding must agree.
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=256)
PROMPTS = ["Ann has 7 apples. Gets 3.", "Hi", "Question: Bob has 12 coins. Loses 4.\nSolution:\n", "x"]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=12)


def obs(prompts):
    return [{"prompt": p} for p in prompts]


def ids_of(moves):
    return [m.extras["completion_ids"] for m in moves]

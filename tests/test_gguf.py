"""GGUF seats train: `arena train` with a `.gguf` prover completes a round and writes a safetensors
checkpoint (the model is dequantised at load); a GGUF that cannot be loaded stops before playing,
in one line. The GGUF file is written by the test itself (the `gguf` package) from the shipped tiny
prover, in llama.cpp's layout (q/k rows permuted), so transformers' reader is what is tested."""
from __future__ import annotations

import json

import pytest
import torch

from arena.cli import main

gguf = pytest.importorskip("gguf")


def write_llama_gguf(path, model, tokenizer) -> None:
    """`model` (a Llama-family causal LM) and its tokenizer as a float32 GGUF file."""
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_tokenizer_model("llama")
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    w.add_token_list(vocab)
    w.add_token_scores([0.0] * len(vocab))
    w.add_token_types([3 if i in special else 1 for i in range(len(vocab))])  # 3: control, 1: normal
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_pad_token_id(tokenizer.pad_token_id)

    def permute(x, heads):  # llama.cpp's q/k row order (transformers undoes it on load)
        return x.reshape(heads, 2, x.shape[0] // heads // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    names = {"attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm"}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads))
        for ours, theirs in names.items():
            w.add_tensor(f"blk.{i}.{ours}.weight", sd[p + theirs + ".weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def prover_gguf(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from games.prover_verifier.pretraining import ASSETS

    if not (ASSETS / "prover").is_dir():
        pytest.skip("tiny bases not shipped")
    model = AutoModelForCausalLM.from_pretrained(ASSETS / "prover")
    tok = AutoTokenizer.from_pretrained(ASSETS / "prover")
    path = tmp_path_factory.mktemp("gguf") / "prover.F32.gguf"
    write_llama_gguf(path, model, tok)
    return path, model


SMALL = ["--set", "verifier_samples=4", "--set", "verifier_problems=8", "--set", "verifier_epochs=1",
         "--set", "prover_steps=1", "--set", "prover_problems=2", "--set", "bon_problems=4",
         "--set", "bon_samples=8", "--set", "pool_size=200"]


def test_the_gguf_file_loads_as_the_model_it_was_written_from(prover_gguf):
    from agents.hf import GeneratorAgent

    path, model = prover_gguf
    agent = GeneratorAgent.from_pretrained(str(path.parent), gguf_file=path.name)
    ids = torch.tensor([[1, 20, 21, 22, 23]])
    with torch.inference_mode():
        torch.testing.assert_close(agent.model(input_ids=ids).logits, model(input_ids=ids).logits)
    assert getattr(agent.model, "hf_quantizer", None) is None  # marked as ordinary weights


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_arena_train_with_a_gguf_seat_completes_a_round_and_writes_safetensors(capsys, runs, prover_gguf, lora):
    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent

    path, model = prover_gguf
    spec = f"hf:{path}?max_new_tokens=48" + ("&lora=4" if lora else "")
    name = f"gguf-{'lora' if lora else 'full'}"
    code = main(["train", "prover-verifier-v1", "--rounds", "1", "--episodes", "8", "--concurrency", "8",
                 "--run", name, "--plain", "--no-tensorboard", "--seat", f"prover={spec}", *SMALL])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    ckpt = runs / name / "checkpoints" / "prover" / "round-0"
    assert not (runs / name / "checkpoints" / "prover" / "round-0.tmp").exists()
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    assert (ckpt / weights).is_file()
    if lora:
        assert json.loads((ckpt / "arena_agent.json").read_text())["base"]["gguf_file"] == path.name
    else:
        assert "quantization_config" not in json.loads((ckpt / "config.json").read_text())
    agent = build_agent(f"ckpt:{name}/prover/round-0",
                        AgentContext.for_seat(game_spec("prover-verifier-v1"), "prover", runs, "cpu"))
    assert agent.act([{"prompt": "2+3="}])[0].extras["completion_tokens"] >= 1


def test_a_gguf_that_cannot_be_loaded_stops_before_playing_in_one_line(capsys, runs, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    code = main(["train", "prover-verifier-v1", "--rounds", "1", "--episodes", "8", "--run", "bad-gguf",
                 "--plain", "--no-tensorboard", "--seat", f"prover=hf:{bad}", *SMALL])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert not (runs / "bad-gguf").exists()

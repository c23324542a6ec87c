"""LoRA seats (`hf:<model>?lora=R`): a round trains the adapter only, the checkpoint is the adapter,
and it reloads (through `ckpt:` and through plain transformers + peft) to the same outputs."""
from __future__ import annotations

import json
import os

import pytest
import torch

from agents.hf import GeneratorAgent, LoadConfig, SamplingConfig
from agents.hf.config import split_options
from agents.hf.lora import BasePolicy, is_lora
from agents.learners import Optimization, SFTLearner, reference_policy
from agents.tiny import new_tiny_causal_lm
from arena.types import ArenaError

pytest.importorskip("peft")


def dir_size(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-base")
    model, tok = new_tiny_causal_lm(seed=0, init_std=0.3)
    GeneratorAgent(model, tok, SamplingConfig(max_new_tokens=8)).save(path)
    return path


def lora_agent(base_dir, **options) -> GeneratorAgent:
    sampling, load = split_options({k: [str(v)] for k, v in options.items()}, generator=True)
    return GeneratorAgent.from_pretrained(str(base_dir), sampling=sampling, load=load)


IDS = torch.tensor([[1, 5, 6, 7, 8, 9]])


def logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """One round of checkability training with both seats as LoRA seats on the shipped tiny models."""
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run
    from games.prover_verifier.pretraining import ASSETS

    if not (ASSETS / "prover").is_dir():
        pytest.skip("tiny bases not shipped")
    torch.set_num_threads(1)
    small = {"verifier_samples": "4", "verifier_problems": "8", "verifier_epochs": "1", "prover_steps": "1",
             "prover_problems": "2", "bon_problems": "4", "bon_samples": "8", "pool_size": "200"}
    runs = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(game="prover-verifier-v1", rounds=1, episodes=16, concurrency=16, seed=3, run="pv-lora",
                      params=small, seats={"prover": f"hf:{ASSETS / 'prover'}?lora=8&max_new_tokens=48",
                                           "verifier": f"hf:{ASSETS / 'verifier'}?lora=8"})
    trainer = new_run(cfg, runs)
    models = {seat: s.agent.model for seat, s in trainer.setup.seats.items()}
    before = {seat: {k: v.clone() for k, v in m.state_dict().items()} for seat, m in models.items()}
    reference = trainer.setup.seats["prover"].learner.inner.reference
    summaries = trainer.run(trainer.restore())
    trainer.close()
    return trainer, models, before, reference, summaries, runs, ASSETS


@pytest.mark.slow
def test_a_round_trains_only_the_adapter_and_the_base_stays_bit_identical(lora_run):
    _, models, before, reference, summaries, _, _ = lora_run
    assert summaries[0]["losses"]["prover"]["rl_steps"] >= 1
    for seat, model in models.items():
        assert is_lora(model)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable), seat
        after = model.state_dict()
        changed = [k for k in before[seat] if not torch.equal(before[seat][k], after[k])]
        assert changed, f"{seat}: nothing trained"
        base_changed = [k for k in changed if "lora_" not in k and "modules_to_save" not in k]
        assert base_changed == [], f"{seat}: base weights moved: {base_changed[:3]}"
    # the KL reference is the same base with the adapter off: a view, no second copy
    assert isinstance(reference, BasePolicy) and reference.model is models["prover"]


def test_the_checkpoint_is_the_adapter_and_a_small_fraction_of_the_full_model(lora_run):
    trainer, _, _, _, _, _, assets = lora_run
    ckpt = trainer.run_dir / "checkpoints" / "prover" / "round-0"
    files = set(os.listdir(ckpt))
    assert {"adapter_model.safetensors", "adapter_config.json", "arena_agent.json"} <= files
    assert "model.safetensors" not in files
    full = os.path.getsize(assets / "prover" / "model.safetensors")
    adapter = os.path.getsize(ckpt / "adapter_model.safetensors")
    assert adapter < 0.2 * full, (adapter, full)
    meta = json.loads((ckpt / "arena_agent.json").read_text())
    assert meta["lora"]["r"] == 8 and meta["base"]["ref"] == str((assets / "prover").resolve())
    cfg = json.loads((ckpt / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str((assets / "prover").resolve())


def test_the_checkpoint_reloads_to_the_same_outputs_by_ckpt_spec_and_in_plain_peft(lora_run):
    from peft import AutoPeftModelForCausalLM

    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent

    trainer, models, _, _, _, runs, _ = lora_run
    gspec = game_spec("prover-verifier-v1")
    agent = build_agent("ckpt:pv-lora/prover/round-0", AgentContext.for_seat(gspec, "prover", runs, "cpu"))
    assert is_lora(agent.model)
    torch.testing.assert_close(logits(agent.model), logits(models["prover"]), rtol=0, atol=0)
    plain = AutoPeftModelForCausalLM.from_pretrained(str(trainer.run_dir / "checkpoints/prover/round-0"))
    torch.testing.assert_close(logits(plain), logits(models["prover"]), rtol=1e-6, atol=1e-6)
    # the verifier (a likelihood scorer) reloads to the same scores, and in plain peft as a causal LM
    verifier = build_agent("ckpt:pv-lora/verifier/round-0", AgentContext.for_seat(gspec, "verifier", runs, "cpu"))
    texts = ["1+2=3", "2*3=7"]
    torch.testing.assert_close(verifier.scores(texts), trainer.setup.seats["verifier"].agent.scores(texts))
    plain = AutoPeftModelForCausalLM.from_pretrained(str(trainer.run_dir / "checkpoints/verifier/round-0"))
    ids = verifier.tokenizer(texts[:1], return_tensors="pt")["input_ids"]  # no marker: every token, then the end
    ids = torch.cat([ids, torch.tensor([[verifier.tokenizer.eos_token_id]])], 1)
    with torch.inference_mode():
        lp = torch.log_softmax(plain(input_ids=ids).logits[0].float(), -1)
    token_lp = torch.stack([lp[j - 1, ids[0, j]] for j in range(1, ids.shape[1])])
    t = verifier.readout.temperature
    torch.testing.assert_close(-t * torch.logsumexp(-token_lp / t, 0), verifier.scores(texts[:1])[0],
                               rtol=1e-5, atol=1e-5)


def test_a_scalar_head_scorer_adapter_carries_its_head_and_reloads_in_plain_peft(tmp_path):
    from peft import AutoPeftModelForSequenceClassification

    from agents.hf import ScorerAgent
    from agents.hf.loading import save_agent_dir
    from agents.tiny import new_tiny_scorer

    model, tok = new_tiny_scorer(seed=0, init_std=0.3)
    save_agent_dir(model, tok, tmp_path / "base", {"agent": "scorer"})
    agent = ScorerAgent.from_pretrained(str(tmp_path / "base"), load=LoadConfig(lora=4))
    with torch.no_grad():
        for p in agent.model.parameters():
            if p.requires_grad:  # the adapter and the head: as after training
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    agent.save(tmp_path / "ckpt")
    texts = ["1+2=3", "2*3=7"]
    reloaded = ScorerAgent.from_pretrained(str(tmp_path / "ckpt"))
    torch.testing.assert_close(reloaded.scores(texts), agent.scores(texts))
    plain = AutoPeftModelForSequenceClassification.from_pretrained(str(tmp_path / "ckpt"), num_labels=1)
    enc = agent.tokenizer(texts[:1], return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(plain(**enc).logits[:, 0], agent.scores(texts[:1]), rtol=1e-5, atol=1e-5)


def test_resume_loads_the_adapter_in_place(lora_run, base_dir):
    trainer, models, _, _, _, _, _ = lora_run
    agent = lora_agent(base_dir, lora=4)
    ckpt = trainer.run_dir / "checkpoints" / "prover" / "round-0"
    with pytest.raises(ArenaError, match="adapter"):  # rank 8 into a rank-4 adapter: one line
        agent.load(ckpt)


def test_sft_on_a_lora_seat_changes_only_the_adapter_and_the_base_view_is_the_base(base_dir):
    agent = lora_agent(base_dir, lora=4, lora_alpha=16, lora_targets="q_proj,v_proj")
    plain = GeneratorAgent.from_pretrained(str(base_dir), load=LoadConfig())
    ref = reference_policy(agent.model)
    assert isinstance(ref, BasePolicy)
    base_params = {n: p.detach().clone() for n, p in agent.model.named_parameters() if "lora_" not in n}
    SFTLearner(data=[("1+1=", "2"), ("2+2=", "4")] * 4, opt=Optimization(lr=1e-2, batch_size=4)).update(agent, [])
    for n, p in agent.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base_params[n]), n
    assert {n.split(".")[-4] for n, p in agent.model.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}
    assert not torch.allclose(logits(agent.model), logits(plain.model))
    torch.testing.assert_close(logits(ref), logits(plain.model), rtol=0, atol=0)


def test_same_seed_same_adapter_init_and_bad_options_are_one_line(base_dir):
    a, b = lora_agent(base_dir, lora=4, seed=3), lora_agent(base_dir, lora=4, seed=3)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n
    for bad in ({"lora": "-1"}, {"lora_dropout": "1.5"}, {"mixed_precision": "fp8"}):
        with pytest.raises(ArenaError):
            split_options({k: [v] for k, v in bad.items()}, generator=True)
    with pytest.raises(ArenaError, match="LoRA"):
        lora_agent(base_dir, lora=4, lora_targets="no_such_proj")


def test_gradient_checkpointing_gives_the_same_update_and_bf16_seats_mix_with_fp32_ones(base_dir):
    from agents.learners import resolve_mixed_precision

    data = [(f"{a}+{a}=", str(2 * a)) for a in range(8)]  # no prompt repeats: both take the one-pass forward
    # (repeated prompts run once, from a KV cache, which activation checkpointing turns off)

    def trained(**options):
        agent = lora_agent(base_dir, **options)
        metrics = SFTLearner(data=data, opt=Optimization(lr=1e-2, batch_size=4)).update(agent, [])
        return agent, metrics

    plain, m_plain = trained(lora=4)
    ckpt, m_ckpt = trained(lora=4, gradient_checkpointing="true")
    assert m_ckpt["loss"] == pytest.approx(m_plain["loss"], rel=1e-5)
    torch.testing.assert_close(logits(ckpt.model), logits(plain.model), rtol=1e-5, atol=1e-5)
    bf16, m_bf16 = trained(lora=4, mixed_precision="bf16")  # a bf16 learner after fp32 ones, same process
    assert resolve_mixed_precision(bf16.model, "auto") == "bf16"
    assert m_bf16["steps"] == 2 and m_bf16["loss_last"] < m_bf16["loss_first"]
    _, m_again = trained(lora=4)  # and an fp32 one after it
    assert m_again["loss"] == pytest.approx(m_plain["loss"], rel=1e-6)

"""adversarial-rm-v0 with real (tiny) models: the implicit and explicit adversarial reward, the probe, the experiment.

Uses the shipped tiny base (`games/adversarial_rm/assets/base`, made by
`arena pretrain adversarial-rm-v0 --out games/adversarial_rm/assets --steps 600 --seed 0`).
"""
import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from agents.hf import GeneratorAgent, SamplingConfig, ScorerAgent
from agents.learners import BradleyTerryLearner, DPOLearner, Optimization, freeze, read_implicit_reward
from agents.tiny import new_tiny_scorer
from arena.runner import play
from arena.types import Episode
from games.adversarial_rm import rules
from games.adversarial_rm.env import AdversarialRMEnv, rm_input
from games.adversarial_rm.prepare import ASSETS
from games.adversarial_rm.probe import RoundProbe
from games.adversarial_rm.recipe import _policy_and_baseline_texts

BASE = ASSETS / "base"


@pytest.fixture(scope="module")
def base_dir():
    assert (BASE / "config.json").is_file(), f"missing shipped tiny base {BASE}"
    return str(BASE)


@pytest.mark.slow
def test_implicit_reward_of_a_briefly_trained_policy_orders_held_out_pairs_like_the_data(base_dir):
    """β·log(π/π_ref) read out of a DPO-trained policy ranks unseen pairs as their labels do."""
    policy = GeneratorAgent.from_pretrained(base_dir)
    reference = freeze(copy.deepcopy(policy.model))
    train = [p for p in rules.preference_data(11, 512, 0.0, "train") if p.gold_chosen - p.gold_rejected >= 1]
    learner = DPOLearner(data=[(p.prompt, p.chosen, p.rejected) for p in train], reference=reference, beta=0.1,
                         opt=Optimization(lr=1e-3, batch_size=64, epochs=2))
    learner.reset(0)
    before = read_implicit_reward(policy, reference, ["ceg>"], ["ceg"], 0.1)
    assert before.abs().max() < 1e-5  # π = π_ref: the implicit reward is zero everywhere
    learner.update(policy, [])

    # one held-out pair, by hand: all three prompt letters vs four wrong ones (gold 3 vs -2)
    r = read_implicit_reward(policy, reference, ["bdf>", "bdf>"], ["dbf", "aceh"], 0.1)
    assert r[0] > r[1]
    # and the held-out split (never trained on), where the labels are clear
    held = [p for p in rules.preference_data(11, 256, 0.0, "heldout") if p.gold_chosen - p.gold_rejected >= 1.5]
    rc = read_implicit_reward(policy, reference, [p.prompt for p in held], [p.chosen for p in held], 0.1)
    rr = read_implicit_reward(policy, reference, [p.prompt for p in held], [p.rejected for p in held], 0.1)
    assert float((rc > rr).float().mean()) > 0.7


def _scorer(seed=0):
    model, tok = new_tiny_scorer(seed, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)
    return ScorerAgent(model, tok)


def _fixed_batch():
    """Policy answers that exploit length/repeats vs the data's chosen answers, as episodes would carry them."""
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(16):
        prompt = rules.sample_prompt(rng)
        letters = rules.prompt_letters(prompt)
        info = {"prompt": prompt, "answer": letters * 4, "baseline": letters[:2]}
        episodes.append(Episode(i, i, {}, {"policy": info, "reward_model": info}, []))
    return episodes


def _margin(scorer, episodes):
    policy, baseline = _policy_and_baseline_texts(episodes)
    return float(scorer.scores(policy).mean() - scorer.scores(baseline).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_explicit_reward_model_update_prices_policy_answers_below_baseline_answers(seed):
    """L_D(r) + η·(mean r(policy) − mean r(baseline)): the policy's answers lose score relative to the baseline's."""
    episodes = _fixed_batch()
    data = [(rm_input(p.prompt, p.chosen), rm_input(p.prompt, p.rejected))
            for p in rules.preference_data(seed, 64, 0.5)]
    opt = Optimization(lr=3e-3, batch_size=16, epochs=2)
    adversarial, plain = _scorer(seed), _scorer(seed)
    start = _margin(adversarial, episodes)
    assert start == pytest.approx(_margin(plain, episodes))
    for scorer, learner in ((adversarial, BradleyTerryLearner(data=data, adversarial=_policy_and_baseline_texts,
                                                               eta=1.0, opt=opt)),
                            (plain, BradleyTerryLearner(data=data, opt=opt))):
        learner.reset(seed)
        metrics = learner.update(scorer, episodes)
        assert metrics["steps"] == 8
    assert _margin(adversarial, episodes) < start - 0.5
    assert _margin(adversarial, episodes) < _margin(plain, episodes) - 0.5


def test_probe_measures_the_reference_policy_as_zero_kl(base_dir):
    policy = GeneratorAgent.from_pretrained(base_dir, sampling=SamplingConfig(max_new_tokens=8))
    proxy = ScorerAgent.from_pretrained(base_dir)
    reference = freeze(copy.deepcopy(policy.model))
    pairs = list(rules.preference_data(0, 32))
    heldout = list(rules.preference_data(0, 8, 0.5, "heldout"))

    class Nothing:
        def reset(self, seed):
            pass

        def update(self, agent, episodes):
            return {"loss": 0.0}

    probe = RoundProbe(inner=Nothing(), reference=reference, proxy=proxy, chosen=[(p.prompt, p.chosen) for p in pairs],
                       heldout=heldout, beta=0.1, batch_size=16)
    episodes, _ = play(lambda: AdversarialRMEnv(pairs=pairs), {"policy": policy, "reward_model": proxy}, 16,
                       concurrency=16, seed=3)
    m = probe.update(policy, episodes)
    assert m["loss"] == 0.0
    assert m["kl"] == pytest.approx(0.0, abs=1e-5)
    assert m["implicit_accuracy"] == 0.5  # β·log(π/π_ref) = 0: every pair is a tie
    assert m["gold_win_rate_vs_ref"] == 0.5  # round 0 is the reference
    assert np.isfinite(m["chosen_logp"]) and m["chosen_logp"] < 0
    texts = [rm_input(e.info["policy"]["prompt"], e.info["policy"]["answer"]) for e in episodes]
    assert m["proxy"] == pytest.approx(float(proxy.scores(texts).mean()), abs=1e-5)


@pytest.mark.slow  # six short runs and a proxy fit (~50 s on 2 shared cores)
def test_experiment_writes_csv_png_and_summary_and_reuses_finished_runs(tmp_path, capsys):
    from games.adversarial_rm.experiment import ARMS, main
    from games.adversarial_rm.experiment_report import COLUMNS

    args = ["--runs-dir", str(tmp_path / "runs"), "--rounds", "2", "--episodes", "8", "--plain",
            "--set", "n_pairs=32", "--set", "heldout_pairs=8", "--set", "proxy_epochs=1", "--set", "rm_pairs=16",
            "--set", "probe_chosen=8", "--set", "batch_size=16", "--set", "max_new_tokens=8"]
    assert main(args) == 0
    out_dir = tmp_path / "runs" / "overoptimization"
    with open(out_dir / "overoptimization.csv") as f:
        rows = list(csv.DictReader(f))
    labels = [a.name for a in ARMS]  # every arm by default, the paper's η beside the recipe's own
    assert labels[-1] == "rpo-sum-eta0.005"
    assert [(r["method"], r["round"]) for r in rows] == [(m, str(k)) for m in labels for k in (0, 1)]
    assert {r["seed"] for r in rows} == {"0"} and rows[-1]["eta"] == "0.005" and rows[4]["eta"] == "1.0"
    assert list(rows[0]) == list(COLUMNS)
    # every arm starts from the same reference policy, proxy and data
    first = {r["method"]: r for r in rows if r["round"] == "0"}
    assert len({(r["gold"], r["proxy"], r["kl"]) for r in first.values()}) == 1
    assert float(first["dpo"]["kl"]) == pytest.approx(0.0, abs=1e-4)
    assert (out_dir / "overoptimization.png").stat().st_size > 10_000
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [s["method"] for s in summary] == labels
    doc = json.loads((out_dir / "dynamics.json").read_text())
    assert doc["experiment"] == "overoptimization" and {r["data_seed"] for r in doc["runs"]} == {0}
    out = capsys.readouterr().out
    assert "gold peak" in out and "paper" in out and "held on" in out
    # a second call with the same settings reuses the finished runs and writes the same figures
    before = (out_dir / "overoptimization.csv").read_text()
    assert main(args) == 0
    assert (out_dir / "overoptimization.csv").read_text() == before


def view(seed, arm, gold, proxy, logp):
    """A run of the experiment as the engine reads it back: gold, the probe's proxy and log π(chosen) by round."""
    from arena.experiment import RunView, Series

    series = {"gold": Series(tuple(gold)), "policy.proxy": Series(tuple(proxy)),
              "policy.chosen_logp": Series(tuple(logp))}
    return RunView(arm, seed, Path("."), list(range(len(gold))), series)


def test_claims_are_counted_per_seed_against_the_paper():
    from arena.experiment import SeedView
    from arena.experiment.claims import paired, verdicts
    from games.adversarial_rm.experiment import CLAIMS, DIFFERENCES

    seeds = []
    for seed in (0, 1):
        seeds.append(SeedView(seed, {
            "baseline": view(seed, "baseline", (1.0, 1.8, 0.5), (0.0, 2.0, 3.0), (-5.0, -8.0, -10.0)),
            "dpo": view(seed, "dpo", (1.0, 1.6, 1.2), (0.0, 0.5, 1.0), (-5.0, -9.0, -13.0)),
            "rpo-sum": view(seed, "rpo-sum", (1.0, 1.6, 1.55 if seed == 0 else 1.0), (0.0, 0.5, 1.0),
                            (-5.0, -5.5, -6.0)),
            "rpo-sum-eta0.005": view(seed, "rpo-sum-eta0.005", (1.0, 1.6, 1.2), (0.0, 0.5, 1.0),
                                     (-5.0, -9.0, -12.5))}))
    judged = {v.claim.label: v for v in verdicts(CLAIMS, seeds)}
    assert judged["baseline over-optimises: proxy up, gold > 0.1 below its peak"].count == (2, 2)
    assert judged["baseline over-optimises: proxy up, gold > 0.1 below its peak"].cells[0] == \
        "proxy 0.00->3.00, gold peak 1.80 final 0.50"
    assert judged["DPO over-optimises (same test)"].count == (2, 2)  # 1.2 < 1.6 - 0.1
    assert judged["rpo-sum: ends above DPO on gold"].held == [True, False]  # seed 1 ends below DPO
    assert judged["rpo-sum: ends above DPO on gold"].claim.paper.startswith("RPO > DPO")
    assert judged["rpo-sum: log π(chosen) falls < half as far as DPO"].cells == ["1.00 vs 8.00"] * 2
    assert judged["rpo-sum: log π(chosen) falls < half as far as DPO"].count == (2, 2)
    assert judged["rpo-sum: no over-optimisation"].held == [True, False]  # seed 1: 1.0 is 0.6 below its peak
    assert judged["at the paper's η=0.005: no over-optimisation"].count == (0, 2)
    assert judged["rpo-mean: no over-optimisation"].count == (0, 0)  # not run: not measured
    [rpo, mean, eta] = [paired(d, seeds) for d in DIFFERENCES]
    assert rpo.values == pytest.approx([0.35, -0.2]) and mean.values == [] and eta.values == pytest.approx([0.0, 0.0])


def test_seeds_vary_the_preference_data_unless_pinned():
    from arena.experiment.run import arm_params, parse
    from arena.selfplay import resolve_params, with_data_seed
    from games.adversarial_rm.experiment import EXPERIMENT
    from games.adversarial_rm.prepare import Params, preference_sets

    a, b = (with_data_seed(resolve_params(Params, {"n_pairs": "16"}), seed) for seed in (0, 1))
    assert preference_sets(a)[0] != preference_sets(b)[0]
    pinned = [with_data_seed(resolve_params(Params, {"n_pairs": "16", "data_seed": "5"}), seed) for seed in (0, 1)]
    assert preference_sets(pinned[0]) == preference_sets(pinned[1])
    # the experiment sets the data seed of every run: the run seed, unless --data-seed pins it
    arm = EXPERIMENT.arm("rpo-sum-eta0.005")
    assert arm_params(EXPERIMENT, arm, parse(EXPERIMENT, []), 3) == {"eta_sum": "0.005", "data_seed": "3"}
    assert arm_params(EXPERIMENT, arm, parse(EXPERIMENT, ["--data-seed", "5"]), 3)["data_seed"] == "5"

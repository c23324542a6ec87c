"""rest-v0: the toy translation rules, ReST's filter and D_g, the env contract, and a short real run."""
import json

import numpy as np
import pytest

from arena import registry
from arena.testing import check_game
from arena.types import Episode
from games.rest import rules
from games.rest.env import RestEnv

# -- the language -------------------------------------------------------------------

def test_translation_rules_reorder_agree_and_pluralise():
    assert rules.translate("ta tolo ru mira zan sima") == "the red dogs see the big bird"
    assert rules.translate("kuna vor gos dura") == "the cat finds the old river"
    assert rules.translate("kuna sima") == "" and rules.translate("") == ""


def test_splits_are_disjoint_and_sources_parse():
    train, valid, test = (set(rules.sources(s, 200, 0)) for s in rules.SPLITS)
    assert len(train) == 200 and not (train & valid) and not (train & test) and not (valid & test)
    assert all(rules.parse(s) is not None for s in train | valid | test)


def test_human_data_has_the_requested_share_of_flawed_translations():
    srcs = rules.sources("train", 400, 0)
    human = rules.human_translations(srcs, 0.3, 0)
    flawed = [h != rules.translate(s) for s, h in zip(srcs, human)]
    assert 0.2 < np.mean(flawed) < 0.4
    assert rules.human_translations(srcs, 0.0, 0) == [rules.translate(s) for s in srcs]


def test_chrf_reward_is_normalised_and_penalises_dropped_spaces():
    ref = "the red dogs see the big bird"
    assert rules.chrf(ref, ref) == 1.0 and rules.chrf("", ref) == 0.0
    assert 0.0 < rules.chrf("thereddogs see the big bird", ref) < 0.95
    assert rules.normalise(float("nan")) == 0.0 and rules.normalise(3.0) == 1.0
    assert rules.normalise(0.0, "sigmoid") == 0.5


# -- ReST's filter, thresholds, D_g ------------------------------------------------------

def _pairs(rewards):
    return [rules.Scored(f"s{i % 3}", f"y{i}", r) for i, r in enumerate(rewards)]


def test_filter_keeps_exactly_the_pairs_strictly_above_the_threshold():
    pairs = _pairs([0.0, 0.7, 0.70001, 0.95, 1.0, 0.3])
    assert [p.completion for p in rules.keep(pairs, 0.7)] == ["y2", "y3", "y4"]
    assert [p.completion for p in rules.keep(pairs, 0.0)] == ["y1", "y2", "y3", "y4", "y5"]
    assert rules.keep(pairs, 1.0) == []


def test_thresholds_must_rise():
    assert rules.thresholds((0.0, 0.7, 0.8, 0.9, 0.95)) == [0.0, 0.7, 0.8, 0.9, 0.95]
    assert rules.thresholds((0.0, 0.7, 0.8), steps=2) == [0.0, 0.7]
    for bad in [(0.0, 0.7, 0.7), (0.8, 0.7), (0.5, 1.0)]:
        with pytest.raises(ValueError):
            rules.thresholds(bad)


def test_thresholds_from_dg_rise_above_its_mean_and_each_filters():
    """docs/algorithms.md#rest: τ_1 > mean reward of D_g, τ_{i+1} > τ_i -- on a fixed D_g-like sample where
    most pairs are exact (R = 1) and the rest carry one mistake, as this task's D_g does."""
    rng = np.random.default_rng(0)
    rewards = np.where(rng.random(768) < 0.75, 1.0, rng.uniform(0.6, 0.97, 768))
    mean = rewards.mean()
    assert 0.9 < mean < 0.97  # the regime the paper's fixed list fails in
    assert [t for t in (0.7, 0.8, 0.9) if t > mean] == []  # ... all below the mean: they barely filter
    taus = rules.thresholds_above_mean(rewards, (0.2, 0.4, 0.6, 0.8))
    assert taus[0] == 0.0 and len(taus) == 5  # I0: the paper's unfiltered step
    assert all(t > mean for t in taus[1:]) and rules.thresholds(taus) == taus  # above the mean, rising
    pairs = _pairs(rewards)
    kept = [len(rules.keep(pairs, t)) for t in taus]
    assert kept[0] == len(pairs) and all(0 < k < len(pairs) for k in kept[1:])  # every filtering step filters
    assert kept[1] <= 0.9 * len(pairs)
    assert rules.thresholds_above_mean(rewards, (0.5,), unfiltered_first=False) == [pytest.approx(
        mean + (1.0 - mean) * 0.5)]
    for bad in [(0.0, 0.5), (0.5, 0.4), (0.5, 1.0)]:
        with pytest.raises(ValueError):
            rules.thresholds_above_mean(rewards, bad)


def test_seeds_vary_the_data_unless_data_seed_pins_it():
    from arena.selfplay import resolve_params, with_data_seed
    from games.rest.recipe import Params, original_data

    p3, p4 = (with_data_seed(resolve_params(Params, {"n_data": "16"}), s) for s in (3, 4))
    assert (p3.data_seed, p4.data_seed) == (3, 4) and original_data(p3) != original_data(p4)
    pinned = [with_data_seed(resolve_params(Params, {"n_data": "16", "data_seed": "7"}), s) for s in (3, 4)]
    assert pinned[0].data_seed == pinned[1].data_seed == 7 and original_data(pinned[0]) == original_data(pinned[1])


def seed_view(tmp_path, seed, arm, history):
    """One seed of `arena experiment rest` whose `arm` run has this learner history (read back as the
    engine reads it)."""
    from arena.experiment import RunView, SeedView
    from games.rest.experiment import read
    from games.rest.report import write_outputs

    run_dir = tmp_path / f"rest-{arm}-s{seed}"
    write_outputs(history, run_dir / "rest")
    return SeedView(seed, {arm: RunView(arm, seed, run_dir, [0, 1], read(run_dir))})


def judged(seeds):
    """{claim label: (cells, held per seed)} of the rest experiment's claims."""
    from arena.experiment.claims import verdicts
    from games.rest.experiment import CLAIMS

    return {v.claim.label: (v.cells, v.held) for v in verdicts(CLAIMS, seeds)}


def report_text(seeds, tmp_path):
    from rich.console import Console

    from games.rest.experiment import report

    console = Console(record=True, width=250)
    lines = report(seeds, tmp_path / "out", console)
    return console.export_text() + "\n".join(lines)


def test_rest_claims_set_each_seed_beside_the_paper(tmp_path):
    def row(label, grow, improve, test, tau=0.0, mean=0.95, kept=1.0):
        return {"label": label, "grow": grow, "improve": improve, "test": test, "valid": test, "tau": tau,
                "dg_mean": mean, "kept": kept, "pairs": 1, "length": 1.0, "test_exact": 0.5, "test_chrf": test}

    seeds = []
    for seed, g2 in ((0, 0.97), (1, 0.90)):
        steps = [row("BC", 0, -1, 0.91, None, None), row("G1 I0", 1, 0, 0.92)]
        steps += [row(f"G1 I{i}", 1, i, 0.92 + 0.01 * i, 0.96 + 0.005 * i, 0.95, 0.8) for i in (1, 2, 3, 4)]
        steps += [row(f"G2 I{i}", 2, i, g2, 0.97 + 0.005 * i, 0.96, 0.8) for i in (1, 2, 3)]
        seeds.append(seed_view(tmp_path, seed, "rest", {"steps": steps, "bon": {}, "reward": "chrf"}))
    claims = judged(seeds)
    assert claims["G1 I0 >= BC (I0 keeps what BC learned)"] == (["BC 91.0 -> G1 I0 92.0"] * 2, [True, True])
    assert claims["G2 I3 > G1 I4 (a second Grow helps)"][1] == [True, False]  # 97 then 90 against G1 I4's 96
    assert claims["every Improve step of G1 raises the test reward"] == (["92.0 -> 93.0 -> 94.0 -> 95.0 -> 96.0"] * 2,
                                                                       [True, True])
    assert claims["filtering thresholds above D_g's mean, kept < 100%"][1] == [True, True]
    assert claims["each filtering step of G1 keeps fewer pairs"][1] == [False, False]  # every row keeps 1 pair
    assert claims["online RL: test R above BC's"] == (["-", "-"], [None, None])  # no online run: not measured
    text = report_text(seeds, tmp_path)
    assert "70.9" in text and "83.1" in text and "rest-rest-s1" in text and "chrF G2 I3" not in text


def test_reward_hacking_claims_under_a_learned_reward(tmp_path):
    """reward=model: chrF is the true metric beside R; hacking = a later step with higher R and lower chrF."""
    def row(label, grow, improve, r, chrf):
        return {"label": label, "grow": grow, "improve": improve, "test": r, "valid": r, "tau": 0.0 if improve < 1
                else 0.9, "dg_mean": 0.8, "kept": 0.5, "pairs": 1, "length": 1.0, "test_exact": 0.5, "test_chrf": chrf}

    # seed 0: R rises over G1 and into G2 while chrF falls (hacked twice); seed 1: both rise (not hacked)
    seeds = []
    for seed, sign in ((0, -1), (1, 1)):
        steps = [row("BC", 0, -1, 0.80, 0.90), row("G1 I0", 1, 0, 0.81, 0.90)]
        steps += [row(f"G1 I{i}", 1, i, 0.82 + 0.01 * i, 0.90 + sign * 0.01 * i) for i in (1, 2, 3, 4)]
        steps += [row(f"G2 I{i}", 2, i, 0.90 + 0.01 * i, 0.90 + sign * 0.09) for i in (1, 2, 3)]
        seeds.append(seed_view(tmp_path, seed, "rest-rm", {"steps": steps, "bon": {}, "reward": "model"}))
    claims = judged(seeds)
    g1, g2 = "hacking: G1 I1 -> I4 (higher τ) raises R, lowers chrF", "hacking: G1 I4 -> G2 I3 raises R, lowers chrF"
    for label in (g1, g2):
        assert claims[label][1] == [True, False]
    assert claims[g2][0][0] == "G1 I4 -> G2 I3: R 86.0 -> 93.0, chrF 86.0 -> 81.0"
    assert claims["G2 I3 > BC"] == (["-", "-"], [None, None])  # the ReST claims are the chrF arm's
    text = report_text(seeds, tmp_path)
    assert "chrF G2 I3" in text and "81.0" in text and "learned reward" in text


def test_rest_em_help_does_not_claim_rest_defaults():
    from arena.options import field_docs
    from games.rest.recipe import EMParams, Params

    em, rest = field_docs(EMParams), field_docs(Params)
    assert "(the default)" in rest["gaps"] and "(the default)" not in em["gaps"]
    assert "0.8" in rest["temperature"] and "0.7" in em["temperature"]


def test_experiment_refuses_bad_arguments_before_running_anything(tmp_path, capsys):
    from games.rest.experiment import main

    for bad in (["--seeds", "a,b"], ["--seeds", ""], ["--rounds", "0"], ["--arms", "nosuch"], ["--name", "../x"]):
        with pytest.raises(SystemExit):
            main(bad + ["--runs-dir", str(tmp_path)])
    assert "--name: invalid run name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_grow_dataset_holds_the_original_data_unless_rest_em():
    samples, data = _pairs([0.5, 0.9]), [rules.Scored("s", "ref", 1.0, "data")]
    assert rules.grow_dataset(samples, data) == samples + data
    assert rules.grow_dataset(samples, data, include_original=False) == samples


def test_cap_per_source_keeps_at_most_k_of_each_source():
    pairs = _pairs([1.0] * 9)  # sources s0, s1, s2 three times each
    capped = rules.cap_per_source(pairs, 2, np.random.default_rng(0))
    assert len(capped) == 6 and all(sum(p.source == s for p in capped) == 2 for s in ("s0", "s1", "s2"))


def test_best_of_n_is_the_exact_expectation():
    r = [0.1, 0.5, 0.9]
    assert rules.best_of_n(r, 1) == pytest.approx(0.5)
    assert rules.best_of_n(r, 2) == pytest.approx((0.5 + 0.9 + 0.9) / 3)  # subsets {1,2},{1,3},{2,3}
    assert rules.best_of_n(r, 3) == pytest.approx(0.9)
    assert rules.best_of_n(r, 2, values=[10, 20, 30]) == pytest.approx((20 + 30 + 30) / 3)


# -- the env ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"reward": "seat", "samples": 2}])
def test_rest_env_passes_the_contract_checks(kwargs):
    check_game(lambda: registry.make("rest-v0", **kwargs))


def test_env_scores_every_sample_and_reports_it():
    env = RestEnv(samples=3, sources=["ta tolo ru mira zan sima"])
    env.reset(seed=0)
    for y in [" the red dogs see the big bird", " the red dog sees the bird\nmore", 17]:
        assert env.observe("policy")["prompt"] == "ta tolo ru mira zan sima ="
        env.step(y)
    info = env.infos["policy"]
    assert info["completions"] == ["the red dogs see the big bird", "the red dog sees the bird", ""]
    assert info["rewards"][0] == 1.0 and 0 < info["rewards"][1] < 1 and info["rewards"][2] == 0.0
    assert info["valid"] == [True, True, False]
    assert env.rewards["policy"] == pytest.approx(np.mean(info["rewards"]))


def test_reward_seat_scores_are_normalised_and_garbage_is_zero():
    env = RestEnv(samples=2, reward="seat", sources=["kuna vor gos dura"])
    env.reset(seed=0)
    env.step(" the cat finds the old river")
    env.step(" the cat")
    assert env.agent_selection == "reward"
    assert env.observe("reward")["reference"] == "the cat finds the old river"
    env.step(np.array([1.7], dtype=np.float32))
    env.step(np.array([np.nan], dtype=np.float32))
    assert env.infos["policy"]["rewards"] == [1.0, 0.0]
    assert env.rewards["reward"] == pytest.approx(0.5)  # agrees on the first, garbage earns 0 on the second


def test_scripted_bots_play_the_game():
    from arena.runner import play
    from games.rest.bots import ChrfScorer, HumanTranslator, RuleTranslator

    episodes, _ = play(lambda: RestEnv(samples=2, reward="seat"), {"policy": RuleTranslator(), "reward": ChrfScorer()},
                       6, concurrency=3, seed=1)
    assert all(ep.rewards["policy"] == 1.0 and ep.rewards["reward"] == 1.0 for ep in episodes)
    episodes, _ = play(lambda: RestEnv(samples=2), {"policy": HumanTranslator(options="noise=1.0")}, 6, seed=1)
    assert all(ep.rewards["policy"] < 1.0 for ep in episodes)
    assert RestEnv.round_metrics(episodes)["reward"] < 1.0


# -- a short real run on the tiny model ------------------------------------------------

SMALL = {"tiny_shape": "hidden_size=64,intermediate_size=192,num_hidden_layers=2", "bc_steps": "300",
         "n_data": "256", "samples": "2", "n_valid": "64", "n_test": "64", "bon_sources": "4", "bon_max": "2"}
"""A half-trained BC policy (a 0.2M-parameter tiny model, 300 steps: ~0.5 chrF) and one short Grow step."""


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("rest-runs")  # one cache: the BC policy is trained once for both runs


def _train(runs_dir, recipe, run, seats=None, **params):
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run

    cfg = TrainConfig(game="rest-v0", rounds=1, episodes=16, concurrency=16, seed=3, run=run, recipe=recipe,
                      params={**SMALL, **params}, seats=seats or {})
    events = []
    trainer = new_run(cfg, runs_dir, on_event=events.append)
    summaries = trainer.run(trainer.restore())
    return trainer, summaries, json.loads((trainer.run_dir / "rest" / "history.json").read_text())


def greedy_rewards_per_source(agent, evaluation) -> np.ndarray:
    """The greedy reward of each test source (what `Evaluation.greedy` averages into `test`)."""
    from games.rest.learner import decoding, translate_all

    with decoding(agent, temperature=0.0):
        ys = translate_all(agent, evaluation.test)
    return np.asarray(evaluation.reward(evaluation.test, ys), dtype=float)


@pytest.mark.slow  # trains the tiny BC policy once for the module (~1-3 min on 2 shared cores)
def test_rest_run_raises_the_evaluation_reward(runs_dir):
    from agents.hf import GeneratorAgent, parse_hf_arg

    trainer, summaries, history = _train(runs_dir, "default", "rest", gaps="0.3", lr="2e-3", epochs="6", n_test="256")
    bc, steps = history["steps"][0], history["steps"][1:]
    assert bc["label"] == "BC" and [s["label"] for s in steps] == ["G1 I0", "G1 I1"]
    # τ from D_g's rewards: 0 (the unfiltered I0), then above D_g's mean
    assert steps[0]["tau"] == 0.0 and steps[1]["tau"] > steps[1]["dg_mean"]
    chosen = next(s for s in steps if s["seeds_next"])
    assert chosen["valid"] > bc["valid"], (bc, steps)  # the step chosen on the validation set raised its reward
    # ... and on 256 held-out test sources, by more than twice the standard error of the per-source
    # differences (paired: the same sources, greedy, before and after). Measured on seeds 0-3: rises of
    # +0.06 to +0.12 at 5 to 8 standard errors; 64 sources (seed 3: +0.04 at 1.6) could not tell.
    seat = trainer.setup.seats["policy"]
    base = GeneratorAgent.from_pretrained(parse_hf_arg(seat.spec.removeprefix("hf:"))[0], sampling=seat.agent.sampling)
    evaluation = seat.learner.evaluation
    rise = greedy_rewards_per_source(seat.agent, evaluation) - greedy_rewards_per_source(base, evaluation)
    assert len(rise) == 256 and rise.mean() == pytest.approx(chosen["test"] - bc["test"], abs=1e-9)
    assert rise.mean() > 2 * rise.std(ddof=1) / np.sqrt(len(rise)), (rise.mean(), rise.std(ddof=1), bc, steps)
    # D_g = samples ∪ D: I0 keeps D's 256 pairs and the samples; the filtering step keeps fewer
    assert 200 < steps[0]["from_data"] <= 256 and steps[0]["pairs"] > steps[0]["from_data"]
    assert 0 < steps[1]["pairs"] < steps[0]["pairs"]
    losses = summaries[0]["losses"]["policy"]
    assert {"I0.R", "I0.kept", "I0.pairs", "I0.len", "I1.R", "BC"} <= set(losses)
    for name in ("steps.csv", "bon.csv", "bon.png"):
        assert (trainer.run_dir / "rest" / name).stat().st_size > 0
    assert [p["n"] for p in history["bon"]["BC"]] == [1, 2]

    from rich.console import Console

    from games.rest.report import report

    console = Console(record=True, width=120)
    console.print(report(trainer.run_dir))
    text = console.export_text()
    assert "G1 I1" in text and "70.9" in text and "N=2" in text  # the paper's layout, with its numbers


@pytest.mark.slow
def test_rest_em_uses_samples_only_and_restarts_from_the_base(runs_dir):
    trainer, _, history = _train(runs_dir, "em", "em", cap="1", samples="3")
    steps = history["steps"][1:]
    assert all(s["from_data"] == 0 for s in steps)  # no original data in D_g
    learner = trainer.setup.seats["policy"].learner
    assert learner.restart_from and learner.binary_cut == 1.0
    # at most `cap` = 1 kept sample per source, all of them exact (binary reward 1)
    assert steps[0]["pairs"] <= 16
    # every Grow step restarts from the base: perturbed weights come back when nothing is kept
    import torch
    from transformers import AutoModelForCausalLM

    policy = trainer.setup.seats["policy"].agent
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(1.0)
    learner.update(policy, [])
    base = AutoModelForCausalLM.from_pretrained(learner.restart_from)
    assert all(torch.equal(a, b) for a, b in zip(policy.model.state_dict().values(), base.state_dict().values()))


def test_learner_reads_samples_from_episodes_and_scores_d_once():
    from games.rest.learner import Evaluation, ReSTLearner

    calls = []

    class CountingReward:
        name = "count"

        def __call__(self, sources, translations):
            calls.append(len(sources))
            return np.full(len(sources), 0.5)

    info = {"source": "kuna vor gos dura", "completions": ["the cat", "", "x"], "rewards": [0.4, 0.0, 0.1],
            "valid": [True, True, False]}
    ep = Episode(0, 0, {"policy": 0.0}, {"policy": info}, [])
    assert [(p.completion, p.reward) for p in ReSTLearner.samples([ep])] == [("the cat", 0.4)]
    learner = ReSTLearner(original=[("kuna vor gos dura", "the cat finds the old river")] * 3,
                          reward=CountingReward(), evaluation=Evaluation(CountingReward(), [], [], []))
    assert [p.origin for p in learner.scored_original()] == ["data"] * 3
    learner.scored_original()
    assert calls == [3]


@pytest.mark.slow
def test_seat_reward_replaces_the_reward_model(runs_dir, tmp_path):
    from agents.hf import ScorerAgent
    from agents.tiny import new_tiny_scorer
    from arena.types import ArenaError

    model, tok = new_tiny_scorer(seed=5, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    ScorerAgent(model, tok).save(tmp_path / "rm")
    trainer, summaries, _ = _train(runs_dir, "default", "own-rm", seats={"reward": f"hf:{tmp_path / 'rm'}"},
                                   reward="model", gaps="", thresholds="0.5")
    reward = trainer.setup.seats["reward"]
    assert reward.spec == f"hf:{tmp_path / 'rm'}" and isinstance(reward.agent, ScorerAgent)
    assert trainer.setup.env_kwargs["reward"] == "seat"
    cache = runs_dir / "_cache" / "rest"
    assert list(cache.glob("bc-*")) and not list(cache.glob("rm-*"))  # no reward model was fitted
    # the seat played, and is paid its agreement with chrF sample by sample: mean(1 - |R - chrF|)
    from arena.store import RunStore

    store = RunStore(trainer.run_dir)
    infos = [ep.info["policy"] for ep in store.episodes(0)]
    store.close()
    agreement = [np.mean([1.0 - abs(r - c) if ok else 0.0
                          for r, c, ok in zip(i["rewards"], i["chrf"], i["valid_scores"])]) for i in infos]
    assert len(infos) == 16 and summaries[0]["mean_reward"]["reward"] == pytest.approx(np.mean(agreement))
    with pytest.raises(ArenaError, match="does not play that seat"):  # chrF runs have no reward seat
        _train(runs_dir, "default", "no-seat", seats={"reward": f"hf:{tmp_path / 'rm'}"})
    with pytest.raises(ArenaError, match="needs a reward model"):
        _train(runs_dir, "default", "bot-rm", seats={"reward": "scripted:chrf"}, reward="model")

"""adversarial-rm-v0: the letter task's rules, the env contract, round metrics (no torch)."""
import math

import numpy as np
import pytest

from arena.testing import check_game
from arena.types import Episode
from games.adversarial_rm import rules
from games.adversarial_rm.env import AdversarialRMEnv, rm_input, summarize

PAIRS = [rules.Pair("ceg>", "ceg", "ab", 3.0, -1.0), rules.Pair("abd>", "ad", "hh", 2.0, -1.0)]


# -- rules -------------------------------------------------------------------------

@pytest.mark.parametrize("answer, gold", [
    ("ceg", 3.0),          # all three letters, no penalty
    ("gec", 3.0),          # order does not matter
    ("cegc", 3.0),         # a repeat within the target length costs nothing
    ("c", 1.0),
    ("", 0.0),
    ("ab", -1.0),          # two wrong letters: -0.5 each
    ("cegce", 2.5),        # one character past TARGET_LENGTH = 4
    ("cegcegceg", 0.5),    # 3 - 0.5 * 5: the proxy's favourite, the gold's dislike
    ("cccccccccccc", -3.0),  # 1 - 0.5 * 8
    ("ceg!", 2.5),         # a non-letter is a wrong character
])
def test_gold_reward_by_hand(answer, gold):
    assert rules.gold_reward("ceg>", answer) == gold


def test_gold_reward_is_none_for_a_prompt_not_from_the_task():
    assert rules.gold_reward("What is 2+2?", "4") is None
    assert rules.prompt_letters("ceg>") == "ceg"
    assert rules.prompt_letters("cez>") is None
    assert rules.prompt_letters("ce>") is None


def test_reference_answers_never_reach_past_the_target_length():
    """The data leaves length beyond TARGET_LENGTH unseen: that is what a proxy can get wrong."""
    rng = np.random.default_rng(0)
    answers = [rules.reference_answer(rng, "ceg>") for _ in range(2000)]
    assert {len(a) for a in answers} == set(range(1, rules.MAX_REFERENCE_LENGTH + 1))
    assert rules.MAX_REFERENCE_LENGTH <= rules.TARGET_LENGTH
    assert set("".join(answers)) <= set(rules.ALPHABET)
    # within the data, more prompt letters go with more gold; past it, more letters lose gold
    by_len = {n: np.mean([rules.gold_reward("ceg>", a) for a in answers if len(a) == n]) for n in (1, 4)}
    assert by_len[4] > by_len[1]
    assert rules.gold_reward("ceg>", "ceg" * 4) < rules.gold_reward("ceg>", "ceg")


def test_prompts_are_three_sorted_distinct_letters():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rules.sample_prompt(rng)
        letters = rules.prompt_letters(p)
        assert letters is not None and sorted(set(letters)) == list(letters)


def test_bt_probability():
    assert rules.bt_probability(1.0, 0.0, 1.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert rules.bt_probability(0.0, 1.0, 0.5) == pytest.approx(1 / (1 + math.exp(2)))
    assert rules.bt_probability(2.0, 1.0, 0.0) == 1.0
    assert rules.bt_probability(1.0, 2.0, 0.0) == 0.0
    assert rules.bt_probability(1.0, 1.0, 0.0) == 0.5


def test_preference_data_is_deterministic_noisy_and_split():
    a = rules.preference_data(3, 400, 0.5, "train")
    assert a == rules.preference_data(3, 400, 0.5, "train")
    assert a != rules.preference_data(4, 400, 0.5, "train")
    held = rules.preference_data(3, 400, 0.5, "heldout")
    assert [p.prompt + p.chosen for p in a[:50]] != [p.prompt + p.chosen for p in held[:50]]
    assert all(p.chosen != p.rejected for p in a)
    assert all(p.gold_chosen == rules.gold_reward(p.prompt, p.chosen) for p in a)
    agreement = rules.label_agreement(a)
    assert 0.7 < agreement < 0.95  # BT noise flips some labels, not most
    clean = rules.preference_data(3, 400, 0.0, "train")
    assert all(p.gold_chosen >= p.gold_rejected for p in clean)
    with pytest.raises(ValueError):
        rules.preference_data(0, 4, 0.5, "test")


def test_payoffs_and_invalid_scores():
    assert rules.payoffs(2.0, 0.5) == (1.5, -1.5)
    assert rules.payoffs(None, 0.5) == (-0.5, 0.5 - 1.0)  # invalid score counts as 0, costs the RM 1
    assert rules.payoffs(None, None) == (0.0, -2.0)


def test_prob_superiority_by_hand():
    assert rules.prob_superiority([1, 2], [1]) == pytest.approx(0.75)  # (tie 0.5 + win 1) / 2
    assert rules.prob_superiority([0], [1, 2]) == 0.0
    assert math.isnan(rules.prob_superiority([], [1]))


def test_parse_preference_jsonl():
    pairs = rules.parse_preference_jsonl(['{"prompt": "p", "chosen": "c", "rejected": "r"}', "",
                                          '{"prompt": "q", "chosen": "1", "rejected": "2", "extra": 0}'])
    assert pairs == [rules.Pair("p", "c", "r"), rules.Pair("q", "1", "2")]
    with pytest.raises(ValueError, match="line 2"):
        rules.parse_preference_jsonl(['{"prompt": "p", "chosen": "c", "rejected": "r"}', '{"prompt": "p"}'])
    with pytest.raises(ValueError):
        rules.parse_preference_jsonl([])


# -- env ---------------------------------------------------------------------------

def test_env_passes_the_contract_checks():
    check_game(lambda: AdversarialRMEnv(n_pairs=64))
    check_game(lambda: AdversarialRMEnv(pairs=PAIRS))


def _play(env, seed, policy_action, scores):
    env.reset(seed=seed)
    seen = [env.observe("policy")]
    env.step(policy_action)
    for s in scores:
        seen.append(env.observe("reward_model"))
        assert env.agent_selection == "reward_model"
        env.step(s)
    return seen


def test_turn_order_observations_and_payoffs():
    env = AdversarialRMEnv(pairs=PAIRS[:1])
    seen = _play(env, 0, "cegcegceg", [np.array([2.0], dtype=np.float32), np.array([0.5], dtype=np.float32)])
    assert seen[0] == {"prompt": "ceg>", "task_prompt": "ceg>", "answer": "", "which": ""}
    assert seen[1] == {"prompt": rm_input("ceg>", "cegcegceg"), "task_prompt": "ceg>", "answer": "cegcegceg",
                       "which": "policy"}
    assert seen[2]["which"] == "baseline" and seen[2]["answer"] == "ceg" and seen[2]["prompt"] == "ceg>ceg\n"
    assert all(env.terminations.values())
    assert env._cumulative_rewards == {"policy": 1.5, "reward_model": -1.5}
    info = env.infos["policy"]
    assert info["gold"] == 0.5 and info["gold_baseline"] == 3.0
    assert info["score"] == 2.0 and info["score_baseline"] == 0.5 and info["valid_scores"]


def test_garbage_moves_are_scored_as_invalid():
    env = AdversarialRMEnv(pairs=PAIRS[:1])
    _play(env, 0, None, [float("nan"), "not a number"])
    info = env.infos["reward_model"]
    assert info["valid_answer"] is False and info["answer"] == "" and info["gold"] == 0.0
    assert info["valid_scores"] is False
    assert env._cumulative_rewards == {"policy": 0.0, "reward_model": -2.0}


def test_same_seed_same_pair_and_seeds_cover_the_data():
    env = AdversarialRMEnv(n_pairs=64)
    prompts = []
    for seed in range(40):
        env.reset(seed=seed)
        first = (env.task_prompt, env.baseline)
        env.reset(seed=seed)
        assert (env.task_prompt, env.baseline) == first
        prompts.append(first)
    assert len(set(prompts)) > 20


def test_env_reads_jsonl_data_without_a_gold_reward(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "Say hi.\\n", "chosen": "Hi!", "rejected": "No."}\n')
    env = AdversarialRMEnv(data=str(path))
    _play(env, 0, "Hello", [1.0, 0.0])
    assert env.infos["policy"]["gold"] is None
    assert "gold" not in summarize([env.infos["policy"]])


def _episode(info):
    return Episode(0, 0, {}, {"policy": info, "reward_model": info}, [])


def test_round_metrics_by_hand():
    infos = [
        {"gold": 3.0, "gold_baseline": 1.0, "score": 1.0, "score_baseline": 0.0, "valid_answer": True,
         "valid_scores": True, "length": 3},
        {"gold": 0.0, "gold_baseline": 1.0, "score": None, "score_baseline": 2.0, "valid_answer": False,
         "valid_scores": False, "length": 0},
        {"gold": 1.0, "gold_baseline": 1.0, "score": 0.5, "score_baseline": 0.5, "valid_answer": True,
         "valid_scores": True, "length": 5},
    ]
    m = AdversarialRMEnv.round_metrics([_episode(i) for i in infos])
    assert m["gold"] == pytest.approx(4 / 3)
    assert m["gold_baseline"] == pytest.approx(1.0)
    assert m["gold_win_rate_vs_data"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["rm_score"] == pytest.approx(0.5)
    assert m["rm_margin"] == pytest.approx((1 - 2 + 0) / 3)
    assert m["length"] == pytest.approx(8 / 3)
    assert m["invalid_answer_rate"] == pytest.approx(1 / 3)
    assert m["invalid_score_rate"] == pytest.approx(1 / 3)
    assert AdversarialRMEnv.round_metrics([]) == {}


def test_registered_with_recipes_and_pretraining():
    from arena import registry
    from arena.registry import load_attr

    spec = registry.spec("adversarial-rm-v0")
    from arena.gameinfo import GameInfo

    info = GameInfo.of(spec.load())
    assert set(info.recipes) >= {"default", "baseline", "dpo", "rpo-sum", "rpo-mean", "explicit"}
    for target in [*info.recipes.values(), info.pretrain]:
        assert callable(load_attr(target))

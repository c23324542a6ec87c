"""abstain-v0: payoffs, the normaliser, the fact base, bots, metrics, the env contract, the base model, a short RL
run."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from arena.testing import check_game
from games.abstain import metrics, rules
from games.abstain.env import AbstainEnv
from games.abstain.pretraining import ASSETS

# -- payoffs and the gold check -------------------------------------------------------


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_payoff_table_is_plus_one_zero_minus_k(k):
    assert rules.payoff("correct", k) == 1.0
    assert rules.payoff("abstain", k) == 0.0
    assert rules.payoff("wrong", k) == -k
    assert rules.answer_threshold(k) == pytest.approx(k / (1 + k))
    # answering at P(correct) = p pays p - k(1 - p): zero exactly at the threshold
    p = rules.answer_threshold(k)
    assert p * 1.0 + (1 - p) * -k == pytest.approx(0.0)
    with pytest.raises(ValueError):
        rules.payoff("maybe", k)


@pytest.mark.parametrize("answer, reference, expected", [
    ("Quelm", "Quelm", "correct"),
    ("  the  QUELM. ", "Quelm", "correct"),
    ("The North", "North", "correct"),
    ("north!", "North", "correct"),
    ("Quelmx", "Quelm", "wrong"),
    ("Que lm", "Quelm", "wrong"),
    ("Republic", "Kingdom", "wrong"),
    ("I don't know", "Quelm", "abstain"),
    ("i do not know.", "Quelm", "abstain"),
    ("IDK", "Quelm", "abstain"),
    ("I dont know", "Quelm", "abstain"),
    ("I don't know Quelm", "Quelm", "wrong"),
    ("", "Quelm", "wrong"),
    ("   ", "", "wrong"),
    (None, "Quelm", "wrong"),
    (12345, "Quelm", "wrong"),
    (np.array([1.0]), "Quelm", "wrong"),
])
def test_gold_check_after_normalisation(answer, reference, expected):
    assert rules.outcome(answer, reference) == expected


def test_normaliser_hand_made_cases():
    assert rules.normalise("  The  QUELM. ") == "quelm"
    assert rules.normalise("I don't know") == "i dont know"
    assert rules.normalise("an Apple") == "apple"
    assert rules.normalise("Thea") == "thea"  # an article only as a separate word
    assert rules.normalise("ÉTÉ\tx") == "été x"
    assert rules.normalise(None) == "" and rules.normalise(3.0) == ""


def test_judge_payoffs():
    assert rules.judged_payoff("abstain", None, 4.0) == 0.0
    assert rules.judged_payoff("wrong", True, 4.0) == 1.0  # a fooled judge pays the student
    assert rules.judged_payoff("correct", False, 4.0) == -4.0
    assert rules.judged_payoff("correct", None, 1.0) == -1.0  # an unreadable verdict is not "same"
    assert rules.judge_payoff(True, True) == 1.0 and rules.judge_payoff(False, True) == 0.0
    assert rules.judge_payoff(True, None) == 0.0
    assert rules.judge_verdict(0.3) is True and rules.judge_verdict(-0.1) is False and rules.judge_verdict(None) is None


# -- the fact base and its data --------------------------------------------------------

def test_fact_base_is_seeded_split_by_country_and_hides_unknown_facts():
    a, b = rules.make_fact_base(0), rules.make_fact_base(0)
    assert a.facts == b.facts and rules.make_fact_base(1).facts != a.facts
    known_c = {f.country for f in a.select("known")}
    unknown_c = {f.country for f in a.select("unknown")}
    assert not known_c & unknown_c
    for kind in ("known", "unknown"):
        train = {f.country for f in a.select(kind, "train")}
        held = {f.country for f in a.select(kind, "eval")}
        assert train and held and not train & held
    text = rules.pretraining_pairs(a)
    prompts = {p for p, _ in text}
    assert all(rules.student_prompt(f.question) not in prompts for f in a.select("unknown"))
    assert all(rules.student_prompt(f.question) in prompts for f in a.select("known"))
    idk = [c for _, c in text if c == rules.ABSTAIN]
    assert 0.05 < len(idk) / len(text) < 0.3
    words = set(re.findall(r"[A-Z][a-z]+", " ".join(p for p, _ in text)))
    assert not words & {f.country for f in a.select("unknown")}  # not even their names
    assert {f.country for f in a.select("known")} <= words
    assert all(not f.answer.startswith("I") for f in a.facts)  # "I" starts only the abstain phrase
    assert a.lookup(a.facts[0].question) == a.facts[0] and a.lookup("What?") is None


def test_teacher_labels_sft_and_sft_idk():
    facts = rules.make_fact_base(0).select(split="train")
    sft = rules.teacher_labels(facts, idk=False, noise=0.2, seed=0)
    assert [c for _, c in sft] == [f.answer for f in facts]
    idk = rules.teacher_labels(facts, idk=True, noise=0.2, seed=0)
    wrong = sum((c == rules.ABSTAIN) != (f.kind == "unknown") for f, (_, c) in zip(facts, idk))
    assert wrong == round(0.2 * len(facts))
    clean = rules.teacher_labels(facts, idk=True, noise=0.0, seed=0)
    assert all((c == rules.ABSTAIN) == (f.kind == "unknown") for f, (_, c) in zip(facts, clean))


def test_judge_pairs_use_training_facts_only_and_are_labelled_by_the_gold_check():
    from games.abstain.judge import comparison_pairs, training_facts

    base = rules.make_fact_base(0)
    facts = training_facts(base)
    eval_refs = {f.answer for f in base.select(split="eval") if f.attribute == "capital"}
    pairs = comparison_pairs(facts, 2000, 0)
    assert not eval_refs & {r for _, r, _, _ in pairs}
    assert all(y == float(rules.outcome(a, r) == "correct") for a, r, y, _ in pairs)
    assert 0.4 < np.mean([y for _, _, y, _ in pairs]) < 0.6


# -- metrics -----------------------------------------------------------------------------

def test_summary_rates_on_hand_made_records():
    recs = [{"kind": "known", "outcome": "correct", "payoff": 1.0},
            {"kind": "known", "outcome": "wrong", "payoff": -1.0},
            {"kind": "unknown", "outcome": "abstain", "payoff": 0.0},
            {"kind": "unknown", "outcome": "wrong", "payoff": -1.0}]
    s = metrics.summarize(recs)
    assert s["accuracy"] == 0.25 and s["abstention"] == 0.25
    assert s["hallucination"] == pytest.approx(2 / 3)  # wrong / answered
    assert s["payoff"] == pytest.approx(-0.25)
    assert s["known_accuracy"] == 0.5 and s["unknown_abstention"] == 0.5 and s["unknown_wrong"] == 0.5
    assert s["unknown_hallucination"] == 1.0
    assert metrics.rates(["abstain"], [0.0])["hallucination"] == 0.0


def test_thresholds_on_hand_made_cases():
    t, lo, hi = metrics.learned_threshold([0.1, 0.2, 0.3, 0.7, 0.9], [0.0, 0.0, 0.1, 1.0, 1.0])
    assert (lo, hi) == (0.3, 0.7) and t == pytest.approx(0.5)
    conf = [0.25] * 4 + [0.75] * 4
    right = [1, 0, 0, 0, 1, 1, 1, 0]  # a quarter right at 0.25, three quarters at 0.75
    assert metrics.optimal_threshold(conf, right, 0.25)[1:] == (0.0, 0.25)  # answer everything
    assert metrics.optimal_threshold(conf, right, 1.0)[1:] == (0.25, 0.75)  # answer the 0.75s
    assert metrics.optimal_threshold(conf, right, 4.0)[1:] == (0.75, 1.0)  # answer nothing
    bins = metrics.confidence_bins([0.05, 0.06, 0.95], [0.0, 1.0, 1.0], [0, 0, 1], bins=10)
    assert [b["n"] for b in bins] == [2.0, 1.0] and bins[0]["answer_rate"] == 0.5 and bins[1]["accuracy"] == 1.0


# -- the env and the bots ------------------------------------------------------------------

def test_game_passes_the_contract_checks():
    check_game(AbstainEnv)
    check_game(lambda: AbstainEnv(k=4.0, split="train", kind="unknown"))


def test_garbage_answers_are_wrong_moves_and_abstentions_end_the_episode():
    env = AbstainEnv(k=2.0)
    for garbage in [None, 12345, "", " ", "\x00\x01", "a" * 100_000, np.array([np.nan])]:
        env.reset(seed=3)
        env.step(garbage)
        assert env.agent_selection == "judge"
        env.step(np.array([np.nan], dtype=np.float32))  # and a garbage verdict
        info = env.infos["student"]
        assert info["outcome"] == "wrong" and env.rewards["student"] == -2.0
        assert info["valid"] == (isinstance(garbage, str) and bool(garbage.strip()))
        assert env.rewards["judge"] == 0.0 and info["valid_score"] is False
    env.reset(seed=3)
    env.step("I don't know")
    assert all(env.terminations.values()) and env.rewards["student"] == 0.0 and env.infos["judge"]["abstained"]


def test_bots_order_by_payoff_and_the_gold_judge_agrees_with_the_rule():
    from arena.runner import play
    from games.abstain.bots import AlwaysAbstain, AlwaysAnswer, GoldJudge, Oracle

    def payoff(student, k):
        episodes, _ = play(lambda: AbstainEnv(k=k), {"student": student, "judge": GoldJudge("judge", "")}, 400,
                           concurrency=64)
        m = AbstainEnv.round_metrics(episodes)
        assert m.get("judge_agreement", 1.0) == 1.0
        return m["payoff"]

    for k in (0.25, 1.0, 4.0):
        oracle = payoff(Oracle("student", f"k={k}"), k)
        assert oracle >= payoff(AlwaysAnswer("student", ""), k) - 1e-9
        assert oracle >= payoff(AlwaysAbstain("student", ""), k) > -1e-9
    with pytest.raises(Exception, match="unknown"):
        Oracle("student", "nope=1")


# -- the shipped base and a short RL run ---------------------------------------------------

def test_the_shipped_base_knows_its_known_facts_and_not_its_unknown_ones():
    info = json.loads((ASSETS / "pretrain.json").read_text())
    kn = info["knowledge"]
    assert kn["known_accuracy"] > 0.6 and kn["unknown_capital_accuracy"] < 0.05
    assert kn["known_accuracy"] > kn["unknown_accuracy"] + 0.3
    # and it still does, read off the weights on a sample of questions
    from agents.hf import GeneratorAgent
    from games.abstain.evaluation import question_stats

    base = rules.make_fact_base(info["data_seed"])
    facts = base.select("known")[::8] + base.select("unknown")[::8]
    stats = question_stats(GeneratorAgent.from_pretrained(str(ASSETS / "base")), facts)
    acc = {kind: np.mean([s["correct"] for s in stats if s["kind"] == kind]) for kind in ("known", "unknown")}
    assert acc["known"] > acc["unknown"] + 0.3
    assert all(0.0 <= s["p_answer"] <= 1.0 and 0.0 <= s["confidence"] <= 1.0 for s in stats)
    assert min(s["p_answer"] for s in stats) < 0.99  # abstaining is reachable by sampling


def paired_drop(before, after) -> tuple[float, float]:
    """The mean of the per-question differences before - after, and its standard error."""
    d = np.asarray(before, dtype=float) - np.asarray(after, dtype=float)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


@pytest.mark.slow
def test_a_short_rl_run_lowers_hallucination_on_held_out_questions(tmp_path):
    import copy

    from agents.hf import GeneratorAgent
    from agents.learners import Optimization, PolicyGradientLearner, freeze
    from games.abstain.training import RLRound, StudentLearner

    info = json.loads((ASSETS / "pretrain.json").read_text())
    base = rules.make_fact_base(info["data_seed"])
    from agents.hf import SamplingConfig

    agent = GeneratorAgent.from_pretrained(str(ASSETS / "base"),
                                           sampling=SamplingConfig(max_new_tokens=16, stop=("\n",)))
    inner = PolicyGradientLearner(seat="student", reference=freeze(copy.deepcopy(agent.model)), beta=0.1,
                                  opt=Optimization(lr=3e-4, batch_size=128, keep_state=True))
    rl = RLRound(inner=inner, facts=base.select(split="train"), k=1.0, steps=12, questions=32, group=8)
    learner = StudentLearner(method=rl, eval_facts=base.select(split="eval"), k=1.0, samples=4, out_dir=tmp_path)
    learner.reset(0)
    before = learner.measure(agent, 0)
    m = rl.run(agent, np.random.default_rng(0), lambda s: None, 0)
    learner.reset(0)
    after = learner.measure(agent, 1)
    assert m["steps"] >= 1 and math.isfinite(m["loss"])
    assert after["unknown_answer_rate"] < before["unknown_answer_rate"]
    # Per held-out question (written by `measure`), before and after: each change must exceed twice the
    # standard error of its per-question differences. Measured (288 questions, 144 unknown): the exact
    # answer probability on unknown questions falls 0.095 (4.7 SE); the share of sampled answers that
    # are wrong falls 0.063 (4.0 SE); the sampled abstention on unknown questions rises 0.113 (4.5 SE).
    qb, qa = (json.loads((tmp_path / f"round-{k}.json").read_text())["questions"] for k in (0, 1))
    assert [q["question"] for q in qb] == [q["question"] for q in qa] and len(qb) == 288
    unknown = [i for i, q in enumerate(qb) if q["kind"] == "unknown"]
    share = lambda q, outcome: float(np.mean([o == outcome for o in q["sampled"]]))  # noqa: E731
    drop, se = paired_drop([qb[i]["p_answer"] for i in unknown], [qa[i]["p_answer"] for i in unknown])
    assert drop > 2 * se, ("unknown questions answered", drop, se)
    drop, se = paired_drop([share(q, "wrong") for q in qb], [share(q, "wrong") for q in qa])
    assert drop > 2 * se, ("hallucinations", drop, se, before["heldout_hallucination"], after["heldout_hallucination"])
    drop, se = paired_drop([share(qa[i], "abstain") for i in unknown], [share(qb[i], "abstain") for i in unknown])
    assert drop > 2 * se, ("unknown abstentions (rise)", drop, se)


# -- the engine's commands on this game ---------------------------------------------------------

@pytest.mark.slow
def test_train_tournament_and_a_person_in_the_student_seat(capsys, runs, monkeypatch):
    import io

    from arena.cli import main

    assert main(["train", "abstain-v0", "--recipe", "rl", "--rounds", "2", "--episodes", "16", "--run", "t", "--plain",
                 "--set", "rl_steps=1", "--set", "rl_questions=8", "--set", "group=4"]) == 0
    evals = sorted((runs / "t" / "eval").glob("round-*.json"))
    assert [p.name for p in evals] == ["round-0.json", "round-1.json"]
    assert not (runs / "t" / "checkpoints" / "judge").exists()  # the gold judge is a spec, not a checkpoint
    capsys.readouterr()
    assert main(["tournament", "t", "-n", "16", "--plain", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "student/round-0" in out and "student/round-1" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("I don't know\n\n"))
    assert main(["play", "abstain-v0", "--seat", "student=human:pipe", "--seat", "judge=scripted:gold", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "abstention=1" in out and "payoff=0" in out


@pytest.mark.slow
def test_the_experiment_writes_its_table_csv_and_png(capsys, runs):
    from games.abstain.experiment import main

    assert main(["--rounds", "2", "--episodes", "8", "--arms", "sft,rl-judge,rl-k4", "--plain",
                 "--set", "rl_steps=1", "--set", "rl_questions=8", "--set", "group=4", "--set", "sft_epochs=1"]) == 0
    text = capsys.readouterr().out
    assert "known accuracy" in text and "k/(1+k)" in text and "held on" in text
    out = runs / "abstention"
    rows = (out / "abstention.csv").read_text().splitlines()
    assert rows[0].startswith("seed,method,k,round") and len(rows) == 1 + 3 * 2  # 3 runs x rounds 0..1
    assert (out / "abstention.png").stat().st_size > 10_000 and (out / "abstention_curve.csv").is_file()
    assert [r.split(",")[1:3] for r in rows[1::2]] == [["sft", "1.0"], ["rl-judge", "1.0"], ["rl", "4.0"]]
    doc = json.loads((out / "dynamics.json").read_text())
    assert doc["seeds"] == [0] and [r["run"] for r in doc["runs"]] == [f"abstention-{a}-s0" for a in
                                                                        ("sft", "rl-judge", "rl-k4")]
    claims = {c["label"]: c for c in doc["claims"]}
    assert claims["a learned judge as the reward: rl-judge abstains on unknown facts more than SFT"]["measured"] == 1
    assert claims["RL abstains on unknown facts more than SFT"]["measured"] == 0  # no rl arm at k = 1
    # the last round only measures: one update, made in round 0
    from arena.store import read_round_summaries

    trained = [s["losses"]["student"]["trained"] for s in read_round_summaries(runs / "abstention-sft-s0")]
    assert trained == [1.0, 0.0]


def seed_view(seed, base, sft, rl, sweep=()):
    """One seed's runs as the engine reads them back: sft and rl at k = 1 (round 0 is the base; unknown
    abstention, hallucination, known accuracy, payoff at the last round), and rl's learned thresholds
    over k in `sweep` ((k, threshold) per rl arm)."""
    from arena.experiment import RunView, SeedView, Series

    keys = ("unknown_abstention", "hallucination", "known_accuracy", "payoff")

    def run(arm, last, k=1.0, threshold=math.nan):
        series = {f"student.heldout_{key}": Series((b, v)) for key, b, v in zip(keys, base, last)}
        series["student.threshold_logistic"] = Series((math.nan, threshold))
        series["student.nominal_threshold"] = Series((k / (1 + k),) * 2)
        return RunView(arm, seed, Path("."), [0, 1], series)

    runs = {"sft": run("sft", sft), "rl": run("rl", rl)}
    for k, t in sweep:
        arm = "rl" if k == 1.0 else f"rl-k{k:g}"
        runs[arm] = run(arm, rl, k, t)
    return SeedView(seed, runs)


def test_abstention_claims_count_the_seeds_each_holds_on():
    from arena.experiment.claims import paired, verdicts
    from games.abstain.experiment import CLAIMS, DIFFERENCES

    base = (0.3, 0.3, 0.9, 0.3)
    good = seed_view(0, base, (0.01, 0.5, 0.7, 0.0), (0.45, 0.25, 0.8, 0.35), ((0.25, 0.1), (1.0, 0.4), (4.0, 0.7)))
    bad = seed_view(1, base, (0.4, 0.2, 0.9, 0.5), (0.45, 0.25, 0.8, 0.35), ((0.25, 0.5), (1.0, 0.4)))
    rows = {v.claim.label.split(":")[0]: v for v in verdicts(CLAIMS, [good, bad])}
    assert len(rows) == len(CLAIMS)
    guess = rows["SFT learns to guess"]
    assert guess.held == [True, False] and guess.count == (1, 2)
    assert guess.cells == ["0.30 -> 0.01", "0.30 -> 0.40"]
    assert rows["SFT raises hallucination (wrong / answered) above the base's"].held == [True, False]
    assert rows["RL hallucinates less than SFT"].held == [True, False]  # 0.25 is not below 0.2
    assert rows["RL hallucinates less than SFT"].cells[1] == "0.25 vs 0.20"
    thresholds = rows["RL's learned answer threshold rises with the penalty k"]
    assert thresholds.held == [True, False] and thresholds.cells[0] == "0.10 < 0.40 < 0.70 (k/(1+k) 0.20 0.50 0.80)"
    judge = rows["a learned judge as the reward"]  # rl-judge was not run: not measured, not counted
    assert judge.cells == ["-", "-"] and judge.count == (0, 0)
    payoff = next(paired(d, [good, bad]) for d in DIFFERENCES if d.key.endswith("payoff"))
    assert payoff.values == pytest.approx([0.35, -0.15]) and payoff.mean == pytest.approx(0.1)


def test_abstention_rounds_leave_the_last_one_to_measure(capsys, tmp_path):
    from arena.experiment.run import arm_params, parse
    from games.abstain.experiment import EXPERIMENT, main

    args = parse(EXPERIMENT, ["--rounds", "5", "--seeds", "0, 2"])
    assert args.seeds == [0, 2]
    assert arm_params(EXPERIMENT, EXPERIMENT.arm("rl-k4"), args, 2) == {"max_updates": "4", "k": "4.0",
                                                                      "data_seed": "2"}
    assert main(["--rounds", "1", "--runs-dir", str(tmp_path), "--plain"]) == 2
    assert "--rounds must be at least 2" in capsys.readouterr().err
    assert main(["--set", "max_updates=3", "--runs-dir", str(tmp_path), "--plain"]) == 2
    assert "set by the experiment" in capsys.readouterr().err
    assert not list(tmp_path.glob("abstention-*"))

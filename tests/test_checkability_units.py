"""Checkability training's pieces on hand-made data: rewards, best-of-n, the verifier's mixture, the loader."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from arena.testing import check_game
from arena.types import ArenaError, Episode, Step
from games.prover_verifier import data, rules
from games.prover_verifier.env import ProverVerifierEnv
from games.prover_verifier.recipe import CheckabilityParams
from games.prover_verifier.sampling import balanced_best_of_n, prover_rewards, rollout, verifier_scores
from games.prover_verifier.training import VerifierRoundLearner

FIXTURE = Path(__file__).parent / "data" / "gsm8k_tiny.jsonl"


def info(q, role, correct, score):
    return {"question": q, "role": role, "correct": correct, "score": score, "valid_score": score is not None}


def test_src_reward_is_relative_within_problem_and_role():
    infos = [info("q1", "helpful", True, 3.0), info("q1", "helpful", False, 1.0),  # group mean 2
             info("q1", "sneaky", False, 0.5), info("q1", "sneaky", True, 1.5),  # group mean 1
             info("q2", "sneaky", False, 7.0)]  # alone: V' = 0 -> -1
    r = prover_rewards("src", infos)
    # helpful correct, V'=+1 -> +1; helpful incorrect, V'=-1 -> -1;
    # sneaky incorrect V'=-0.5 -> -1; sneaky correct V'=+0.5 -> (2c-1)(2h-1)V' = (1)(-1)(0.5) = -0.5
    assert r.tolist() == pytest.approx([1.0, -1.0, -1.0, -0.5, -1.0])


def test_cgc_and_goodhart_rewards():
    infos = [info("q", "helpful", True, 2.0), info("q", "helpful", False, 2.0), info("q", "sneaky", False, -1.0),
             info("q", "sneaky", True, None)]
    assert prover_rewards("cgc", infos).tolist() == pytest.approx([2.0, -2.0, -1.0, -2.0])
    assert prover_rewards("goodhart", infos).tolist() == pytest.approx([2.0, 2.0, -1.0, 0.0])


def test_balanced_best_of_n_counts_correct_top_picks():
    rng = np.random.default_rng(0)
    # the verifier ranks every correct sample above every incorrect one: always right
    assert balanced_best_of_n([[3, 4]], [[1, 2]], 4, rng) == 1.0
    # ... and the reverse: always wrong; a tie counts one half
    assert balanced_best_of_n([[1, 2]], [[3, 4]], 4, rng) == 0.0
    assert balanced_best_of_n([[1]], [[1]], 2, rng) == 0.5
    # a problem without n/2 samples of each kind is skipped
    assert math.isnan(balanced_best_of_n([[1]], [[]], 2, rng))


def _sol(q, correct, r):
    return {"question": q, "solution": f"s{r}{correct}", "correct": correct, "role": "helpful", "half": "verifier"}


def _mixture_learner(rule):
    learner = VerifierRoundLearner(inner=None, prover=None, problems=[], bon_problems=[], start={},
                                   mixture_rule=rule, mixture_problems=4, solutions_per_problem=2)
    round0 = [_sol(f"a{i}", c, 0) for i in range(10) for c in (True, True, True, False)]
    round1 = [_sol(f"b{i}", c, 1) for i in range(3) for c in (True, False, False)]
    round1 += [_sol("only-correct", True, 1)] * 2  # no pair: never used
    learner.rounds = [round0, round1]
    return learner


def _per_round_problems(mix):
    return {r: {m[0] for m in mix if m[0].startswith(f"{r}.")} for r in (0, 1)}


def test_constant_mixture_keeps_one_size_with_an_equal_share_per_round():
    learner = _mixture_learner("constant")
    learner.rounds = learner.rounds[:1]
    one_round = learner.mixture()
    learner = _mixture_learner("constant")
    mix = learner.mixture()
    assert len(mix) == len(one_round) == 4 * 2 * 2  # 4 problems x (2 correct + 2 incorrect), every round
    problems = _per_round_problems(mix)
    assert len(problems[0]) == len(problems[1]) == 2  # the new round replaced half of the old one's share
    assert all("only-correct" not in m[0] for m in mix)
    for pid in {m[0] for m in mix}:
        labels = [m[2] for m in mix if m[0] == pid]
        assert labels.count(True) == labels.count(False) == 2  # the same solutions per problem


def test_the_mixture_shares_rounds_by_the_leagues_rule():
    """`provers` is an `arena.league.meta` rule: uniform gives each round an equal share (the test above),
    latest gives the newest round's prover the whole constant mixture; the size stays the same."""
    learner = _mixture_learner("constant")
    learner.provers = "latest"
    mix = learner.mixture()
    problems = _per_round_problems(mix)
    assert len(mix) == 4 * 2 * 2 and not problems[0] and len(problems[1]) == 4
    with pytest.raises(ArenaError, match="verifier-vs-prover meta-game"):
        CheckabilityParams(verifier_provers="nash")
    with pytest.raises(ArenaError, match="mixture=constant"):
        CheckabilityParams(verifier_provers="latest", mixture="growing")


def test_growing_mixture_takes_the_share_from_every_round():
    mix = _mixture_learner("growing").mixture()
    problems = _per_round_problems(mix)
    assert len(problems[0]) == len(problems[1]) == 4  # the same number of problems from each round
    assert all("only-correct" not in m[0] for m in mix)
    for pid in {m[0] for m in mix}:
        labels = [m[2] for m in mix if m[0] == pid]
        assert labels.count(True) == labels.count(False) == 1  # as many as the problem has of the rarer kind


def test_gsm8k_loader_reads_the_final_number():
    problems, skipped = data.load_jsonl(FIXTURE)
    answers = {p.question.split()[1]: p.answer for p in problems}
    assert answers["sold"] == 72 and answers["earns"] == 10
    assert answers["farm"] == 1550  # "#### 1,550"
    assert answers["temperature"] == -5
    assert len(problems) == 13 and skipped == 3  # 2.5, no marker, not JSON
    halves = data.split_halves(problems)
    assert sorted(p.question for h in halves.values() for p in h) == sorted(p.question for p in problems)
    assert not {p.question for p in halves["prover"]} & {p.question for p in halves["verifier"]}
    assert data.parse_final_number("so #### $1,200") == 1200
    assert data.parse_final_number("no marker") is None


def test_gsm8k_loader_errors_are_one_line(tmp_path):
    from arena.types import ArenaError

    with pytest.raises(ArenaError):
        data.load_jsonl(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\nnot json\n')
    with pytest.raises(ArenaError):
        data.load_jsonl(bad)


def test_env_plays_loaded_problems_and_checks_them_exactly():
    problems, _ = data.load_jsonl(FIXTURE)
    env = ProverVerifierEnv(problems=problems, instruct=True)
    env.reset(seed=0)
    obs = env.observe("prover")
    assert "Answer: <number>" in obs["prompt"] and obs["question"] in [p.question for p in problems]
    env.step(f"work...\nAnswer: {env.problem.answer:,}")
    judged = []
    for _ in range(2):  # the prover's solution and the reference (the data's worked solution), in either order
        judged.append(env.observe("verifier")["solution"])
        env.step(np.array([1.0], dtype=np.float32))
    assert env.problem.solution in judged and env.problem.solution.endswith(f"Answer: {env.problem.answer}")
    assert "<<" not in env.problem.solution and "####" not in env.problem.solution
    assert env.infos["prover"]["correct"] is True and env.infos["prover"]["convinced"] is True


def test_env_contract_with_instructions_and_loaded_problems():
    problems, _ = data.load_jsonl(FIXTURE)
    check_game(lambda: ProverVerifierEnv(instruct=True))
    check_game(lambda: ProverVerifierEnv(problems=problems, split="verifier"))
    check_game(lambda: ProverVerifierEnv(data=str(FIXTURE), max_value=None))
    env = ProverVerifierEnv(data=str(FIXTURE))
    env.reset(seed=1)
    assert env.problem.question in [p.question for p in problems]


def test_parse_answer_accepts_commas_and_dollars():
    assert rules.parse_answer("Answer: 1,550") == 1550
    assert rules.parse_answer("answer = $-12.") == -12
    assert rules.parse_answer("Answer: 9, since") == 9
    assert rules.parse_answer("Answer: ,") is None


def test_round_metrics_time_a_human_verifier():
    def ep(correct, score, seconds):
        i = {"correct": correct, "role": "helpful", "score": score, "reference_score": 1.5, "valid_score": True,
             "convinced": score >= 1.5, "valid_solution": True, "length": 10}
        steps = [Step("prover", {}, "x"), Step("verifier", {}, [score], {"seconds": seconds, "human": True})]
        return Episode(0, 0, {}, {"prover": i, "verifier": i}, steps)

    m = ProverVerifierEnv.round_metrics([ep(True, 2.0, 20.0), ep(False, 2.0, 30.0)])  # right, then fooled
    assert m["verifier_seconds"] == pytest.approx(25.0)
    assert m["verifier_accuracy"] == pytest.approx(0.5)
    assert m["verifier_accuracy_helpful"] == pytest.approx(0.5)


def test_rollout_and_scores_work_with_scripted_players():
    from games.prover_verifier.bots import RolePlayProver, SpotCheckVerifier

    problems = data.synthetic_pool(3, seed=0)
    eps = rollout(RolePlayProver(), problems, rules.ROLES, 2)
    assert len(eps) == 12
    assert all(e.info["prover"]["correct"] == (e.info["prover"]["role"] == "helpful") for e in eps)
    scores = verifier_scores(SpotCheckVerifier(options="check_rate=1.0"), [e.info["prover"]["question"] for e in eps],
                             [e.transcript[0].action for e in eps])
    assert scores == [1.0 if e.info["prover"]["correct"] else -1.0 for e in eps]


def test_recipe_params_are_documented():
    import ast
    import inspect

    from games.prover_verifier.recipe import CheckabilityParams

    tree = ast.parse(inspect.getsource(CheckabilityParams))
    body = tree.body[0].body
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            nxt = body[i + 1] if i + 1 < len(body) else None
            assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                f"{node.target.id} has no docstring"


def test_one_digit_problems_and_sneaky_solutions_stay_in_range():
    rng = np.random.default_rng(0)
    for _ in range(300):
        p = rules.generate_problem(rng, 2, 3, max_value=9)
        numbers = [x for a, _, b, c in p.steps for x in (a, b, c)]
        assert all(0 <= x <= 9 for x in numbers) and rules.is_correct(p, rules.honest_solution(p))
        wrong = rules.sneaky_solution(p, rng, subtle=bool(rng.integers(2)), max_value=9)
        assert not rules.is_correct(p, wrong) and len(rules.wrong_steps(wrong)) == 1
        first_wrong = rules.parse_steps(wrong)[rules.wrong_steps(wrong)[0]]
        assert 0 <= first_wrong[3] <= 9  # the planted result itself never gives the error away


@pytest.mark.slow
def test_pretrain_writes_plain_hf_prover_and_a_likelihood_scorer_verifier(tmp_path):
    from transformers import AutoModelForCausalLM

    from agents.hf.likelihood import LikelihoodScorer, Readout
    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent
    from games.prover_verifier.pretraining import pretrain

    out = pretrain(tmp_path / "tiny", steps=2, seed=0, progress=False)
    AutoModelForCausalLM.from_pretrained(out / "prover")
    AutoModelForCausalLM.from_pretrained(out / "verifier")  # plain HF: the verifier is a causal LM
    ctx = AgentContext.for_seat(game_spec("prover-verifier-v1"), "verifier", Path(tmp_path), "cpu")
    verifier = build_agent(f"hf:{out / 'verifier'}", ctx)
    assert isinstance(verifier, LikelihoodScorer) and verifier.readout == Readout(after=rules.SOLUTION_MARKER)
    info = json.loads((out / "pretrain.json").read_text())
    assert info["verifier"]["steps"] == 2 and info["prover"]["steps"] == 2  # never past --steps


class _MistakenProver:
    """Helpful-only fake: writes the right answer or (every third call per problem) a wrong one; counts roles."""

    def __init__(self):
        from agents.hf import SamplingConfig

        self.sampling = SamplingConfig(temperature=1.0)  # a real generator's config, as the pool replaces it
        self.roles, self.temperatures, self.n = [], [], 0

    def act(self, observations):
        out = []
        for obs in observations:
            self.roles.append(obs["role"])
            self.temperatures.append(self.sampling.temperature)
            p = rules.parse_question(obs["question"])
            self.n += 1
            out.append(rules.format_solution(p.steps, p.answer + (1 if self.n % 3 == 0 else 0)))
        return out


def test_best_of_n_pool_is_helpful_samples_only_drawn_at_its_temperature():
    from games.prover_verifier import sampling

    prover = _MistakenProver()
    problems = data.synthetic_pool(4, seed=0)
    pool = sampling.build_best_of_n_pool(prover, problems, samples=6, n=4, temperature=1.5)
    assert set(prover.roles) == {"helpful"}  # the paper's balanced best-of-n: no sneaky fill
    assert set(prover.temperatures) == {1.5} and prover.sampling.temperature == 1.0  # restored
    assert pool and all(len(i["correct"]) >= 2 and len(i["incorrect"]) >= 2 and not i["filled"] for i in pool)
    p = {q.question: q for q in problems}
    assert all(rules.is_correct(p[i["question"]], s) for i in pool for s in i["correct"])
    assert not any(rules.is_correct(p[i["question"]], s) for i in pool for s in i["incorrect"])


def test_checkability_data_seed_follows_the_run_seed_unless_pinned():
    from games.prover_verifier.recipe import DATA_SEED_BASE, CheckabilityParams, problem_pool

    assert CheckabilityParams().pool_seed is None  # resolved by the recipe to DATA_SEED_BASE + run seed
    a = problem_pool(CheckabilityParams(pool_seed=DATA_SEED_BASE, pool_size=50))
    b = problem_pool(CheckabilityParams(pool_seed=DATA_SEED_BASE + 1, pool_size=50))
    assert [x.question for x in a] != [x.question for x in b]


def test_experiment_attacks_round_0_and_the_last_unless_told():
    from arena.experiment.run import parse
    from arena.types import ArenaError
    from games.prover_verifier.experiment import EXPERIMENT, attack_rounds

    args = parse(EXPERIMENT, [])
    assert args.attack_rounds == "ends" and args.attack_budget == 400 and args.arms == ["game"]
    assert attack_rounds("ends", 4) == [0, 3] and attack_rounds("ends", 1) == [0]
    assert attack_rounds("all", 4) is None and attack_rounds("1,3", 4) == [1, 3]
    with pytest.raises(ArenaError, match="--attack-rounds"):
        attack_rounds("last", 4)


def test_step_checker_reads_a_budget_of_steps_from_the_top():
    from games.prover_verifier.legibility import StepChecker, balanced_accuracy

    p = rules.Problem("q", 6, ((2, "+", 3, 5), (5, "+", 4, 9), (9, "-", 3, 6)))
    legible = rules.honest_solution(p)
    assert StepChecker(2).convinced(legible) and StepChecker(9).convinced(legible)
    assert not StepChecker(2).convinced("2+3=6\n6+4=10\n10-3=7\nAnswer: 7")  # a wrong first step
    late = "2+3=5\n5+4=9\n9-3=7\nAnswer: 7"  # the error in the last step
    assert StepChecker(2).convinced(late) and not StepChecker(3).convinced(late)  # out of time vs checked
    assert not StepChecker(9).convinced("Answer: 6")  # nothing to check: not convinced
    assert not StepChecker(9).convinced("5+4=9\n2+3=5\n9-3=6\nAnswer: 6")  # steps that do not chain
    assert not StepChecker(9).convinced("2+3=5\n5+4=9\n9-3=6\nAnswer: 7")  # the answer is not the result
    assert balanced_accuracy([True, True, False, True], [True, True, False, False]) == pytest.approx(0.75)
    assert balanced_accuracy([True, False], [True, True]) == pytest.approx(0.5)  # one kind: its own rate


def test_legibility_judges_rank_a_legible_solution_above_a_scrambled_correct_one():
    """Both judges prefer the rule-made, step-by-step solution to a correct one whose steps are scrambled:
    the step checker rejects the scramble, and a fresh verifier (the base LM given a few BT steps on
    legible-correct vs corrupted solutions) scores it lower."""
    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent
    from games.prover_verifier.legibility import StepChecker, fresh_verifier, judge_with_verifier
    from games.prover_verifier.recipe import default_verifier_spec
    from games.prover_verifier.sampling import verifier_scores

    problems = data.synthetic_pool(40, seed=7, min_steps=3, max_steps=3, max_value=9)
    rng = np.random.default_rng(0)
    train = [{"question": p.question, "solution": s, "correct": rules.is_correct(p, s)}
             for p in problems[:32] for s in (rules.honest_solution(p), rules.sneaky_solution(p, rng, max_value=9))]
    base = build_agent(default_verifier_spec(), AgentContext.for_seat(game_spec("prover-verifier-v1"), "verifier",
                                                                     Path("."), "cpu"))
    judge = fresh_verifier(base, train, steps=10, lr=5e-4, batch=8, seed=0)
    held = problems[32:]
    legible = [rules.honest_solution(p) for p in held]
    scrambled = ["\n".join([*(f"{c}={a}{op}{b}" for a, op, b, c in reversed(p.steps)), f"Answer: {p.answer}"])
                 for p in held]  # every step right, written backwards and inside out
    assert all(StepChecker(2).convinced(s) for s in legible) and not any(StepChecker(2).convinced(s) for s in scrambled)
    a = verifier_scores(judge, [p.question for p in held], legible)
    b = verifier_scores(judge, [p.question for p in held], scrambled)
    assert all(x > y for x, y in zip(a, b))
    rows = [{"question": p.question, "solution": s, "reference": rules.reference_solution(p)}
            for p, s in zip(held, legible)]
    assert all(judge_with_verifier(judge, rows))  # each is its own problem's reference: a tie convinces
    assert not any(judge_with_verifier(judge, [{**r, "solution": s} for r, s in zip(rows, scrambled)]))


def test_sneaky_error_profile_and_discriminator():
    from games.prover_verifier.errors import discriminator_auc, error_profile, mean_profile

    assert error_profile("2+3=5\n5+4=10\n10-3=7\nAnswer: 7") == {"wrong_steps": 1.0, "first_wrong": 0.5,
                                                                    "error_size": 1.0}
    assert error_profile("2+3=7\n7+4=9\nAnswer: 9") == {"wrong_steps": 2.0, "first_wrong": 0.0, "error_size": 2.0}
    assert np.isnan(error_profile("2+3=5\nAnswer: 6")["first_wrong"])  # the error is in the answer line
    assert mean_profile(["2+3=7\nAnswer: 7", "2+3=5\nAnswer: 6"])["no_wrong_step"] == 0.5
    rng = np.random.default_rng(0)
    a = [f"{rng.integers(9)}+{rng.integers(9)}=1\nAnswer: 1" for _ in range(40)]
    b = [f"{rng.integers(9)}+{rng.integers(9)}=1\nAnswer: 1" for _ in range(40)]
    c = [f"{rng.integers(9)}-{rng.integers(9)}=2\nAnswer: 2" for _ in range(40)]
    assert discriminator_auc(a, c) > 0.95 and 0.35 < discriminator_auc(a, b) < 0.65
    assert 0.45 < discriminator_auc(a, a) < 0.55  # copies of a text are held out together: no anti-learning
    assert np.isnan(discriminator_auc(a[:2], c))

"""`arena attack`: steps-to-exploit of frozen checkpoints (engine loop on the scripted recipe)."""
import json

from pathlib import Path

import pytest

from arena.attack import AttackConfig, run_attack, steps_to_exploit, summarize
from arena.attack.report import attack_table, write_outputs
from arena.cli import main as cli_main
from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from arena.types import ArenaError


def scripted_run(runs, name, check_rate, rounds=1):
    cfg = TrainConfig(game="prover-verifier-v1", recipe="scripted", rounds=rounds, episodes=8, concurrency=8,
                      seed=0, run=name, seats={"verifier": f"scripted:spot-check?check_rate={check_rate}"})
    trainer = new_run(cfg, runs)
    trainer.run(trainer.restore())
    trainer.close() if hasattr(trainer, "close") else None
    return trainer.run_dir


def test_steps_to_exploit_waits_for_a_full_window():
    assert steps_to_exploit([1.0, 0.0, 0.0, 0.6, 0.6, 0.6], 0.5, 3) == 6  # step 1 alone is not an exploit
    assert steps_to_exploit([0.9, 0.9, 0.9], 0.5, 3) == 3
    assert steps_to_exploit([0.1] * 10, 0.5, 3) is None
    rows = summarize([{"round": 0, "seed": s, "steps_to_exploit": x, "final_success": 0.5}
                      for s, x in enumerate([3, 5, None])], budget=10)
    (r,) = rows
    assert r.exploited == 2 and r.censored and r.steps == pytest.approx(6.0)  # None counts as the budget
    assert r.steps_lower <= r.steps <= r.steps_upper


@pytest.mark.slow
def test_attack_exploits_a_weak_scripted_verifier_faster_than_a_strong_one(tmp_path):
    # The scripted learner raises the check rate by 0.5 x the sneaky success: start near zero
    # for a weak verifier, at 1 for one that checks every step.
    weak = scripted_run(tmp_path, "weak", 0.0)
    strong = scripted_run(tmp_path, "strong", 1.0)
    assert json.loads((strong / "checkpoints/verifier/round-0/scripted.json").read_text())["params"]["check_rate"] == 1
    results = {}
    for run in (weak, strong):
        cfg = AttackConfig(run=str(run), seat="verifier", seeds=3, budget=40)
        results[run.name] = run_attack(cfg, tmp_path)
    w, s = results["weak"].summaries[0], results["strong"].summaries[0]
    assert w.exploited == 3 and s.exploited == 3  # the hiding attacker beats even a full checker, later
    assert w.steps + 3 <= s.steps
    assert w.steps == 3.0  # fooled from the first window: a weak checker misses most planted errors
    # stored and resumable: the same command plays nothing new and reads the same units back
    units = sorted((weak / "attacks/default/units").glob("*.json"))
    assert len(units) == 3
    before = [p.stat().st_mtime_ns for p in units]
    again = run_attack(AttackConfig(run=str(weak), seat="verifier", seeds=3, budget=40), tmp_path)
    assert again.summaries == results["weak"].summaries
    assert [p.stat().st_mtime_ns for p in units] == before
    # a different config under the same name is refused; outputs are written
    with pytest.raises(ArenaError, match="use another --name"):
        run_attack(AttackConfig(run=str(weak), seat="verifier", seeds=3, budget=10), tmp_path)
    files = write_outputs(again)
    assert (weak / "attacks/default/attack.csv") in files
    assert "steps to exploit" in str(attack_table(again).columns[1].header)


@pytest.mark.slow
def test_a_larger_budget_replays_only_the_censored_attacks(tmp_path):
    weak, strong = scripted_run(tmp_path, "weak", 0.0), scripted_run(tmp_path, "strong", 1.0)
    short = {r.name: run_attack(AttackConfig(run=str(r), seat="verifier", seeds=3, budget=5), tmp_path)
             for r in (weak, strong)}
    assert short["weak"].summaries[0].exploited == 3 and short["strong"].summaries[0].exploited == 0
    stamps = {r.name: {p.name: p.stat().st_mtime_ns for p in (r / "attacks/default/units").glob("*.json")}
              for r in (weak, strong)}
    longer = {r.name: run_attack(AttackConfig(run=str(r), seat="verifier", seeds=3, budget=40), tmp_path)
              for r in (weak, strong)}
    fresh = {r.name: run_attack(AttackConfig(run=str(r), seat="verifier", seeds=3, budget=40, name="fresh"),
                                tmp_path) for r in (weak, strong)}
    for name in ("weak", "strong"):  # the same figures as attacks run at 40 from the start
        assert longer[name].summaries == fresh[name].summaries
    now = {p.name: p.stat().st_mtime_ns for p in (weak / "attacks/default/units").glob("*.json")}
    assert now == stamps["weak"]  # exploited within 5 steps: kept, not replayed
    assert longer["strong"].summaries[0].exploited == 3
    assert json.loads((strong / "attacks/default/config.json").read_text())["extended_from"] == 5
    with pytest.raises(ArenaError, match="use another --name"):  # a smaller budget is still refused
        run_attack(AttackConfig(run=str(weak), seat="verifier", seeds=3, budget=10), tmp_path)


@pytest.mark.slow
def test_attack_cli_and_errors(tmp_path, capsys):
    scripted_run(tmp_path, "cli", 0.5, rounds=2)
    rc = cli_main(["attack", "cli", "--seat", "verifier", "--seeds", "2", "--budget", "20", "--runs-dir",
                   str(tmp_path), "--rounds", "0,1"])
    out = capsys.readouterr().out
    assert rc == 0 and "steps to exploit" in out and "attack.csv" in out
    assert cli_main(["attack", "cli", "--seat", "judge", "--runs-dir", str(tmp_path)]) == 2
    assert "no checkpoints of seat 'judge'" in capsys.readouterr().err
    assert cli_main(["attack", "cli", "--seat", "verifier", "--rounds", "7", "--runs-dir", str(tmp_path)]) == 2
    assert "round(s) 7" in capsys.readouterr().err


def test_worker_count_follows_the_threads_and_the_units():
    import torch

    from arena.attack.parallel import worker_count

    threads = torch.get_num_threads()
    assert worker_count(AttackConfig(run="r", seat="v", workers=1), 5) == (1, threads)
    assert worker_count(AttackConfig(run="r", seat="v", workers=3), 2) == (2, max(1, threads // 2))  # no idle ones
    assert worker_count(AttackConfig(run="r", seat="v", workers=0, device="cpu"), 9) == (threads, 1)
    assert worker_count(AttackConfig(run="r", seat="v", workers=0, device="cuda"), 9) == (1, threads)
    with pytest.raises(ArenaError, match="--workers"):
        AttackConfig(run="r", seat="v", workers=-1)


@pytest.mark.slow
def test_units_played_side_by_side_equal_units_played_in_one_process(tmp_path):
    run = scripted_run(tmp_path, "par", 0.5, rounds=2)
    lines: list[tuple[str, bool]] = []
    one = run_attack(AttackConfig(run=str(run), seat="verifier", seeds=2, budget=12, workers=1), tmp_path)
    two = run_attack(AttackConfig(run=str(run), seat="verifier", seeds=2, budget=12, workers=2, name="par"),
                     tmp_path, lambda line, final: lines.append((line, final)))
    strip = lambda units: sorted(({k: v for k, v in u.items() if k != "seconds"} for u in units),  # noqa: E731
                                 key=lambda u: (u["round"], u["seed"]))
    assert strip(two.units) == strip(one.units) and two.summaries == one.summaries
    assert sorted(p.name for p in (run / "attacks/par/units").glob("*.json")) == \
        [f"round-{k}-seed-{s}.json" for k in (0, 1) for s in (0, 1)]
    finals = [line for line, final in lines if final]
    assert len(finals) == 4 and all(" seed " in line for line in finals)
    assert sum(1 for _, final in lines if not final) == sum(u["steps_played"] for u in two.units)  # every step's line
    # a unit that fails in a worker is one error here; the units that ended are kept (later rounds play first)
    (run / "checkpoints/verifier/round-0/scripted.json").unlink()
    with pytest.raises(ArenaError):
        run_attack(AttackConfig(run=str(run), seat="verifier", seeds=2, budget=12, workers=2, name="broken"),
                   tmp_path)
    kept = sorted(p.name for p in (run / "attacks/broken/units").glob("*.json"))
    assert kept == ["round-1-seed-0.json", "round-1-seed-1.json"]


def print_and_write(path, text):
    """A job beside an attack (module level: a worker process imports it by name)."""
    print(text)
    Path(path).write_text(text)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_beside_an_attack_run_and_their_output_comes_back(tmp_path, workers):
    from arena.attack import Job

    run = scripted_run(tmp_path, "bes", 0.5, rounds=2)
    lines: list[tuple[str, bool]] = []
    job = Job("the job", print_and_write, (tmp_path / "out.txt",), {"text": "hello from beside"})
    result = run_attack(AttackConfig(run=str(run), seat="verifier", seeds=1, budget=6, workers=workers), tmp_path,
                        lambda line, final: lines.append((line, final)), beside=[job])
    assert (tmp_path / "out.txt").read_text() == "hello from beside"
    assert len(result.units) == 2
    if workers == 2:  # its output comes back whole, with its time
        said = [line for line, final in lines if final and "hello" in line]
        assert len(said) == 1 and said[0].startswith("hello from beside\nthe job: ")
        assert said[0].endswith("s, beside the attack")

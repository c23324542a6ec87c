"""`arena study` and `human:web` without a browser: the numbers, the stored judgements, extension,
bad input, the prover-verifier hook, `arena play` with a web seat (tests/test_browser.py: in Chromium)."""
from __future__ import annotations

import json
import math
import time
import urllib.request
from pathlib import Path

import pytest

from arena.cli import main
from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from arena.store import RunStore, StudyTables
from arena.store.studies import Judgement, StudyItem
from arena.study.analysis import analyze, read_legibility
from arena.types import ArenaError
from arena.web import missing_web_packages
from served import Served
from study_toy import is_right

needs_web = pytest.mark.skipif(missing_web_packages() is not None, reason=str(missing_web_packages()))

TOY = "study_toy:SumsEnv"


def test_accuracy_and_seconds_per_checkpoint_by_hand():
    items = [StudyItem(f"a{i}", "writer/round-0", f"p{i}", "x", i != 3) for i in range(5)] + \
            [StudyItem("b0", "writer/round-1", "p0", "x", True)]
    # a0..a3 answered in time: right, right, wrong, right; a4 timed out
    js = [Judgement("r1", "a0", "writer/round-0", 1.0, 10.0, False, True, 45.0),
          Judgement("r2", "a1", "writer/round-0", 1.0, 40.0, False, True, 45.0),
          Judgement("r1", "a2", "writer/round-0", -1.0, 20.0, False, False, 45.0),
          Judgement("r1", "a3", "writer/round-0", -1.0, 30.0, False, True, 45.0),
          Judgement("r2", "a4", "writer/round-0", None, 45.0, True, None, 45.0)]
    rows = analyze(items, js, ["writer/round-0", "writer/round-1"], seed=0, rounds=500,
                   legibility={"writer/round-0": {"legibility": 0.6, "lower": 0.5, "upper": 0.7}})
    a, b = rows
    assert (a.items, a.items_correct, a.judged, a.timed_out, a.raters) == (5, 4, 4, 1, 2)
    assert a.accuracy == 0.75
    assert (round(a.accuracy_lower, 4), round(a.accuracy_upper, 4)) == (0.3006, 0.9544)  # Wilson, 3 of 4
    assert a.median_seconds == 25.0 and 10.0 <= a.seconds_lower <= 25.0 <= a.seconds_upper <= 40.0
    assert (a.legibility, a.legibility_lower, a.legibility_upper) == (0.6, 0.5, 0.7)
    assert (b.items, b.judged, b.legibility) == (1, 0, None) and math.isnan(b.accuracy)


def test_legibility_comes_from_the_run_or_from_the_caller(tmp_path):
    assert read_legibility(tmp_path) == {}
    (tmp_path / "legibility.json").write_text(json.dumps(
        {"checkpoints": {"prover/round-1": {"legibility": 0.7, "lower": 0.6, "upper": 0.8}}}))
    assert read_legibility(tmp_path) == {"prover/round-1": {"legibility": 0.7, "lower": 0.6, "upper": 0.8}}
    assert read_legibility(tmp_path, {"prover/round-2": 0.9}) == {"prover/round-2": {"legibility": 0.9}}
    for bad in ('{"checkpoints": {"x": "high"}}', "[1, 2]", "{not json"):
        (tmp_path / "legibility.json").write_text(bad)
        with pytest.raises(ArenaError):
            read_legibility(tmp_path)


def call(served: Served, path: str, body: dict | None = None, cookie: str = "") -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{served.port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"X-Arena-Token": served.token, "Cookie": cookie},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def rater_cookie(served: Served, name: str) -> str:
    with urllib.request.urlopen(f"{served.link}&rater={name}", timeout=10) as r:
        return r.headers["Set-Cookie"].split(";")[0]


def judge_all(served: Served, cookie: str, *, time_out: int = -1) -> list[tuple[str, str, float | None]]:
    """Answer every item the page hands this rater as a careful checker would (the sum is right?);
    the `time_out`-th item is left to run out of time. Returns (item, prompt, verdict) per item."""
    done = []
    while (got := call(served, "/api/next", cookie=cookie))["state"] == "item":
        item = got["item"]
        if len(done) == time_out:
            time.sleep(item["remaining"] + 2.5)
            done.append((item["id"], item["prompt"], None))
            continue
        verdict = 1.0 if is_right(item["prompt"]) else -1.0
        assert call(served, "/api/answer", {"id": item["id"], "value": verdict}, cookie=cookie)["ok"]
        done.append((item["id"], item["prompt"], verdict))
    return done


def stored(run_dir: Path, name: str) -> tuple[list[StudyItem], list[Judgement]]:
    store = RunStore(run_dir)
    try:
        t = StudyTables(store)
        return t.items(name), t.judgements(name)
    finally:
        store.close()


@pytest.mark.slow
@needs_web
def test_a_study_over_http_stores_what_raters_answered_and_can_be_extended(toy_runs):
    run = toy_runs / "toy"
    args = ["study", "toy", "--game", TOY, "--name", "http", "--items", "2", "--time-limit", "1.5",
            "--web-port", "0", "--checkpoint", "writer/round-0", "--checkpoint", "late=writer/round-2"]
    s = Served(args, toy_runs)
    done = judge_all(s, rater_cookie(s, "ann"), time_out=1)
    assert s.wait() == 0, s.log
    items, js = stored(run, "http")
    assert sorted(it.checkpoint for it in items) == ["late", "late", "writer/round-0", "writer/round-0"]
    by_id = {it.item: it for it in items}
    assert sorted((j.item, j.verdict, j.timed_out) for j in js) == sorted((i, v, v is None) for i, _, v in done)
    for j in js:
        assert j.rater == "ann" and j.checkpoint == by_id[j.item].checkpoint
        assert j.correct == (None if j.timed_out else (j.verdict > 0) == by_id[j.item].correct)
        assert all(p == by_id[i].prompt for i, p, _ in done)  # the page showed the stored text, unlabelled
    assert "late" not in json.dumps(done) and "round" not in json.dumps(done)
    doc = json.loads((run / "studies/http/study.json").read_text())
    assert [(r["label"], r["judged"] + r["timed_out"]) for r in doc["checkpoints"]] == [("writer/round-0", 2),
                                                                                       ("late", 2)]
    assert "Study http" in (run / "report.html").read_text() and (run / "studies/http/legibility.png").is_file()
    assert "judge accuracy" in s.text() and "1.5 s per item" in s.text()

    # the same command with --items 3 extends the study: one more problem per checkpoint, nothing resampled
    s = Served([("3" if a == "2" else a) for a in args], toy_runs)
    more = judge_all(s, rater_cookie(s, "ann"))
    assert s.wait() == 0
    items2, js2 = stored(run, "http")
    assert len(more) == 2 and {i for i, _, _ in more}.isdisjoint(i for i, _, _ in done)
    assert items2[:4] == items and js2[:4] == js and len(js2) == 6


@pytest.mark.slow
@needs_web
def test_bad_study_input_is_one_line(toy_runs, capsys, monkeypatch):
    monkeypatch.setenv("ARENA_RUNS_DIR", str(toy_runs))
    base = ["study", "toy", "--game", TOY, "--web-port", "0"]
    cases = [(["--checkpoint", "writer/round-9"], "has no checkpoint writer/round-9"),
             (["--checkpoint", "checker/round-0"], "is of seat 'checker', but the study is of seat 'writer'"),
             (["--name", "nope", "--report-only"], "has no study named 'nope'"),
             (["--name", "junk", "--items-fn", "test_study:garbage_items"], "is not {problem_id"),
             (["--name", "checker", "--seat", "checker"], "no study hook for seat 'checker'"),
             (["--items", "0"], "--items and --per-item must be at least 1")]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err  # progress lines ("sampling ..."), then the one error line
        assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]]
        assert message in err and "Traceback" not in err
    store = RunStore(toy_runs / "toy")
    StudyTables(store).register("seeded", "sums-v0", {"seed": 5, "seat": "writer", "items": 2,
                                                      "checkpoints": {}, "token": "t"})
    store.close()
    assert main(base + ["--name", "seeded", "--seed", "6"]) == 2
    assert "sampled with --seed 5" in capsys.readouterr().err


def garbage_items(agent, n, *, seed, settings):
    return [{"problem_id": 3, "prompt_text": "x", "correct": "yes"}]


def test_prover_verifier_hook_writes_helpful_solutions_on_held_out_problems(tmp_path):
    from arena.registry import spec
    from arena.study.items import checkpoint_builder, resolve_checkpoints
    from games.prover_verifier import rules
    from games.prover_verifier.study import helpful_items

    trainer = new_run(TrainConfig(game="prover-verifier-v1", recipe="scripted", rounds=2, episodes=4,
                                  concurrency=4, run="pvg"), tmp_path)
    trainer.run(trainer.restore())
    ckpts = resolve_checkpoints(tmp_path / "pvg", "prover", [], tmp_path)
    assert list(ckpts) == ["prover/round-0", "prover/round-1"]
    build = checkpoint_builder(spec("prover-verifier-v1"), "prover", tmp_path, None, {})
    per = [helpful_items(build(p), 5, seed=3, settings={}) for p in ckpts.values()]
    assert [it["problem_id"] for it in per[0]] == [it["problem_id"] for it in per[1]]
    assert len(per[0]) == 5 and len({it["problem_id"] for it in per[0]}) == 5
    for it in per[0]:
        problem = rules.parse_question(it["problem_id"])
        assert rules.problem_half(problem) == "verifier"
        assert it["prompt_text"].startswith(f"Question: {problem.question}\nSolution:\n")
        assert it["correct"] is True and "Role" not in it["prompt_text"]  # the role-play bot is honest when helpful
    assert [it["problem_id"] for it in helpful_items(build(ckpts["prover/round-0"]), 3, seed=3, settings={})] == \
        [it["problem_id"] for it in per[0][:3]]  # the first n of one sequence


def test_report_section_escapes_what_the_study_stored(tmp_path):
    from arena.report.study import study_sections

    assert study_sections(tmp_path) == []
    (tmp_path / "studies" / "s").mkdir(parents=True)
    (tmp_path / "studies" / "s" / "study.json").write_text(json.dumps(
        {"seat": "<b>x</b>", "items": 1, "judgements": 1, "raters": 1, "time_limit": 45,
         "checkpoints": [{"label": "<script>alert(1)</script>", "items": 1, "items_correct": 1, "judged": 1,
                          "timed_out": 0, "accuracy": 1.0, "median_seconds": 3.5, "legibility": 0.4}]}))
    html = "".join(study_sections(tmp_path))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "3.5" in html and "0.40" in html and "45 s per item" in html
    (tmp_path / "studies" / "s" / "study.json").write_text("[]")
    assert "Cannot read s/study.json" in "".join(study_sections(tmp_path))


@pytest.mark.slow
@needs_web
def test_play_a_multi_turn_game_in_the_web_seat(tmp_path):
    s = Served(["play", "study_toy:ChatEnv", "--seat", "player_1=human:web",
                "--seat", "player_2=scripted:constant?value=hello", "-n", "1", "--web-port", "0"], tmp_path)
    cookie = rater_cookie(s, "pat")
    first = call(s, "/api/next", cookie=cookie)["item"]
    assert first["kind"] == "text" and first["history"] == [] and first["title"] == "you are player_1 · episode 0"
    call(s, "/api/answer", {"id": first["id"], "value": "a <b>long</b> opening"}, cookie=cookie)
    while (got := call(s, "/api/next", cookie=cookie))["state"] != "item":
        time.sleep(0.2)
    second = got["item"]
    assert second["history"] == [["game", first["prompt"]], ["player_1", "a <b>long</b> opening"]]
    assert "The other player said: hello" in second["prompt"]
    call(s, "/api/answer", {"id": second["id"], "value": "bye"}, cookie=cookie)
    while not (notes := call(s, "/api/next", cookie=cookie)["notes"]) and s.proc.poll() is None:
        time.sleep(0.2)
    assert s.wait() == 0, s.log
    assert notes == ["episode 0 is over: player_1 scored +1"]
    assert "a <b>long</b> opening" in s.text() and "player_1=+1.000" in s.text()


def test_the_commands_in_the_docs_parse():
    import shlex

    from arena.cli import build_parser

    doc = (Path(__file__).resolve().parents[1] / "docs" / "human-raters.md").read_text()
    import re

    lines = [line for line in doc.splitlines() if line.startswith("arena ")]
    lines += [c for c in re.findall(r"`(arena (?:study|play) [^`]+)`", doc) if "<" not in c]  # inline ones
    assert len(lines) >= 4
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line, comments=True)[1:])  # an unknown flag exits (fails)
        assert args.command in ("study", "play")


def test_the_plot_draws_one_line_per_run_and_the_automated_measure(tmp_path):
    from arena.study.analysis import CheckpointResult
    from arena.study.report import series_of, write_outputs

    assert series_of("prover/round-2", None) == ("prover", 2)
    assert series_of("cgc:prover/round-3", None) == ("cgc:prover", 3)
    assert series_of("baseline", 4) == ("baseline", 4)
    nan = math.nan
    rows = [CheckpointResult("prover/round-0", 8, 6, 8, 0, 0.75, 0.4, 0.9, 12.0, 9.0, 15.0, 2, 0.6, 0.5, 0.7),
            CheckpointResult("prover/round-1", 8, 7, 7, 1, 0.86, 0.5, 0.97, 9.5, 7.0, 14.0, 2),
            CheckpointResult("baseline", 8, 7, 1, 0, 1.0, 0.21, 1.0, 20.0, nan, nan, 1)]
    paths = write_outputs(tmp_path / "s", {"name": "s"}, rows, {"baseline": 1})
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(paths["json"].read_text())
    assert [r["label"] for r in doc["checkpoints"]] == ["prover/round-0", "prover/round-1", "baseline"]
    assert doc["checkpoints"][2]["seconds_lower"] is None and doc["checkpoints"][0]["legibility"] == 0.6
    empty = [CheckpointResult("prover/round-0", 8, 6, 0, 0, nan, nan, nan, nan, nan, nan, 0)]
    assert "png" not in write_outputs(tmp_path / "s", {"name": "s"}, empty, {})
    assert not (tmp_path / "s" / "legibility.png").exists()  # no stale plot of other numbers

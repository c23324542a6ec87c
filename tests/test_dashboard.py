from rich.console import Console

from arena.dashboard import Snapshot, plain_line, render


def summary(k, reward, acc):
    return {"round": k, "episodes": 64, "mean_reward": {"prover": reward, "verifier": -reward},
            "metrics": {"helpful_accuracy": acc, "other": 9.0}, "headline": ["helpful_accuracy"],
            "losses": {"verifier": {"loss": 0.25 + k}}, "episodes_per_s": 12.5, "tokens_per_s": 3000.0,
            "wall_s": 10.0, "elapsed_s": 10.0 * (k + 1), "eta_s": 10.0 * (2 - k)}


def snapshot_after(events):
    snap = Snapshot()
    for e in events:
        snap.apply(e)
    return snap


def capture(renderable):
    console = Console(record=True, width=220, color_system=None)
    console.print(renderable)
    return console.export_text()


START = {"type": "run_start", "run": "demo", "game": "prover-verifier-v1", "rounds": 3, "episodes": 64,
         "seats": ["prover", "verifier"], "history": []}


def test_render_shows_one_row_per_finished_round_and_progress():
    snap = snapshot_after([START, {"type": "round_start", "round": 0, "episodes": 64},
                           {"type": "round_end", "round": 0, "summary": summary(0, 0.5, 0.75)},
                           {"type": "round_start", "round": 1, "episodes": 64},
                           {"type": "episode", "round": 1, "done": 16, "total": 64}])
    text = capture(render(snap))
    assert "demo · prover-verifier-v1" in text
    for header in ("R:prover", "R:verifier", "helpful_accuracy", "verifier.loss", "eps/s", "tok/s", "ETA"):
        assert header in text
    row = next(line for line in text.splitlines() if line.split("│")[1:2] == ["     0 "])
    assert "0.5" in row and "-0.5" in row and "0.75" in row and "0.25" in row and "0:10" in row and "0:20" in row
    assert "round 1 of 0-2" in text and "16/64 episodes" in text  # 0-based, like the table and checkpoints
    assert "other" not in text  # only headline metrics get a column


def test_finished_view_and_history_from_resume():
    history = [summary(0, 0.1, 0.5), summary(1, 0.2, 0.6)]
    snap = snapshot_after([{**START, "history": history},
                           {"type": "round_end", "round": 2, "summary": summary(2, 0.3, 0.7)},
                           {"type": "run_end"}])
    assert [r["round"] for r in snap.rows] == [0, 1, 2] and snap.finished
    text = capture(render(snap))
    assert "finished 3 rounds" in text and "0.7" in text


def test_plain_line_has_the_round_figures():
    line = plain_line(summary(1, 0.5, 0.75))
    assert line.startswith("round 1 episodes=64 R:prover=0.5 R:verifier=-0.5 helpful_accuracy=0.75")
    assert "verifier.loss=1.25" in line and "eps/s=12.5" in line and "tok/s=3000" in line


def test_live_losses_limit_the_learner_columns():
    snap = snapshot_after([{**START, "live_losses": ["kept"]},
                           {"type": "round_end", "round": 0,
                            "summary": {**summary(0, 0.5, 0.75), "losses": {"policy": {"kept": 0.5, "noise": 1.0}}}}])
    text = capture(render(snap))
    assert "policy.kept" in text and "policy.noise" not in text
    # a learner that reports none of the listed metrics (another recipe's) shows all of its own
    snap.apply({"type": "round_end", "round": 1,
                "summary": {**summary(1, 0.5, 0.75), "losses": {"verifier": {"check_rate": 0.5}}}})
    assert "verifier.check_rate" in capture(render(snap))


def capture_at(renderable, width):
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_narrow_terminal_gets_one_row_per_figure_and_the_latest_rounds():
    many = {"metrics": {f"metric_{i}": 0.5 for i in range(8)}, "headline": [f"metric_{i}" for i in range(8)]}
    events = [START] + [{"type": "round_end", "round": k, "summary": {**summary(k, 0.1 * k, 0.5), **many}}
                        for k in range(3)]
    snap = snapshot_after(events)
    wide = capture_at(render(snap, 400), 400)
    assert any(line.split("│")[1:2] == ["     0 "] for line in wide.splitlines())  # one row per round
    text = capture_at(render(snap, 80), 80)
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    assert {"R:prover", "metric_7", "verifier.loss", "tok/s", "ETA"} <= set(rows)
    assert rows["verifier.loss"].split("│")[2:5] == [" 0.25 ", " 1.25 ", " 2.25 "]  # rounds 0, 1, 2 in order

    snap = snapshot_after([START] + [{"type": "round_end", "round": k, "summary": {**summary(k, 0.0, 0.5), **many}}
                                     for k in range(40)])
    text = capture_at(render(snap, 80), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    header = next(line for line in text.splitlines() if line.startswith("┃ round"))
    shown = [int(c) for c in header.strip("┃ ").split("┃")[1:]]
    assert shown == list(range(40 - len(shown), 40)) and len(shown) >= 3  # the latest rounds that fit
    assert f"last {len(shown)} of 40 rounds" in text


def test_before_the_run_starts_the_view_says_so():
    assert "waiting for the run to start" in capture(render(Snapshot()))


def test_learner_progress_shows_as_the_phase_line():
    snap = snapshot_after([START, {"type": "round_start", "round": 0, "episodes": 64},
                           {"type": "episode", "round": 0, "done": 64, "total": 64},
                           {"type": "learner_start", "round": 0, "seat": "prover"},
                           {"type": "learner_progress", "round": 0, "seat": "prover", "message": "RL step 3/12"}])
    lines = capture(render(snap)).splitlines()
    assert any("round 0 of 0-2" in line and "64/64 episodes" in line for line in lines)
    assert "training prover: RL step 3/12" in lines


def test_the_first_round_shows_its_clock_and_later_rounds_an_eta():
    from arena.dashboard import Snapshot, round_clock

    snap = Snapshot()
    snap.apply({"type": "run_start", "run": "r", "game": "g", "rounds": 3, "episodes": 4, "time": 100.0})
    snap.apply({"type": "round_start", "round": 0, "time": 100.0})
    snap.apply({"type": "episode", "round": 0, "done": 2, "total": 4, "time": 165.0})
    assert round_clock(snap) == "1:05 in this round · ETA after the first round"
    snap.apply({"type": "round_end", "round": 0, "summary": {"round": 0, "wall_s": 120.0}, "time": 220.0})
    snap.apply({"type": "round_start", "round": 1, "time": 220.0})
    snap.apply({"type": "episode", "round": 1, "done": 1, "total": 4, "time": 250.0})
    assert round_clock(snap) == "0:30 in this round · ETA 3:30"  # 2 rounds x 120 s left, less 30 s

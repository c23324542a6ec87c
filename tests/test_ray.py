"""Ray rollouts on a real local cluster (2 CPUs, 2 actors) give the in-process run's transcripts.

One module-scoped `ray.init(num_cpus=2)`; each run below is played in process and with
`workers=2` from the same seed, and the stored episodes are compared: actions, texts and token
ids exactly, float fields (log-probs, scores, rewards) within 1e-5.
"""
from __future__ import annotations

import math

import pytest

from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from games.prover_verifier.pretraining import ASSETS

try:
    import ray  # the `test` extra installs it; the cluster tests are skipped only where Ray is absent
except ImportError:
    ray = None


def on_cluster(test):
    """A test on the module's cluster: slow (a cluster start and five runs take ~1.5 min on a shared
    2-core CPU), and skipped where Ray is not installed."""
    test = pytest.mark.slow(test)
    return pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'alignment-arena[ray]')")(test)


SMALL = {"verifier_samples": "4", "verifier_problems": "8", "verifier_epochs": "1", "prover_steps": "1",
         "prover_problems": "2", "bon_problems": "4", "bon_samples": "8", "pool_size": "200"}


@pytest.fixture(scope="module")
def cluster():
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def train(base, workers: int, **kw):
    """Train a run; return (stored episodes as JSON, the trainer's agents' checksums before and
    after, the actors' reports at the end or None)."""
    from arena.rollout.replica import weight_checksums

    cfg = TrainConfig(game="prover-verifier-v1", rounds=2, concurrency=8, seed=3, run=f"w{workers}",
                      workers=workers, **kw)
    trainer = new_run(cfg, base / f"w{workers}")
    seats = trainer.setup.seats
    before = {s: weight_checksums(v.agent) for s, v in seats.items()}
    try:
        trainer.run(trainer.restore())
        after = {s: weight_checksums(v.agent) for s, v in seats.items()}
        reports = trainer.rollouts.reports() if workers else None
        episodes = [ep.to_json() for ep in trainer.store.episodes()]
    finally:
        trainer.close()
    return episodes, before, after, reports, seats


def assert_same(a, b, where="episodes"):
    """Equal, except floats within 1e-5."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), (where, a, b)
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-5), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), (where, a, b)
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_without_ray_workers_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import sys

    from arena import api
    from arena.types import ArenaError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as where it is not installed
    with pytest.raises(ArenaError, match=r"^--workers needs Ray: pip install 'alignment-arena\[ray\]'$"):
        api.train("prover-verifier-v1", rounds=1, episodes=2, recipe="scripted", runs_dir=tmp_path, workers=2)
    assert list(tmp_path.iterdir()) == []  # refused before the run was made: nothing to clean up or resume


@on_cluster
def test_scripted_run_stores_the_in_process_transcripts(cluster, tmp_path):
    from arena import api
    from arena.store import RunStore

    runs = {}
    for workers in (0, 2):
        summaries = api.train("prover-verifier-v1", rounds=2, episodes=24, concurrency=8, seed=3, recipe="scripted",
                              run=f"w{workers}", runs_dir=tmp_path, workers=workers)
        store = RunStore(tmp_path / f"w{workers}")
        runs[workers] = summaries, [ep.to_json() for ep in store.episodes()]
        store.close()
    (local_summaries, local), (summaries, remote) = runs[0], runs[2]
    assert len(local) == 2 * 24
    # the spot-check learner raised the verifier's check rate after round 0 (default 0.3), so round 1
    # was played with a changed bot, which the actors must have been sent
    assert local_summaries[0]["losses"]["verifier"]["check_rate"] > 0.3
    assert summaries[0]["losses"] == local_summaries[0]["losses"]
    assert_same(local, remote)


@on_cluster
@pytest.mark.skipif(not (ASSETS / "prover").is_dir(), reason="tiny bases not shipped")
def test_tiny_llm_run_with_learners_matches_and_actors_hold_new_weights(cluster, tmp_path):
    local, before, after_local, _, _ = train(tmp_path, 0, episodes=8, params=dict(SMALL))
    remote, _, after, reports, _ = train(tmp_path, 2, episodes=8, params=dict(SMALL))
    texts = [s["action"] for e in local for s in e["transcript"] if s["seat"] == "prover"]
    assert texts and all(isinstance(t, str) for t in texts)
    assert_same(local, remote)
    # both learners changed their seat's weights, the same way in both runs...
    for seat in ("prover", "verifier"):
        assert after[seat] != before[seat] and after[seat] == after_local[seat], seat
    # ...and after the last round every actor holds them
    assert [r["weights"] for r in reports] == [after, after]
    # the learners' own generation (RL rollouts, verifier samples) went to both actors
    assert all(r["rows"].get("prover", 0) > 0 for r in reports), reports


@on_cluster
def test_bench_rollouts_compares_backends_on_the_same_seeds(cluster, tmp_path):
    import json

    from bench.command import main

    out = tmp_path / "bench.json"
    assert main(["--rollouts", "--episodes", "6", "--concurrency", "3", "--max-new-tokens", "4", "--repeats", "2",
                 "--ray-workers", "1,2", "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["in-process", "ray x1", "ray x2"]
    assert all(r["same"] for r in rows)
    for r in rows[1:]:  # the nudged weights were pushed before every round: the whole tiny model
        assert r["startup_s"] > 0 and all(x["pushed_mb"] > 1 for x in r["rounds"]), r


@on_cluster
def test_more_workers_than_the_cluster_has_cpus_is_one_line(cluster):
    from arena.registry import spec
    from arena.rollout import EnvFactory
    from arena.rollout.ray import RayRollouts
    from arena.types import ArenaError

    with pytest.raises(ArenaError, match=r"^--workers 3: the Ray cluster has 2 CPUs \(one per worker\)$"):
        RayRollouts(EnvFactory(spec("prover-verifier-v1")), 3)
    assert ray.is_initialized()  # a cluster it joined is left running


@on_cluster
def test_an_agent_that_cannot_travel_is_one_line_naming_its_seat(cluster):
    import threading

    from arena import api
    from arena.registry import spec
    from arena.rollout import EnvFactory
    from arena.rollout.ray import RayRollouts
    from arena.types import ArenaError

    seats = {"prover": api.agent("prover-verifier-v1", "prover", "scripted:role-play"),
             "verifier": api.agent("prover-verifier-v1", "verifier", "scripted:spot-check")}
    seats["verifier"].lock = threading.Lock()  # as a terminal or an engine would: it cannot be pickled
    rollouts = RayRollouts(EnvFactory(spec("prover-verifier-v1")), 1)
    try:
        with pytest.raises(ArenaError, match=r"^--workers: seat 'verifier''s agent \(SpotCheckVerifier\) cannot "
                                             r"be sent to Ray actors: .*lock"):
            rollouts.play(seats, 2, concurrency=2, seed=0, round=0)
    finally:
        rollouts.close()

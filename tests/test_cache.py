"""`arena.cache.build_once`: shared directories under `<runs>/_cache` are built once, whole."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from arena.cache import build_once, cache_dir
from arena.types import ArenaError


def slow_build(tmp: Path) -> None:
    tmp.mkdir(parents=True)
    with open(tmp.parent / "builds.log", "a") as f:  # one line per build actually run
        f.write("built\n")
    time.sleep(0.5)
    (tmp / "config.json").write_text("{}")


def race(out: str) -> None:
    build_once(Path(out), slow_build)


def test_two_processes_asking_at_once_build_it_once(tmp_path):
    out = cache_dir(tmp_path, "game", "thing")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=race, args=(str(out),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert (out / "config.json").is_file()
    assert (out.parent / "builds.log").read_text() == "built\n"  # the second waited, then found it built
    assert not out.with_name("thing.tmp").exists()


def test_a_failed_or_incomplete_build_leaves_nothing_that_looks_done(tmp_path):
    out = cache_dir(tmp_path, "game", "thing")

    def boom(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        (tmp / "half").write_text("x")
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError, match="killed halfway"):
        build_once(out, boom)
    assert not out.exists() and not out.with_name("thing.tmp").exists()
    with pytest.raises(ArenaError, match="wrote no config.json"):
        build_once(out, lambda tmp: tmp.mkdir(parents=True))
    assert not out.exists()
    # a leftover .tmp from a killed build is cleared, and a finished directory is reused as is
    out.with_name("thing.tmp").mkdir()
    (out.with_name("thing.tmp") / "stale").write_text("x")
    build_once(out, slow_build)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    build_once(out, lambda tmp: pytest.fail("rebuilt a finished directory"))


def test_under_torchrun_a_missing_directory_is_one_line_and_a_built_one_is_used(tmp_path, monkeypatch):
    import arena.cache as cache

    out = cache_dir(tmp_path, "game", "thing")
    monkeypatch.setattr(cache, "_world", lambda: 2)
    with pytest.raises(ArenaError, match="is not built yet, and it is built by one process: run the same command "
                                         "once without torchrun"):
        build_once(out, slow_build)
    assert not out.exists() and not out.with_name("thing.tmp").exists()
    monkeypatch.setattr(cache, "_world", lambda: 1)
    build_once(out, slow_build)
    monkeypatch.setattr(cache, "_world", lambda: 2)
    assert build_once(out, lambda tmp: pytest.fail("rebuilt under torchrun")) == out


def test_build_keyed_builds_once_per_key_and_labels_what_it_built(tmp_path, capsys):
    import json

    from arena.cache import build_keyed, keyed_dir

    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp.name)
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text("{}")

    a = build_keyed(tmp_path, "game", "rm", {"seed": 1, "steps": 10}, build, what="the reward model")
    assert a == keyed_dir(tmp_path, "game", "rm", {"steps": 10, "seed": 1})  # the key's order does not matter
    assert a.parent == cache_dir(tmp_path, "game", "x").parent and a.name.startswith("rm-")
    assert json.loads((a / "cache_key.json").read_text()) == {"seed": 1, "steps": 10}
    assert "building the reward model once into" in capsys.readouterr().err
    assert build_keyed(tmp_path, "game", "rm", {"steps": 10, "seed": 1}, build) == a and len(calls) == 1
    b = build_keyed(tmp_path, "game", "rm", {"seed": 2, "steps": 10}, build)
    assert b != a and len(calls) == 2
    # the name is a hash of the key alone: caches built before this helper keep their names
    assert keyed_dir(tmp_path, "rest", "bc", {"seed": 0}).name == "bc-" + __import__("hashlib").blake2b(
        b'{"seed": 0}', digest_size=6).hexdigest()

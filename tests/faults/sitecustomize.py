"""Deterministic faults for the reliability tests (test-only; never imported by the product).

Put this directory on PYTHONPATH and set, in the environment of an `arena` process:

    ARENA_TEST_KILL=<point>:<n>[:after]    SIGKILL the process at the n-th call of <point>,
                                           before the real call (default) or right after it
    ARENA_TEST_FAULT=<point>:<n>:<error>   raise <error> at the n-th call instead (the process
                                           lives on): enospc (OSError ENOSPC), dbfull (sqlite3
                                           "database or disk is full"), sigint (KeyboardInterrupt),
                                           or pause: create $ARENA_TEST_PAUSED, then wait (up to a
                                           minute) until $ARENA_TEST_RELEASE exists, and go on

Points are the engine's own functions, wrapped where the engine looks them up:

    build_setup        arena.selfplay.build_setup           (agents and learners built)
    set_marker         arena.store.RunStore.set             (the run_id marker written)
    save_config        arena.selfplay.Trainer.save_config   (config.json)
    write_json         os.replace in arena.store            (config.json: between its tmp file and the rename)
    ckpt_rename        os.replace in arena.checkpoints      (a checkpoint: between round-<k>.tmp and the rename)
    publish            arena.selfplay.publish_new_run       (the setup dir renamed to the run's name)
    start_round        arena.store.RunStore.start_round
    add_episode        arena.store.RunStore.add_episode
    write_checkpoint   arena.selfplay.write_checkpoint      (one per seat and round)
    complete_round     arena.store.RunStore.complete_round  (the round's commit)
    append_event       arena.selfplay.append_event          (one per event line)
    restore            arena.selfplay.Trainer.restore
    replay_events      arena.selfplay.Trainer.replay_missing_events

`write_json:1:after` kills between writing config.json.tmp and renaming it, for instance,
and `complete_round:2:after` between round 1's commit and its `round_end` event.
"""
import importlib.abc
import importlib.machinery
import os
import signal
import sqlite3
import sys

_SPEC = os.environ.get("ARENA_TEST_KILL") or os.environ.get("ARENA_TEST_FAULT")


def _parse():
    parts = _SPEC.split(":")
    point, n = parts[0], int(parts[1])
    if os.environ.get("ARENA_TEST_KILL"):
        return point, n, ("kill-after" if parts[2:] == ["after"] else "kill")
    return point, n, parts[2]


def _fail(how):
    if how.startswith("kill"):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "enospc":
        raise OSError(28, "No space left on device", "events.jsonl")
    if how == "dbfull":
        raise sqlite3.OperationalError("database or disk is full")
    if how == "sigint":
        raise KeyboardInterrupt
    if how == "pause":
        import pathlib
        import time

        pathlib.Path(os.environ["ARENA_TEST_PAUSED"]).write_text(str(os.getpid()))
        release = pathlib.Path(os.environ["ARENA_TEST_RELEASE"])
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return
    raise SystemExit(f"unknown fault {how!r}")


def _wrap(fn, how, n):
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n and how != "kill-after":
            _fail(how)
        out = fn(*args, **kwargs)
        if calls[0] == n and how == "kill-after":
            _fail(how)
        return out

    wrapper.__wrapped__ = fn
    return wrapper


# point -> (module, owner: class name or None for a module attribute, attribute)
POINTS = {
    "build_setup": ("arena.selfplay", None, "build_setup"),
    "set_marker": ("arena.store", "RunStore", "set"),
    "save_config": ("arena.selfplay", "Trainer", "save_config"),
    "write_json": ("arena.store", None, "os.replace"),
    "ckpt_rename": ("arena.checkpoints", None, "os.replace"),
    "publish": ("arena.selfplay", None, "publish_new_run"),
    "start_round": ("arena.store", "RunStore", "start_round"),
    "add_episode": ("arena.store", "RunStore", "add_episode"),
    "write_checkpoint": ("arena.selfplay", None, "write_checkpoint"),
    "complete_round": ("arena.store", "RunStore", "complete_round"),
    "append_event": ("arena.selfplay", None, "append_event"),
    "restore": ("arena.selfplay", "Trainer", "restore"),
    "replay_events": ("arena.selfplay", "Trainer", "replay_missing_events"),
}


def _patch(module):
    point, n, how = _parse()
    mod_name, owner, attr = POINTS[point]
    if module.__name__ != mod_name:
        return
    if attr == "os.replace":  # only this module's renames: its `os` with `replace` wrapped
        replace = _wrap(os.replace, how, n)

        class _Os:
            def __getattr__(self, name):
                return replace if name == "replace" else getattr(os, name)

        module.os = _Os()
        return
    target = getattr(module, owner) if owner else module
    setattr(target, attr, _wrap(getattr(target, attr), how, n))


class _Finder(importlib.abc.MetaPathFinder):
    """Patch the point's module right after it is first executed."""

    def find_spec(self, name, path, target=None):
        if name != POINTS[_parse()[0]][0]:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module):
            real_exec(module)
            _patch(module)

        loader.exec_module = exec_module
        return spec


if _SPEC:
    sys.meta_path.insert(0, _Finder())

"""Directories built once and shared by runs: `<runs>/_cache/<game>/<name>` (a pretrained base, a
fitted reward model, a behaviour-cloned policy).

`build_once` is the one rule for them:
- built aside (`<name>.tmp`) and renamed, so a kill never leaves a half-built directory that
  looks done;
- under a file lock, so two runs that need the same directory at once (seeds started side by
  side) build it once: the second waits, then finds it built;
- not under several processes (torchrun): a build trains a model, and training there is a
  collective of every process, so a missing directory is a one-line error that says to build it
  with one process first (a directory that exists is used as is).

`build_keyed` names the directory by what it is built from (`<kind>-<hash of the key>`, the key
written beside it as `cache_key.json`): every game's cached base, reward model or cloned policy goes
through it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from arena.types import ArenaError


def cache_dir(runs_dir: Path | str, game: str, name: str) -> Path:
    """Where a game's shared directory `name` lives."""
    return Path(runs_dir) / "_cache" / game / name


def build_once(out: Path, build: Callable[[Path], None], *, done: str = "config.json") -> Path:
    """`out`, made by `build(tmp)` unless `out/done` exists already (see the module docstring)."""
    out = Path(out)
    if _world() > 1 and not (out / done).exists():
        # Building trains a model, and a learner's `fit` under torchrun is a collective of every
        # process: one process cannot build alone while the others wait (measured: a hang), and
        # every process building at once leaves weights on rank 0 only (transformers saves there).
        raise ArenaError(f"{out} is not built yet, and it is built by one process: run the same command once "
                         "without torchrun (e.g. --rounds 1 --run scratch) to build it, then launch again")
    _build_locked(out, build, done)
    return out


def keyed_dir(runs_dir: Path | str, game: str, kind: str, key: Mapping[str, Any]) -> Path:
    """Where `build_keyed` keeps the `kind` directory built from `key` (JSON-able settings)."""
    digest = hashlib.blake2b(json.dumps(dict(key), sort_keys=True).encode(), digest_size=6).hexdigest()
    return cache_dir(runs_dir, game, f"{kind}-{digest}")


def build_keyed(runs_dir: Path | str, game: str, kind: str, key: Mapping[str, Any], build: Callable[[Path], None],
                *, done: str = "config.json", what: str = "") -> Path:
    """The `kind` directory built from `key`: `build(tmp)` once per key (`build_once`), the key saved
    beside what it built as `cache_key.json`; `what` (e.g. "the reward model") is said on stderr
    before a build, which takes minutes."""
    out = keyed_dir(runs_dir, game, kind, key)

    def build_and_label(tmp: Path) -> None:
        if what:
            print(f"building {what} once into {out} ...", file=sys.stderr, flush=True)
        build(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "cache_key.json").write_text(json.dumps(dict(key), indent=2, sort_keys=True))

    return build_once(out, build_and_label, done=done)


def _build_locked(out: Path, build: Callable[[Path], None], done: str) -> None:
    if (out / done).exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or by the OS if we die
        if (out / done).exists():  # another run built it while we waited
            return
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not (tmp / done).exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArenaError(f"building {out} wrote no {done}")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

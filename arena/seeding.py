"""Explicit seeds: every RNG in the engine is derived from the run seed and a path.

No global RNG is ever seeded. `derive(seed, "round", 3, "prover")` gives the same
63-bit integer on every machine and every Python (it hashes, it does not use `hash`).
"""
from __future__ import annotations

import hashlib


def derive(seed: int, *path: object) -> int:
    h = hashlib.blake2b(repr((int(seed), *map(str, path))).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


def stable_hash(*parts: object) -> int:
    """A seed from arbitrary text, e.g. an observation (for K-independent bots)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1

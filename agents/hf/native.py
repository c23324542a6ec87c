"""C of the project's own for a CPU decode step (`agents.hf.cpu_attention`, `agents.hf.decode_step`), compiled on
first use in a process.

`build(source, check)` writes `source` (the project's own text, never anything read from disk) into a temporary
directory, compiles it with the system's C compiler (`$CC`, else `cc`, `gcc` or `clang`; ~0.3 s), loads it with
ctypes and returns the library for which `check(library)` holds -- the caller's comparison against plain torch on
a small case -- trying `FLAGS` in order; None without a compiler or where no flags give a library that passes.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import tempfile
from typing import Callable

FLAGS = (["-O3", "-march=native", "-fopenmp", "-fno-math-errno"], ["-O3", "-march=native", "-fno-math-errno"],
         ["-O3", "-fno-math-errno"], ["-O2"])
"""Compiler flags, tried in order: this CPU's vector units and OpenMP (which, loaded after torch, is torch's own
runtime, so its threads are torch's), then without what a compiler lacks (one thread, generic vectors)."""

EXP_NONPOS = r"""
#include <stdint.h>
#include <string.h>

/* Cephes' expf for T = float or a vector of floats: n = x / ln 2 rounded, r = x - n ln 2, and e = exp(r) by its
   polynomial (exp(x) = e 2^n); the one home of its constants and order of operations. */
#define EXP_CORE(T, x, n, r, p, e) \
    T n = (x) * 1.44269504088896341f; \
    n = (n + 12582912.0f) - 12582912.0f;  /* round to nearest */ \
    T r = (x) - n * 0.693359375f; \
    r = r + n * 2.12194440e-4f; \
    T p = r * 1.9875691500e-4f + 1.3981999507e-3f; \
    p = p * r + 8.3334519073e-3f; \
    p = p * r + 4.1665795894e-2f; \
    p = p * r + 1.6666665459e-1f; \
    p = p * r + 5.0000001201e-1f; \
    T e = p * r * r + r + 1.0f;

/* exp(x) for x <= 0, 0 below -87, in a form the compiler vectorises. */
static inline float exp_nonpos(float x) {
    EXP_CORE(float, x, n, r, p, e)
    int32_t bits = ((int32_t)(x < -87.0f ? 0.0f : n) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : e * scale;
}
"""
"""C both sources start with: the softmax's and the SiLU's exp."""


def compiler() -> list[str] | None:
    """The C compiler's command: `$CC`, else the first of cc, gcc, clang on the PATH; None without one."""
    return shlex.split(os.environ.get("CC", "")) or \
        next(([c] for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def build(source: str, check: Callable[[ctypes.CDLL], bool]) -> ctypes.CDLL | None:
    """`source` compiled and loaded with the first of `FLAGS` that gives a library `check` accepts, else None."""
    cc = compiler()
    if not cc:
        return None
    with tempfile.TemporaryDirectory(prefix="arena-native-") as tmp:
        src = os.path.join(tmp, "native.c")
        with open(src, "w") as f:
            f.write(source)
        for i, flags in enumerate(FLAGS):
            path = os.path.join(tmp, f"native{i}.so")
            try:
                done = subprocess.run([*cc, *flags, "-shared", "-fPIC", src, "-o", path, "-lm"],
                                      capture_output=True, timeout=120)
                lib = ctypes.CDLL(path) if done.returncode == 0 else None  # loaded: the file can go
            except (OSError, subprocess.SubprocessError):
                lib = None
            if lib is not None and check(lib):
                return lib
    return None

"""Keep freed CPU memory in the process instead of handing it back to the kernel.

The generator allocates and frees tensors of hundreds of MiB at every layer (the 2x-upsampled
activations of the alias-free layers). glibc serves such blocks with ``mmap`` and returns them
with ``munmap`` on free, so every layer pays the kernel's page faults and page zeroing again:
on the project's 2-core machine that was half the time of the filtered leaky ReLU and about a
quarter of a whole forward pass (``benchmarks/generator_speed.py --allocator default``).

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve large blocks from the heap and not to
trim it, so the pages of a freed activation are reused by the next layer. The cost: the peak
resident memory stays reserved until the process ends (about 1.5x the default peak for the paper
config). It only affects this process, does nothing on a C library other than glibc, and is
switched off with ``UNICOAL_ALLOCATOR=default``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory"]

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and never trim it (glibc only; idempotent).

    Returns whether the setting is active. ``UNICOAL_ALLOCATOR=default`` leaves the C library's
    defaults alone.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("UNICOAL_ALLOCATOR", "").strip().lower() == "default":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The trim threshold is an int: 2 GiB - 1 is the largest, enough for any activation here.
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _applied

"""Memory habits of a server process: the C allocator's arenas and thresholds, and the collector.

The allocator (glibc): with its defaults a worker grew from 50 to 69 MiB resident serving big
pages and a 100 MB file (issue 16; /work/notes/mem-report.md): every thread of the executors may
get an arena of its own (up to eight per CPU), and each big block freed raises the size below
which blocks come from those arenas, where they stay once freed. Two arenas and a fixed
threshold keep it near 60 MiB.
"""

from __future__ import annotations

import ctypes
import gc
import os

# mallopt(3) parameters, from glibc's <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENAS = 2  # the main thread's and one for all the executors' threads
# Blocks from this size up are mapped for themselves and unmapped when freed (glibc's default
# starting value; setting it turns off the raising).
MMAP_THRESHOLD = 128 * 1024


def tune_allocator(arenas: int = ARENAS, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's malloc to at most ``arenas`` arenas and a fixed ``mmap_threshold`` (bytes).
    Call it before the process starts threads. False where the C library is not glibc (musl,
    macOS: their allocators have neither knob) or refused a value; nothing changes then."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError):  # the name is unknown to this C library
        return False
    libc = ctypes.CDLL(None)
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas)) and bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))


def freeze_startup_objects() -> int:
    """Move what start-up made (modules, the app, its routes; ~56,000 objects) out of the
    collector's sight (``gc.freeze``): a full collection then walks only what came after, and
    stops the loop for well under a millisecond instead of ~23 ms (issue 16, tail latency).
    Garbage of the start-up is collected first, so nothing collectable is frozen. Returns how
    many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

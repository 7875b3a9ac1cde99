"""Keep freed CPU tensor memory in the process, so training steps stop page-faulting (glibc only).

glibc's malloc hands every block over its mmap threshold straight back to the kernel on free,
and trims the heap's free top once it passes the trim threshold. A training step frees and
re-allocates the same activation and gradient buffers every batch, so each batch faults in fresh,
zeroed pages: on this project's 2-core CPU that was a quarter of a `small_cnn` step (66-72 ms vs
53-55 ms, see BENCHMARKS.md). Raising both thresholds, what `MALLOC_MMAP_THRESHOLD_` and
`MALLOC_TRIM_THRESHOLD_` do from the environment, keeps those blocks in the heap for reuse; it
is the effect that preloading jemalloc or tcmalloc gives CPU training. The cost is that freed
memory up to the trim threshold stays with the process instead of going back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling for it on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 256 * 2**20

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where this is not glibc."""
    global _done
    if _done is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):  # not Linux/glibc (macOS, Windows, musl without mallopt)
            _done = False
    return _done

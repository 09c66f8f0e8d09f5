"""Process-wide memory tuning for long-running backup work.

glibc raises its mmap threshold each time a large block is freed, after which the
multi-MiB chunk buffers a backup cycles through come from per-thread heaps that fragment
and keep growing. Pinning the threshold keeps every chunk-sized buffer in its own mapping
that is returned to the system when freed, so peak memory stays flat with data size.
Called by the entry points (CLI, server); a no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD = 256 * 1024


def pin_mmap_threshold() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False

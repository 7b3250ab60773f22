"""recsys_core.memory.MemoryReturner gives freed heap back after a burst (issue #16 item 7)."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from recsys_core.memory import MemoryReturner, resident_bytes

pytestmark = pytest.mark.skipif(not MemoryReturner("t", 1).available, reason="no glibc malloc_trim here")

MB = 1 << 20


async def test_a_burst_of_freed_heap_is_returned_and_a_small_one_left() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    returner = MemoryReturner("t", interval_s=3600, slack_bytes=32 * MB)
    returner.start()
    try:
        assert await returner.check() == 0  # nothing grew
        # A burst like a request flood: many small blocks (below the mmap threshold, so they
        # live in the heap), touched, then freed except one in 50, which pins the heap's top
        # as long-lived objects do: free() alone then keeps the pages.
        blocks = []
        for _ in range(200_000):
            p = libc.malloc(1000)
            ctypes.memset(p, 1, 1000)
            blocks.append(p)
        grown = resident_bytes()
        kept = blocks[::50]
        for i, p in enumerate(blocks):
            if i % 50:
                libc.free(p)
        assert resident_bytes() > grown - 50 * MB  # free() alone kept most of it
        returned = await returner.check()
        assert returned > 100 * MB, returned
        assert resident_bytes() < grown - 100 * MB
        assert await returner.check() == 0  # back within the slack: no second trim
        for p in kept:
            libc.free(p)
    finally:
        await returner.stop()

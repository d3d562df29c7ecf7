"""Process-wide housekeeping in hookgate/app.py."""

from __future__ import annotations

import os
import platform

import pytest

from hookgate import app


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_freed_in_the_heap_goes_back_to_the_os() -> None:
    # 100 KB blocks stay below glibc's mmap threshold, so they come from the heap. Freeing every other
    # one leaves holes between live blocks, which glibc keeps for reuse, as after start-up.
    blocks = [bytes(100_000) for _ in range(1500)]
    kept = blocks[::2]
    del blocks
    before = _rss_mb()
    assert app.release_freed_memory() is True
    assert before - _rss_mb() > 15, "the 75 MB freed above stayed in the process"
    del kept

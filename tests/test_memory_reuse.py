"""utils.reuse_freed_memory: training's temporaries come from freed heap, not fresh pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embedlab.utils import _glibc

PROBE = """
import resource, sys, torch
from embedlab.utils import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, _glibc, reuse_freed_memory
if sys.argv[1] == "on":
    reuse_freed_memory()
else:  # glibc's documented defaults, fixed: its dynamic threshold made this 9.8k-79k faults
    _glibc().mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    _glibc().mallopt(M_TRIM_THRESHOLD, 128 * 1024)
def update():  # three 8 MB temporaries alive at once, as a bag update's (tokens x dim) ones
    temporaries = [torch.empty(2_000_000).fill_(1.0) for _ in range(3)]
    del temporaries
update()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    update()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.strip())


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")
def test_repeated_temporaries_stop_faulting_in_fresh_pages():
    # 20 rounds of 24 MB: ~6,000 pages a round when glibc maps them afresh
    default, reused = page_faults("off"), page_faults("on")
    assert default > 20 * 2_000
    assert reused < default / 5

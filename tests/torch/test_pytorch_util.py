"""Host-memory setting: freed tensor memory is reused instead of faulted back in page by page."""

import subprocess
import sys

import pytest

# glibc's own default adapts to the allocations seen so far (1,000 to 80,000 faults for this
# probe in different processes), so the probe starts from a fixed setting instead: blocks over
# 128 KB mapped one by one, every freed byte handed back to the kernel. It then allocates and
# frees 8 x 4 MB of tensors ten times and prints the page faults this cost.
PROBE = """
import ctypes, resource, sys, torch
from rlkit.torch.pytorch_util import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_host_memory
libc = ctypes.CDLL("libc.so.6")
assert libc.mallopt(M_MMAP_THRESHOLD, 128 << 10) == libc.mallopt(M_TRIM_THRESHOLD, 0) == 1
if sys.argv[1] == "keep":
    assert keep_freed_host_memory()

def allocate_and_free():
    blocks = [torch.ones(1 << 20) for _ in range(8)]
    del blocks

allocate_and_free()
allocate_and_free()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    allocate_and_free()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def page_faults(mode: str) -> int:
    """In a fresh process: the setting is process-wide and must not leak into this one."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults():
    # 10 rounds x 32 MB handed back: about 80,000 fresh 4 KB pages
    assert page_faults("hand-back") > 40_000
    # at most one block's pages once (the heap growing past a block another thread placed)
    assert page_faults("keep") < 2_000

"""Host-memory setting: freed tensor memory is reused instead of faulted back in page by page."""

import subprocess
import sys

import pytest

# allocates and frees 8 x 4 MB of tensors ten times; prints the page faults this cost
PROBE = """
import resource, sys, torch
from rlkit.torch.pytorch_util import keep_freed_host_memory
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
    # 10 rounds x 32 MB: about 8,000 fresh 4 KB pages when glibc returns the memory each time
    assert page_faults("default") > 4000
    assert page_faults("keep") < 400

"""Host-memory setting: freed tensor memory is reused instead of faulted back in page by page."""

import ctypes
import json
import resource
import sys

import pytest
from conftest import run_child

BLOCK, BLOCKS, ROUNDS = 4 << 20, 32 << 20, 10
# the 8 blocks, but for one block's worth of unrelated chunks freed or reused meanwhile
MOST_BLOCKS = BLOCKS - BLOCK
BIG_BLOCK = 48 << 20

# glibc's own default adapts to the allocations seen so far (1,000 to 80,000 faults for this
# probe in different processes), so the probe starts from a fixed setting instead: blocks over
# 128 KB mapped one by one, every freed byte handed back to the kernel. It reads glibc's
# mallinfo2() (main and thread arenas summed) around the malloc and free of one 48 MB block,
# and before, while and after 8 x 4 MB of tensors are alive; then it allocates and frees those
# ten times and counts the page faults this cost.
#
# The fault counts depend on the kernel's transparent huge pages. With THP 'always' (or with
# GLIBC_TUNABLES=glibc.malloc.hugetlb=1 under 'madvise') a fresh 4 MB mapping is faulted in
# 2 MB pages wherever it covers an aligned 2 MB range: about 514 faults per block when the
# mapping is not 2 MB aligned (41,120 instead of 82,000 for the hand-back case, measured with
# the tunable), about 3 when the kernel aligns large anonymous mappings (Linux 6.7 and later),
# 500 times fewer and below the keep case's one-off block of 4 KB pages. Multi-size THP (16 to
# 64 KB folios, Linux 6.8 and later) divides the counts as well. So the probe turns THP off for
# itself (prctl PR_SET_THP_DISABLE, which covers the multi-size kind too): each fresh page is
# then one fault whatever the system setting, and the bounds below count pages of this
# kernel's size.
PROBE = """
import ctypes, json, resource, sys, torch
from rlkit.torch.pytorch_util import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_host_memory

PR_SET_THP_DISABLE = 41
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
thp_disabled = libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
assert libc.mallopt(M_MMAP_THRESHOLD, 128 << 10) == libc.mallopt(M_TRIM_THRESHOLD, 0) == 1
if sys.argv[1] == "keep":
    assert keep_freed_host_memory()

# one 48 MB block, the heap's new top with the keep setting: is that top kept once freed?
# (straight from malloc: a tensor's own small allocations land above it and pin it)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
heap_size = libc.mallinfo2().arena
libc.free(libc.malloc(int(sys.argv[2])))
heap_grown_after_big_free = libc.mallinfo2().arena - heap_size

def allocate_and_free():
    blocks = [torch.ones(1 << 20) for _ in range(8)]
    del blocks

allocate_and_free()
allocate_and_free()
before = libc.mallinfo2()
blocks = [torch.ones(1 << 20) for _ in range(8)]
alive = libc.mallinfo2()
del blocks
freed = libc.mallinfo2()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    allocate_and_free()
print(json.dumps({
    "thp_disabled": thp_disabled,
    "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start,
    "heap_in_use_while_alive": alive.uordblks - before.uordblks,
    "mapped_while_alive": alive.hblkhd - before.hblkhd,
    "mapped_after_free": freed.hblkhd - before.hblkhd,
    "free_in_heap_after_free": freed.fordblks,
    "heap_grown_after_big_free": heap_grown_after_big_free,
}))
"""


def has_mallinfo2() -> bool:
    """glibc 2.33 or later (mallinfo2 reports size_t fields; the old mallinfo wraps at 2 GB)."""
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


def probe(mode: str) -> dict:
    """In a fresh process: the setting is process-wide and must not leak into this one."""
    done = run_child(["-c", PROBE, mode, BIG_BLOCK])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    if not sys.platform.startswith("linux") or not has_mallinfo2():
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    return {mode: probe(mode) for mode in ("hand-back", "keep")}


def test_kept_memory_comes_from_the_heap_and_stays_there(probes):
    hand_back, keep = probes["hand-back"], probes["keep"]
    # the fixed setting: each block its own mapping, unmapped on free, nothing kept
    assert hand_back["mapped_while_alive"] >= MOST_BLOCKS
    assert hand_back["heap_in_use_while_alive"] < BLOCK
    assert hand_back["mapped_after_free"] < BLOCK
    assert hand_back["free_in_heap_after_free"] < MOST_BLOCKS
    assert hand_back["heap_grown_after_big_free"] < BLOCK
    # kept: the blocks are heap chunks, and once freed their bytes stay free in the heap
    assert keep["heap_in_use_while_alive"] >= MOST_BLOCKS
    assert keep["mapped_while_alive"] < BLOCK
    assert keep["free_in_heap_after_free"] >= MOST_BLOCKS
    # and a freed heap top is not trimmed (a trim threshold of 0 would hand all of it back)
    assert keep["heap_grown_after_big_free"] >= BIG_BLOCK - BLOCK


def test_kept_memory_is_reused_without_page_faults(probes):
    if not all(result["thp_disabled"] for result in probes.values()):
        pytest.skip("prctl(PR_SET_THP_DISABLE) refused: fault counts depend on huge pages")
    handed_back, kept = probes["hand-back"]["faults"], probes["keep"]["faults"]
    # every page of every fresh mapping faults once: 81,920 faults with 4 KB pages
    assert handed_back >= ROUNDS * BLOCKS // resource.getpagesize() // 2
    # reused heap memory faults at most where the heap grows (here 0 or one block's pages once)
    assert kept <= handed_back // 20

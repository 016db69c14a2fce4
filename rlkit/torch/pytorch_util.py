"""Device selection, host-memory settings and small tensor helpers."""

import ctypes
import platform
import sys
import warnings

import numpy as np
import torch


def select_device(use_gpu: bool, gpu_id: int = 0) -> torch.device:
    """CUDA device `gpu_id` when asked for and present; else the CPU, with a warning if asked."""
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        warnings.warn(
            "use_gpu is set but no CUDA device is available: running on the CPU", stacklevel=2
        )
        return torch.device("cpu")
    if gpu_id >= torch.cuda.device_count():
        raise ValueError(
            f"gpu_id {gpu_id} is not a CUDA device (found {torch.cuda.device_count()})"
        )
    return torch.device("cuda", gpu_id)


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 256 << 20
HEAP_BLOCKS_BELOW = 64 << 20


def keep_freed_host_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; True when set (Linux with glibc).

    A meta-gradient step allocates and frees tens of MB of activations and gradients. By
    default glibc hands a freed heap top back to the kernel once it exceeds twice the last
    large block and faults it back in page by page: 2,000-5,000 page faults, 2-4 ms, per
    cheetah-vel step on this project's CPU. Here blocks under 64 MB come from the heap and up
    to 256 MB of freed memory stays in the process. Process-wide: the launcher and the
    benchmarks call it, the library does not.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return (
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCKS_BELOW) == 1
        and libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES) == 1
    )


def fanin_init(weight: torch.Tensor) -> None:
    """rlkit's hidden-layer init: U(-1/sqrt(n), 1/sqrt(n)) with n = weight.size(0).

    For nn.Linear n is the *output* size (rlkit's convention, kept for faithfulness).
    """
    bound = 1.0 / np.sqrt(weight.size(0))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def soft_update(source: torch.nn.Module, target: torch.nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, parameter by parameter."""
    with torch.no_grad():
        target_params = list(target.parameters())
        source_params = list(source.parameters())
        torch._foreach_mul_(target_params, 1.0 - tau)
        torch._foreach_add_(target_params, source_params, alpha=tau)

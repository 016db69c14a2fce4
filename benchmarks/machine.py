"""The lines every benchmark prints first: the machine, the thread count, the library versions
and the host-memory setting the launcher uses (which the benchmarks take too)."""

import json
import platform

import torch

from rlkit.core.logger import library_versions
from rlkit.torch.pytorch_util import keep_freed_host_memory


def print_machine(device: torch.device | None = None) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}")
    if device is not None and device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"torch threads: {torch.get_num_threads()}, versions: {json.dumps(library_versions())}")
    kept = keep_freed_host_memory()
    print(f"malloc keeps freed memory for reuse (as the launcher sets it): {kept}")

"""Device selection and small tensor helpers."""

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

"""Checkpoint files: written atomically, so that a kill at any instant leaves either the
previous file or the new one whole, never a torn one.

A run's checkpoint is RUN_DIR/checkpoint.pt, a torch.save'd dict (PEARLAlgorithm.state_dict():
networks, optimizers, replay buffers, random generators, counters, the logger's position).
It is written to a temporary file in the same folder, flushed to disk, then renamed over the
old one (a rename within one file system is atomic).
"""

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

CHECKPOINT_NAME = "checkpoint.pt"
TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(f)` into PATH.tmp, fsync, rename over PATH, fsync the folder (so the rename
    lasts): PATH is either its old content or the new one, whole."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save to PATH atomically (atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_pickle_dump(obj, path: Path) -> None:
    """pickle.dump (highest protocol, as the reference's logger.save_extra_data) to PATH
    atomically (atomic_write)."""
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_torch_save(state, checkpoint_path(run_dir))


def load_checkpoint(run_dir: Path) -> dict | None:
    """The run's checkpoint, or None when it has none yet. Tensors are loaded on the CPU;
    only plain data is unpickled (weights_only)."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)

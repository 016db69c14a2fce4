"""Checkpoint files: written atomically, so that a kill at any instant leaves either the
previous checkpoint or the new one whole, never a torn one.

A run's checkpoint is RUN_DIR/checkpoint.pt, a torch.save'd dict (PEARLAlgorithm.state_dict():
networks, optimizers, the replay buffers' bookkeeping, random generators, counters, the
logger's position). It is written to a temporary file in the same folder, flushed to disk,
then renamed over the old one (a rename within one file system is atomic).

The buffers' transitions live in immutable data files, RUN_DIR/buffers/<buffer>-NNNNNN.pt,
each written once (atomically too) with the transitions added since the previous checkpoint:
a checkpoint costs the iteration's new data, not the whole buffers. The checkpoint names the
files it needs; any other file in that folder (one written for a checkpoint that was never
renamed in, or one whose transitions no buffer holds any more) is deleted once a checkpoint
that does not need it is on disk, or when the run resumes.
"""

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

CHECKPOINT_NAME = "checkpoint.pt"
TMP_SUFFIX = ".tmp"
DATA_FOLDER = "buffers"
DATA_FILE_BYTES = 1 << 26  # at most this many bytes of transitions in one data file


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


class DataFileError(Exception):
    """A data file the checkpoint needs is missing or unreadable."""


def data_file_path(run_dir: Path, buffer_name: str, file: int) -> Path:
    return Path(run_dir) / DATA_FOLDER / f"{buffer_name}-{file:06d}.pt"


def save_buffer_data(run_dir: Path, buffer_name: str, buffer, next_file: int) -> int:
    """Write the transitions of `buffer` (a MultiTaskReplayBuffer) not saved yet into new data
    files, numbered from `next_file`; returns the next free number."""
    (Path(run_dir) / DATA_FOLDER).mkdir(exist_ok=True)
    limit = max(1, DATA_FILE_BYTES // buffer.bytes_per_transition)
    while (content := buffer.pending(limit)) is not None:
        atomic_torch_save(content, data_file_path(run_dir, buffer_name, next_file))
        buffer.mark_saved(next_file)
        next_file += 1
    return next_file


def buffer_data_reader(run_dir: Path, buffer_name: str) -> Callable[[int], dict]:
    """read(file): the content of one of the buffer's data files, memory-mapped (only the
    parts read are loaded)."""

    def read(file: int) -> dict:
        path = data_file_path(run_dir, buffer_name, file)
        if not path.is_file():
            raise DataFileError(f"{path}: missing (the checkpoint needs it)")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # a damaged file: any unpickling or zip error
            message = str(err).strip().split("\n")[0] or type(err).__name__
            raise DataFileError(f"{path}: not a readable data file ({message})") from None

    return read


def remove_unneeded_data(run_dir: Path, needed: set[Path]) -> None:
    """Delete every file of RUN_DIR/buffers that is not in `needed` (the checkpoint on disk's
    data files)."""
    folder = Path(run_dir) / DATA_FOLDER
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path not in needed:
            path.unlink()

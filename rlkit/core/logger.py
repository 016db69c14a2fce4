"""The run folder: progress.csv, debug.log, variant.json, versions, snapshots, extra data.

Layout (readable by viskit): output/<env_name>/<timestamp>/ holding progress.csv (one row per
iteration), variant.json (the merged config), versions.json, debug.log, the six network
state dicts, online_returns.jsonl and the reference's online-train-epoch{N}.pkl,
online-test-epoch{N}.pkl, checkpoint.pt (rlkit.core.checkpoint) and, with dump_eval_paths,
eval_trajectories/*.pkl.

progress.csv and online_returns.jsonl only grow, one record per iteration; `position()` tells
how far they are, and a resumed run cuts them back there (`restore()`): the records of an
iteration that its checkpoint never saw are written again when that iteration is redone. The
online-return pickles of such iterations are deleted then, and written again too.
"""

import csv
import datetime
import json
import os
import platform
import re
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlkit.core.checkpoint import TMP_SUFFIX, atomic_pickle_dump, atomic_torch_save, atomic_write

PROGRESS = "progress.csv"
ONLINE_RETURNS = "online_returns.jsonl"
# the reference's per-epoch pickles of the same arrays (rl_algorithm.py, logger.save_extra_data)
ONLINE_PICKLE = "online-{split}-epoch{epoch}.pkl"
_ONLINE_PICKLE_RE = re.compile(
    r"online-(?:train|test)-epoch(\d+)\.pkl(?:" + re.escape(TMP_SUFFIX) + ")?"
)


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    import gymnasium
    import mujoco
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mujoco": mujoco.__version__,
        "gymnasium": gymnasium.__version__,
        "metaworld": version("metaworld"),
    }


def _save_json(obj, path: Path) -> None:
    text = json.dumps(obj, indent=2).encode()
    atomic_write(path, lambda f: f.write(text))


def create_run_dir(base_log_dir: str, env_name: str, debug: bool = False) -> Path:
    """A new folder output/<env_name>/<timestamp> (or .../debug); never an existing one."""
    # a family given as package.module:Name gets a folder without the colon
    parent = Path(base_log_dir) / env_name.replace(":", ".")
    name = "debug" if debug else datetime.datetime.now().strftime("%Y_%m_%d_%H_%M_%S")
    parent.mkdir(parents=True, exist_ok=True)
    candidate, k = parent / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1
            candidate = parent / f"{name}_{k}"


class RunLogger:
    """Writes everything a run leaves behind into its folder."""

    def __init__(self, run_dir: Path, echo: bool = True):
        self.run_dir = Path(run_dir)
        self.echo = echo
        self._columns: list[str] | None = None
        self._debug_log = open(self.run_dir / "debug.log", "a", buffering=1)
        self.trackers: list = []  # given each row after progress.csv (rlkit.core.tracking)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []
        self._debug_log.close()

    def log(self, message: str, echo: bool = True) -> None:
        """A line in debug.log, printed too unless the logger or `echo` says not to (for
        messages the caller shows its own way)."""
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} | {message}"
        self._debug_log.write(line + "\n")
        if self.echo and echo:
            print(line, file=sys.stdout, flush=True)

    def save_variant(self, variant: dict) -> None:
        """variant.json, written at every start, retry and resume: atomically, since a run
        killed halfway through a plain rewrite would leave a file no resume can read."""
        _save_json(variant, self.run_dir / "variant.json")

    def save_versions(self) -> None:
        _save_json(library_versions(), self.run_dir / "versions.json")

    def position(self) -> dict:
        """The progress.csv columns and the byte lengths of the growing files, made durable
        (fsync) so that a checkpoint never points past what is on disk."""
        sizes = {}
        for name in (PROGRESS, ONLINE_RETURNS):
            path = self.run_dir / name
            if path.exists():
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())
            sizes[name] = path.stat().st_size if path.exists() else 0
        return {"columns": self._columns, "sizes": sizes}

    def restore(self, position: dict | None, epoch: int) -> None:
        """Cut the growing files back to `position` (what came after belongs to iterations
        that are redone) and continue progress.csv with its columns; None: back to empty.
        The online-return pickles of iterations `epoch` on (the first one the checkpoint has
        not finished; 0 with None) are deleted, with any torn temporary pickle."""
        if position is None:
            position = {"columns": None, "sizes": {PROGRESS: 0, ONLINE_RETURNS: 0}}
        for name, size in position["sizes"].items():
            path = self.run_dir / name
            actual = path.stat().st_size if path.exists() else 0
            if actual < size:
                raise ValueError(f"{path} is shorter than its checkpoint says ({actual} < {size})")
            if size == 0:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
        for path in self.run_dir.iterdir():
            match = _ONLINE_PICKLE_RE.fullmatch(path.name)
            if match and (path.name.endswith(TMP_SUFFIX) or int(match[1]) >= epoch):
                path.unlink()
        self._columns = position["columns"]

    def record_row(self, row: OrderedDict) -> None:
        """Append one iteration to progress.csv; the columns may not change between rows."""
        path = self.run_dir / PROGRESS
        if self._columns is None:
            self._columns = list(row)
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(self._columns)
        elif list(row) != self._columns:
            raise ValueError("progress.csv columns changed between iterations")
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([row[c] for c in self._columns])
        for tracker in self.trackers:
            tracker.write(row)

    def save_snapshot(
        self, epoch: int, networks: dict[str, nn.Module], mode: str, gap: int
    ) -> None:
        """NAME.pth ('last'), NAME_itr_K.pth ('all', or every `gap` iterations with 'gap')."""
        keep_numbered = mode == "all" or (mode in ("gap", "gap_and_last") and epoch % gap == 0)
        overwrite_last = mode in ("last", "gap_and_last")
        for name, net in networks.items():
            state = net.state_dict()
            if overwrite_last:
                atomic_torch_save(state, self.run_dir / f"{name}.pth")
            if keep_numbered:
                atomic_torch_save(state, self.run_dir / f"{name}_itr_{epoch}.pth")

    def save_extra(self, obj, relative_path: str) -> None:
        """Pickle `obj` (joblib) to RUN/relative_path.pkl, as the reference's save_extra_data."""
        path = self.run_dir / f"{relative_path}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        import joblib  # here: 0.1 s to import, and only debug dumps use it

        joblib.dump(obj, path, compress=3)

    def save_online_returns(
        self,
        epoch: int,
        train: np.ndarray,
        test: np.ndarray,
        success: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Per-trajectory returns of the evaluation runs (mean over tasks), one line per epoch
        in online_returns.jsonl, and, as the reference saved them, each array by itself in
        online-train-epoch{N}.pkl and online-test-epoch{N}.pkl (a float64 numpy array of one
        value per trajectory index; plain pickle, written atomically). `success`: the
        (train, test) success rates per trajectory index, for families that report success;
        the line then also holds them as train_success and test_success."""
        arrays = {
            "train": np.asarray(train, dtype=np.float64),
            "test": np.asarray(test, dtype=np.float64),
        }
        record = {"epoch": epoch, **{split: a.tolist() for split, a in arrays.items()}}
        if success is not None:
            record["train_success"] = np.asarray(success[0], dtype=np.float64).tolist()
            record["test_success"] = np.asarray(success[1], dtype=np.float64).tolist()
        with open(self.run_dir / ONLINE_RETURNS, "a") as f:
            f.write(json.dumps(record) + "\n")
        for split, array in arrays.items():
            atomic_pickle_dump(array, self.run_dir / ONLINE_PICKLE.format(split=split, epoch=epoch))

"""Run a sweep's trials on Ray Tune: locally, or on an existing Ray cluster.

The sweep folder (STORAGE/NAME) holds one ordinary run folder per trial, named by its
settings, and, beside them, the sweep's own files: sweep.json (what it runs), logs/ (each
trial process's output, and a mark for each finished trial), tune/ (Tune's experiment state,
used by --resume), summary.csv and the summary's learning curves.

Each trial is a Tune function trainable that starts the trial's training in a child process
(rlkit.sweep.trial) with the threads and the device Ray gave it, reports each new progress.csv
row to Tune, and fails when the process dies; Tune then retries it (max_failures) and the new
process continues from the run's own checkpoint.pt.
"""

import csv
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rlkit.core.checkpoint import atomic_write
from rlkit.core.logger import PROGRESS
from rlkit.launchers.config import ConfigError

SWEEP_FILE = "sweep.json"
TUNE_FOLDER = "tune"
LOG_FOLDER = "logs"
DONE_SUFFIX = ".done"
POLL_S = 0.5
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PR_SET_PDEATHSIG = 1


class TrialProcessFailed(RuntimeError):
    """A trial's training process ended without finishing; Tune retries the trial."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the Ray worker that started it goes away, so
    that a retried trial never finds its previous process still writing the run folder."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProgressReader:
    """The rows of a growing progress.csv, each once, as floats where they parse; it reads
    only what was appended since the last call. A resumed run first cuts the file back to its
    checkpoint and writes those iterations again: when the line read last is no longer where
    it was, reading starts over from the top, skipping the rows already returned (an exact
    resume writes the same rows, time columns aside)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows_read = 0  # rows returned so far
        self._offset = 0  # bytes of the file consumed
        self._last_line = b""  # the last line consumed, to notice a cut-back file
        self._header: list[str] | None = None
        self._rows_in_file = 0

    def _still_in_place(self, f) -> bool:
        if not self._last_line:
            return True
        f.seek(self._offset - len(self._last_line))
        return f.read(len(self._last_line)) == self._last_line

    def new_rows(self) -> list[dict]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            if not self._still_in_place(f):
                self._offset, self._last_line, self._header, self._rows_in_file = 0, b"", None, 0
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # complete lines only: the last may be being written
        if end == 0:
            return []
        lines = data[:end].splitlines(keepends=True)
        self._offset += end
        self._last_line = lines[-1]
        rows = []
        for values in csv.reader(line.decode() for line in lines):
            if self._header is None:
                self._header = values
                continue
            self._rows_in_file += 1
            if self._rows_in_file > self.rows_read:
                rows.append({k: _number(v) for k, v in zip(self._header, values, strict=True)})
        self.rows_read = max(self.rows_read, self._rows_in_file)
        return rows


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def done_mark(sweep_dir: Path, name: str) -> Path:
    return sweep_dir / LOG_FOLDER / f"{name}{DONE_SUFFIX}"


def _tail(path: Path, n_bytes: int = 1500) -> str:
    try:
        data = path.read_bytes()[-n_bytes:]
    except OSError:
        return ""
    return data.decode(errors="replace").strip()


def run_trial(config: dict) -> None:
    """The Tune trainable: one trial, in a Ray worker."""
    import ray
    from ray import tune

    sweep_dir = Path(config["sweep_dir"])
    trial = config["trial"]
    run_dir = sweep_dir / trial["name"]
    reader = ProgressReader(run_dir / PROGRESS)
    if done_mark(sweep_dir, trial["name"]).is_file():  # finished before a --resume
        for row in reader.new_rows():
            tune.report(row)
        return
    threads = str(max(1, int(config["cpus_per_trial"])))
    env = {**os.environ, **{variable: threads for variable in THREAD_VARIABLES}}
    device = "cuda" if config["gpus_per_trial"] > 0 and ray.get_gpu_ids() else "cpu"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    log_path = sweep_dir / LOG_FOLDER / f"{trial['name']}.log"
    command = [sys.executable, "-m", "rlkit.sweep.trial", str(run_dir), "--device", device]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )
        process.stdin.write(json.dumps(trial["variant"]).encode())
        process.stdin.close()
        while True:
            code = process.poll()  # before reading: the rows written before it exited count
            for row in reader.new_rows():
                tune.report(row)
            if code is not None:
                break
            time.sleep(POLL_S)
    if code != 0:
        raise TrialProcessFailed(
            f"trial {trial['name']}: its process exited with status {code}; the end of "
            f"{log_path}:\n{_tail(log_path)}"
        )
    atomic_write(done_mark(sweep_dir, trial["name"]), lambda f: None)


def _progress_printer(metric: str):
    """A Tune callback printing one line per trial event and per iteration reported, in place
    of Tune's tables (which would show every trial's whole variant)."""
    from ray.tune import Callback

    class ProgressPrinter(Callback):
        def _say(self, trial, text: str) -> None:
            print(f"trial {trial.config['trial']['name']}: {text}", flush=True)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._say(trial, "started")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            n = trial.config["trial"]["variant"]["algo_params"]["num_iterations"]
            value = result.get(metric)
            shown = f"{value:.4g}" if isinstance(value, float) else value
            self._say(trial, f"iteration {result.get('Epoch', -1) + 1:.0f}/{n}, {metric} {shown}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._say(trial, "done")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._say(trial, "its process failed; retrying (it continues from its checkpoint)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._say(trial, "failed, no retries left")

    return ProgressPrinter()


def check_address(address: str) -> None:
    """A HOST:PORT where nothing answers fails in a second, not after Ray's long retries."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({err.strerror or err})"
        ) from None


def start_ray(address: str | None, cpus: int | None = None) -> None:
    """Connect to the cluster at `address`, or start a Ray instance on this machine."""
    import logging

    import ray

    if address is not None:
        check_address(address)
    try:
        ray.init(
            address=address,
            num_cpus=cpus if address is None else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = f"--address {address}" if address else "local Ray"
        raise ConfigError(f"{where}: cannot connect to a Ray cluster ({first})") from None


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """A trial that needs more than the whole cluster has would wait forever."""
    import ray

    total = ray.cluster_resources()
    for name, needed, option in (
        ("CPU", cpus_per_trial, "--cpus-per-trial"),
        ("GPU", gpus_per_trial, "--gpus-per-trial"),
    ):
        have = total.get(name, 0)
        if needed > have:
            raise ConfigError(f"{option} {needed:g}: the Ray cluster has {have:g} {name}s")


def write_sweep_file(sweep_dir: Path, record: dict) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / LOG_FOLDER).mkdir(exist_ok=True)
    text = json.dumps(record, indent=2).encode()
    atomic_write(sweep_dir / SWEEP_FILE, lambda f: f.write(text))


def read_sweep_file(sweep_dir: Path, option: str) -> dict:
    """The record sweep.py wrote in `sweep_dir`; ConfigError naming `option` when it is not
    a sweep folder."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise ConfigError(f"{option} {sweep_dir}: not a sweep folder (it has no {SWEEP_FILE})")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not readable ({err})") from None


def run_tune(
    sweep_dir: Path,
    trials: list[dict],
    *,
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent: int | None,
    max_failures: int,
    resume: bool,
    metric: str,
):
    """Run (or, with `resume`, go on with) the sweep's trials; returns Tune's ResultGrid."""
    from ray import tune

    trainable = tune.with_resources(run_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tune_path = sweep_dir / TUNE_FOLDER
    param_space = {
        "trial": tune.grid_search(trials),
        "sweep_dir": str(sweep_dir.absolute()),
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
    }
    if resume and tune.Tuner.can_restore(str(tune_path.absolute())):
        tuner = tune.Tuner.restore(
            str(tune_path.absolute()),
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=param_space,
        )
    else:  # a new sweep, or one killed before Tune saved its state
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
                trial_dirname_creator=lambda t: t.config["trial"]["name"],
                trial_name_creator=lambda t: t.config["trial"]["name"],
            ),
            run_config=tune.RunConfig(
                name=TUNE_FOLDER,
                storage_path=str(sweep_dir.absolute()),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[_progress_printer(metric)],
                verbose=0,
            ),
        )
    return tuner.fit()

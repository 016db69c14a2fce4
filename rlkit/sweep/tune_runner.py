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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rlkit.core.checkpoint import atomic_write
from rlkit.core.logger import PROGRESS
from rlkit.envs import FamilyNotFound, import_root
from rlkit.launchers.config import ConfigError
from rlkit.sweep.trial import EXIT_TRIAL_DIVERGED

SWEEP_FILE = "sweep.json"
TUNE_FOLDER = "tune"
LOG_FOLDER = "logs"
DONE, DIVERGED, FAILED = "done", "diverged", "failed"  # a trial's outcome marks in logs/
REPORTED_FILE = "reported.json"  # in a trial's Tune checkpoint: the rows reported
POLL_S = 0.5
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PR_SET_PDEATHSIG = 1


class TrialProcessFailed(RuntimeError):
    """A trial's training process ended without finishing; Tune retries the trial."""


def _pdeathsig_setter() -> Callable[[], None] | None:
    """The child's preexec_fn: SIGKILL when the Ray worker that started it goes away, so that
    a retried trial never finds its previous process still writing the run folder. prctl is
    looked up here, once, in the parent: the child of a threaded process may only do what is
    async-signal-safe between fork and exec, and loading a library is not. None where there is
    no prctl (not Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    sigkill = int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill)

    return die_with_parent


_DIE_WITH_PARENT = _pdeathsig_setter()


class ProgressReader:
    """The rows of a growing progress.csv, as floats where they parse; each call reads only
    what was appended since the last one, complete lines only. A resumed run first cuts the
    file back to its checkpoint and writes those iterations again: when the line read last is
    no longer where it was, the file is read again from the top."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []  # the rows the file holds, as of the last read
        self._offset = 0  # bytes of the file consumed
        self._last_line = b""  # the last line consumed, to notice a cut-back file
        self._header: list[str] | None = None

    def _still_in_place(self, f) -> bool:
        if not self._last_line:
            return True
        f.seek(self._offset - len(self._last_line))
        return f.read(len(self._last_line)) == self._last_line

    def read(self) -> list[dict]:
        """The rows in the file now."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return self.rows
        with f:
            if not self._still_in_place(f):
                self.rows, self._offset, self._last_line, self._header = [], 0, b"", None
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # the last line may be being written
        if end == 0:
            return self.rows
        lines = data[:end].splitlines(keepends=True)
        self._offset += end
        self._last_line = lines[-1]
        for values in csv.reader(line.decode() for line in lines):
            if self._header is None:
                self._header = values
            else:
                self.rows.append({k: _number(v) for k, v in zip(self._header, values, strict=True)})
        return self.rows


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


class TrialReporter:
    """Reports a trial's iterations to Tune, each once, with the values its run folder keeps.

    A row of progress.csv is final once the checkpoint after it is on disk: a run writes the
    row of iteration k, then its checkpoint, and only then starts iteration k + 1, so row k
    is final once row k + 1 is there, and every row is once the process has finished (or
    stopped on a diverged loss, its last checkpoint being after its last row). A later row
    may still be cut back and written again by a resume; it is reported only when final.

    Each report carries a Tune checkpoint holding the number of rows reported: a retried
    trial (and one resumed with the sweep) starts from Tune's last checkpoint, so it goes on
    after the rows Tune has, and Tune's training_iteration is the run's iteration count."""

    def __init__(self, path: Path, reported: int):
        self.reader = ProgressReader(path)
        self.reported = reported

    def report(self, all_final: bool) -> None:
        rows = self.reader.read()
        for k in range(self.reported, len(rows) if all_final else len(rows) - 1):
            self.reported = k + 1
            _report_with_count(rows[k], self.reported)


def _report_with_count(row: dict, count: int) -> None:
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / REPORTED_FILE).write_text(json.dumps({"rows": count}))
        tune.report(row, checkpoint=tune.Checkpoint.from_directory(folder))


def _rows_reported() -> int:
    """How many rows the trial has reported to Tune, by its last Tune checkpoint."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / REPORTED_FILE).read_text())["rows"]


def mark(sweep_dir: Path, name: str, outcome: str) -> Path:
    """logs/NAME.OUTCOME: the trial finished ('done'), stopped on a non-finite loss
    ('diverged', holding the message) or ran out of retries ('failed', holding the error)."""
    return sweep_dir / LOG_FOLDER / f"{name}.{outcome}"


def done_mark(sweep_dir: Path, name: str) -> Path:
    return mark(sweep_dir, name, DONE)


def _tail(path: Path, n_bytes: int = 1500) -> str:
    try:
        data = path.read_bytes()[-n_bytes:]
    except OSError:
        return ""
    return data.decode(errors="replace").strip()


def _write_mark(path: Path, text: str = "") -> None:
    data = text.encode()
    atomic_write(path, lambda f: f.write(data))


def run_trial(config: dict) -> None:
    """The Tune trainable: one trial, in a Ray worker."""
    import ray

    sweep_dir = Path(config["sweep_dir"])
    trial = config["trial"]
    name = trial["name"]
    run_dir = sweep_dir / name
    reporter = TrialReporter(run_dir / PROGRESS, _rows_reported())
    if any(mark(sweep_dir, name, outcome).is_file() for outcome in (DONE, DIVERGED)):
        reporter.report(all_final=True)  # ended before a --resume: nothing to run
        return
    threads = str(max(1, int(config["cpus_per_trial"])))
    env = {**os.environ, **{variable: threads for variable in THREAD_VARIABLES}}
    python_path = [*config.get("python_path", []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(part for part in python_path if part)
    device = "cuda" if config["gpus_per_trial"] > 0 and ray.get_gpu_ids() else "cpu"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    log_path = sweep_dir / LOG_FOLDER / f"{name}.log"
    command = [sys.executable, "-m", "rlkit.sweep.trial", str(run_dir), "--device", device]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_DIE_WITH_PARENT,
        )
        process.stdin.write(json.dumps(trial["variant"]).encode())
        process.stdin.close()
        while True:
            code = process.poll()  # before reading: the rows written before it exited count
            reporter.report(all_final=code in (0, EXIT_TRIAL_DIVERGED))
            if code is not None:
                break
            time.sleep(POLL_S)
    if code == EXIT_TRIAL_DIVERGED:  # an outcome, not a failure: a retry would diverge again
        _write_mark(mark(sweep_dir, name, DIVERGED), _last_line(_tail(log_path)))
        return
    if code != 0:
        raise TrialProcessFailed(
            f"trial {name}: its process exited with status {code}; the end of "
            f"{log_path}:\n{_tail(log_path)}"
        )
    _write_mark(done_mark(sweep_dir, name))


def _last_line(text: str) -> str:
    return text.splitlines()[-1] if text else ""


def _sweep_callback(metric: str):
    """The Tune callback of a sweep: one printed line per trial event and per iteration
    reported, in place of Tune's tables (which would show every trial's whole variant); the
    'failed' mark of a trial out of retries; and a full retry budget for every trial when a
    sweep starts or is resumed."""
    from ray.tune import Callback

    class SweepCallback(Callback):
        def __init__(self):
            self._budgets_renewed = False

        def _say(self, trial, text: str) -> None:
            print(f"trial {trial.config['trial']['name']}: {text}", flush=True)

        def _mark(self, trial, outcome: str) -> Path:
            return mark(Path(trial.config["sweep_dir"]), trial.config["trial"]["name"], outcome)

        def on_step_begin(self, iteration, trials, **info):
            # Tune restores each trial's count of failures with it: a trial that ran out of
            # retries would fail for good at its first failure after --resume, one running
            # when the sweep was killed would keep the retries it had used. A retry of ours
            # continues from the run's checkpoint and loses nothing, so each gets them all.
            if not self._budgets_renewed:
                for trial in trials:
                    trial.run_metadata.num_failures = 0
                    trial.run_metadata.invalidate_cache()
                self._budgets_renewed = True

        def on_trial_start(self, iteration, trials, trial, **info):
            self._mark(trial, FAILED).unlink(missing_ok=True)
            self._say(trial, "started")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            n = trial.config["trial"]["variant"]["algo_params"]["num_iterations"]
            value = result.get(metric)
            shown = f"{value:.4g}" if isinstance(value, float) else value
            self._say(trial, f"iteration {result.get('Epoch', -1) + 1:.0f}/{n}, {metric} {shown}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            diverged = self._mark(trial, DIVERGED)
            if diverged.is_file():
                self._say(trial, f"diverged, not retried ({diverged.read_text().strip()})")
            else:
                self._say(trial, "done")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._say(trial, "its process failed; retrying (it continues from its checkpoint)")

        def on_trial_error(self, iteration, trials, trial, **info):
            _write_mark(self._mark(trial, FAILED), trial.error_file or "")
            self._say(trial, "failed, no retries left")

    return SweepCallback()


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

    # A Tune checkpoint per reported row (TrialReporter) with num_to_keep=1 makes Tune save
    # its experiment state after each one, as wanted; it would warn each time rows come less
    # than 5 s apart
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(run_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tune_path = sweep_dir / TUNE_FOLDER
    # the folders of task families given as package.module:Name, imported from this process's
    # working folder or PYTHONPATH: the trial processes import them from there too
    try:
        python_path = {import_root(trial["variant"]["env_name"]) for trial in trials} - {None}
    except FamilyNotFound as err:
        raise ConfigError(f"env_name: {err}") from None
    param_space = {
        "trial": tune.grid_search(trials),
        "sweep_dir": str(sweep_dir.absolute()),
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
        "python_path": sorted(python_path),
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
                callbacks=[_sweep_callback(metric)],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                verbose=0,
            ),
        )
    return tuner.fit()

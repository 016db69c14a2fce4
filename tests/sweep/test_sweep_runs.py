"""Sweeps on a local Ray instance, end to end: a two-trial sweep writes two ordinary run
folders equal to launch_experiment.py's and a summary; a trial whose process is killed is
retried and continues from its checkpoint, and Tune's own results hold each iteration once
with the run folder's values; a sweep whose driver (and Ray with it) is killed goes on with
--resume without running its finished trial again; a trial out of retries gets them all back
with --resume; a diverged trial is not retried and the summary says so; a trial whose driver
is killed ends a moment later rather than running on.

All the sweeps here run the same tiny point-robot config, so every trial's progress.csv is
compared with a plain run of its seed.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TIME_COLUMNS, run_child, tiny_overrides

from rlkit.plot import load_run

ITERATIONS = 10
CONFIG = "configs/point-robot.json"
LIMIT_S = 600


def overrides(base_dir) -> list[str]:
    # 60 meta-gradient steps per iteration (about 0.4 s here): a kill lands in the middle
    return [*tiny_overrides(base_dir, ITERATIONS), "algo_params.num_train_steps_per_itr=60"]


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def sweep_args(storage: Path, name: str, *extra) -> list[str]:
    return ["sweep.py", CONFIG, "--name", name, "--storage", storage, *extra, "--set"] + [
        expression for expression in overrides(storage)
    ]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """launch_experiment.py runs of seeds 0 and 1: seed -> run folder."""
    base = tmp_path_factory.mktemp("plain")
    runs = {}
    for seed in (0, 1):
        sets = [arg for e in overrides(base / str(seed)) for arg in ("--set", e)]
        result = run_child(["launch_experiment.py", CONFIG, "--seed", seed, *sets])
        assert result.returncode == 0, result.stderr
        (runs[seed],) = (base / str(seed) / "point-robot").iterdir()
    return runs


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return tmp_path_factory.mktemp("sweeps")


def start_sweep(args: list) -> subprocess.Popen:
    """sweep.py in its own process group (Ray's processes join it), output to a file."""
    storage, name = args[args.index("--storage") + 1], args[args.index("--name") + 1]
    log = open(Path(storage) / f"{name}.out", "w")
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def trial_processes(marker: Path) -> list[int]:
    """The pids of the trial processes whose command line names `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "rlkit.sweep.trial" in command and str(marker) in command:
            pids.append(int(entry.name))
    return pids


def wait_for(condition, what: str, limit_s: float = LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {limit_s} s", pytrace=False)
        time.sleep(0.05)


def tune_results(sweep_dir: Path, name: str) -> list[dict]:
    """The results Tune recorded for a trial (its result.json, one JSON object a line)."""
    lines = (sweep_dir / "tune" / name / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def kill_trial_once_it_makes_progress(run_dir: Path, not_pid: int | None = None) -> int:
    """SIGKILL the trial process of `run_dir` (not `not_pid`, one killed before) once it has
    written a row of its own; returns its pid."""
    found = []

    def new_process():
        found[:] = [pid for pid in trial_processes(run_dir) if pid != not_pid]
        return found

    wait_for(new_process, "the trial's process")
    (pid,) = found
    rows_then = row_count(run_dir)
    wait_for(lambda: row_count(run_dir) > rows_then, "a row of the new trial process")
    assert row_count(run_dir) < ITERATIONS  # killed in the middle of the run
    os.kill(pid, signal.SIGKILL)
    return pid


def row_count(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "progress.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def test_a_two_trial_sweep_writes_two_run_folders_and_the_summary(storage, plain):
    result = run_child(sweep_args(storage, "two", "--seeds", "0", "1"), limit_s=LIMIT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sweep_dir = storage / "two"
    for seed in (0, 1):
        run_dir = sweep_dir / f"seed={seed}"
        # everything launch_experiment.py writes, and nothing of Tune's
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(
            p.name for p in plain[seed].iterdir()
        )
        assert rows(run_dir) == rows(plain[seed])
        assert len(rows(run_dir)) == ITERATIONS
        assert len(load_run(run_dir).rows) == ITERATIONS  # rlkit.plot reads it
    with open(sweep_dir / "summary.csv", newline="") as f:
        (summary,) = csv.DictReader(f)
    assert summary["seeds"] == summary["seeds_finished"] == "2"
    assert summary["pooled_seeds"] == "0 1" and summary["not_pooled"] == ""
    finals = [float(rows(plain[s])[-1]["AverageReturn_all_test_tasks"]) for s in (0, 1)]
    assert float(summary["mean"]) == pytest.approx(sum(finals) / 2)
    assert (sweep_dir / "AverageReturn_all_test_tasks.png").stat().st_size > 10_000
    assert "trial seed=1: done" in result.stdout
    simulated = run_child(["sim_policy.py", sweep_dir / "seed=0", "--num_trajs", "1"])
    assert simulated.returncode == 0, simulated.stderr


def test_a_killed_trial_is_retried_from_its_checkpoint(storage, plain):
    driver = start_sweep(sweep_args(storage, "killed", "--seeds", "0", "--max-failures", "1"))
    run_dir = storage / "killed" / "seed=0"
    try:
        wait_for(lambda: row_count(run_dir) >= 2, "two iterations of the trial")
        (pid,) = trial_processes(run_dir)
        assert row_count(run_dir) < ITERATIONS  # killed in the middle of the run
        os.kill(pid, signal.SIGKILL)
        assert driver.wait(timeout=LIMIT_S) == 0
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    output = (storage / "killed.out").read_text()
    assert "trial seed=0: its process failed; retrying" in output
    log = (run_dir / "debug.log").read_text()
    (resumed,) = [line for line in log.splitlines() if "| resumed" in line]
    # from its checkpoint, not from the start ("resumed at the start" / "starting again")
    assert re.search(
        r"resumed (after|in) iteration \d+.*: continuing with iteration [1-9]", resumed
    )
    assert rows(run_dir) == rows(plain[0])
    # Tune's results: each iteration once, as the run folder keeps it (time columns too)
    with open(run_dir / "progress.csv", newline="") as f:
        kept = list(csv.DictReader(f))
    results = tune_results(storage / "killed", "seed=0")
    assert [r["Epoch"] for r in results] == list(range(ITERATIONS))
    assert [r["training_iteration"] for r in results] == list(range(1, ITERATIONS + 1))
    for result, row in zip(results, kept, strict=True):
        assert {k: float(v) for k, v in row.items()} == {k: result[k] for k in row}


def test_a_trial_out_of_retries_gets_them_back_with_resume(storage, plain):
    """Killed twice with one retry it fails; resumed, killed once more, it still finishes."""
    args = sweep_args(storage, "budget", "--seeds", "0", "--max-failures", "1")
    driver = start_sweep(args)
    run_dir = storage / "budget" / "seed=0"
    try:
        first = kill_trial_once_it_makes_progress(run_dir)
        kill_trial_once_it_makes_progress(run_dir, not_pid=first)
        assert driver.wait(timeout=LIMIT_S) == 1  # out of retries
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert "trial seed=0: failed, no retries left" in (storage / "budget.out").read_text()
    assert (storage / "budget" / "logs" / "seed=0.failed").is_file()
    resumed = start_sweep(["sweep.py", "--resume", "--name", "budget", "--storage", storage])
    try:
        kill_trial_once_it_makes_progress(run_dir)
        assert resumed.wait(timeout=LIMIT_S) == 0, (storage / "budget.out").read_text()[-3000:]
    finally:
        if resumed.poll() is None:
            os.killpg(resumed.pid, signal.SIGKILL)
    assert "trial seed=0: its process failed; retrying" in (storage / "budget.out").read_text()
    assert not (storage / "budget" / "logs" / "seed=0.failed").exists()
    assert rows(run_dir) == rows(plain[0])
    assert [r["Epoch"] for r in tune_results(storage / "budget", "seed=0")] == list(
        range(ITERATIONS)
    )


def test_a_diverged_trial_is_not_retried_and_the_summary_says_so(storage):
    # a reward scale no float32 holds: the Q targets are inf, the QF loss too, at the first step
    args = ["sweep.py", CONFIG, "--name", "diverged", "--storage", storage, "--seeds", "0"]
    args += ["--grid", "algo_params.reward_scale=5,1e300", "--max-failures", "2"]
    result = run_child([*args, "--set", *overrides(storage)], limit_s=LIMIT_S)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    with open(storage / "diverged" / "summary.csv", newline="") as f:
        healthy, diverged = csv.DictReader(f)
    name = f"{diverged['setting']}_seed=0"
    assert result.stdout.count(f"trial {name}: started") == 1  # never retried
    assert f"trial {name}: diverged, not retried (error: QF Loss became NaN or inf" in (
        result.stdout
    )
    assert f"1 of 2 trials diverged ({name})" in result.stderr
    assert "go on with" not in result.stderr  # nothing a --resume would do
    assert (diverged["seeds_started"], diverged["seeds_diverged"]) == ("1", "1")
    assert (diverged["pooled_seeds"], diverged["not_pooled"], diverged["mean"]) == (
        "",
        "0:diverged",
        "",
    )
    assert (healthy["seeds_finished"], healthy["pooled_seeds"]) == ("1", "0")
    assert f"{diverged['setting']}: 1 seed, 1 started, 0 finished, 1 diverged" in result.stdout


def test_a_killed_sweep_goes_on_with_resume(storage, plain):
    args = sweep_args(storage, "driver", "--seeds", "0", "1", "--max-concurrent", "1")
    driver = start_sweep(args)
    sweep_dir = storage / "driver"
    first, second = sweep_dir / "seed=0", sweep_dir / "seed=1"
    try:
        wait_for(
            lambda: (sweep_dir / "logs" / "seed=0.done").exists() and row_count(second) >= 2,
            "the first trial to finish and the second to be under way",
        )
        assert row_count(second) < ITERATIONS
    finally:
        # the whole machine lost: the driver, the Ray it started, and the trial at once (left
        # to itself the trial would end a moment after Ray's worker, maybe finished by then)
        os.killpg(driver.pid, signal.SIGKILL)
        for pid in trial_processes(sweep_dir):
            os.kill(pid, signal.SIGKILL)
        driver.wait()
    wait_for(lambda: not trial_processes(sweep_dir), "the trial processes to end", 60)
    assert row_count(second) < ITERATIONS
    finished = {name: (first / name).read_bytes() for name in ("progress.csv", "debug.log")}
    result = run_child(
        ["sweep.py", "--resume", "--name", "driver", "--storage", storage], limit_s=LIMIT_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name, content in finished.items():  # not run again
        assert (first / name).read_bytes() == content, name
    log = (second / "debug.log").read_text()
    assert "continuing with iteration" in log
    assert rows(second) == rows(plain[1])
    assert rows(first) == rows(plain[0])
    with open(sweep_dir / "summary.csv", newline="") as f:
        (summary,) = csv.DictReader(f)
    assert summary["seeds_finished"] == "2"


def test_a_trial_ends_soon_after_its_driver_is_killed(storage):
    """No orphan goes on writing a run folder that a --resume will take over."""
    long_run = [*overrides(storage), "algo_params.num_iterations=1000"]
    args = ["sweep.py", CONFIG, "--name", "orphan", "--storage", storage, "--seeds", "0"]
    driver = start_sweep([*args, "--set", *long_run])
    run_dir = storage / "orphan" / "seed=0"
    try:
        wait_for(lambda: row_count(run_dir) >= 1, "the trial's first iteration")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, not the trial
        driver.wait()
    wait_for(lambda: not trial_processes(run_dir), "the trial process to end", 60)
    assert row_count(run_dir) < 1000

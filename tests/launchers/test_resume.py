"""Seeds, kills and resumes through the command line.

One run is killed (SIGKILL) during collection, during training, while writing its
checkpoint, while writing a buffer data file, just before and just after renaming the
checkpoint into place and while a resume rewrites its variant.json, stopped by Ctrl-C
(SIGINT) between two steps and by a NaN loss, and resumed with `--resume` after each; its
progress.csv must end with every iteration exactly once and equal to an uninterrupted run
with the same seed (time columns aside). The kills are placed deterministically by a wrapper
script that patches the library in its own process only.
"""

import csv
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import (
    ROOT,
    TIME_COLUMNS,
    TRAIN_STEPS_PER_ITR,
    online_return_pickles,
    run_child,
    tiny_overrides,
)

from rlkit.core.checkpoint import DATA_FOLDER, load_checkpoint
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import RunStopped, prepare, run_experiment
from rlkit.torch.pearl_trainer import PEARLTrainer

ITERATIONS = 5


def tiny(base_dir, iterations=ITERATIONS):
    """--set expressions for a point-robot run of a few seconds. Collection adds a path to a
    buffer 12 times before iteration 0 (6 tasks, both buffers) and 6 times per iteration
    (2 tasks: prior path into both buffers, extra path into the RL buffer)."""
    return [*tiny_overrides(base_dir, iterations), "algo_params.num_extra_rl_steps_posterior=20"]


def set_args(expressions):
    return [arg for expression in expressions for arg in ("--set", expression)]


# Runs launch_experiment's main in this process after patching it to act at the COUNT-th
# call of WHAT: send itself SIGKILL or SIGINT, or poison a critic weight (a NaN loss).
WRAPPER = """
import io, os, signal, sys

sys.path.insert(0, os.getcwd())
import torch

import launch_experiment
from rlkit.data_management.multitask_replay_buffer import MultiTaskReplayBuffer
from rlkit.torch.pearl_trainer import PEARLTrainer

what, count, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = 0


def hit():
    global calls
    calls += 1
    return calls == count


def act(trainer=None):
    if action == "poison":
        with torch.no_grad():
            next(trainer.qf1.parameters()).view(-1)[0] = float("inf")
    else:
        os.kill(os.getpid(), getattr(signal, action))


def patch(owner, name):
    original = getattr(owner, name)

    def patched(self, *args, **kwargs):
        if hit():
            act(self)
        return original(self, *args, **kwargs)

    setattr(owner, name, patched)


if what == "collection":
    patch(MultiTaskReplayBuffer, "add_path")
elif what == "training":
    patch(PEARLTrainer, "take_step")
elif what in ("checkpoint", "datafile"):
    # half the checkpoint's temporary file, or a buffer data file's, is on disk when it dies
    original_save = torch.save

    def targeted(name):
        if what == "checkpoint":
            return name.endswith("checkpoint.pt.tmp")
        return f"{os.sep}buffers{os.sep}" in name and name.endswith(".pt.tmp")

    def torn(obj, f, *args, **kwargs):
        if targeted(str(getattr(f, "name", ""))) and hit():
            data = io.BytesIO()
            original_save(obj, data)
            f.write(data.getvalue()[: len(data.getvalue()) // 2])
            f.flush()
            act()
        return original_save(obj, f, *args, **kwargs)

    torch.save = torn
elif what in ("rename-before", "rename-after"):  # dies just before or after the rename
    original_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        hitting = str(dst).endswith("checkpoint.pt") and hit()
        if hitting and what == "rename-before":
            act()
        result = original_replace(src, dst, *args, **kwargs)
        if hitting:
            act()
        return result

    os.replace = replace
elif what == "variant":  # half of variant.json (or of its temporary file) written when it dies
    import builtins

    original_open = builtins.open

    class Torn:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: max(1, len(data) // 2)])
            self.f.flush()
            act()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def opening(file, mode="r", *args, **kwargs):
        f = original_open(file, mode, *args, **kwargs)
        writing = os.path.basename(str(file)).startswith("variant.json") and "w" in mode
        return Torn(f) if writing and hit() else f

    builtins.open = opening
launch_experiment.main(sys.argv[4:])
"""

# (what, count, action, exit status) of each launch of the interrupted run, in order; the
# iteration each hits, with the run resumed from the previous one's checkpoint:
CHAIN = [
    ("collection", 12 + 6 + 3, "SIGKILL", -9),  # iteration 1, collection half done
    ("training", 2, "SIGKILL", -9),  # iteration 1 again, before its 2nd step
    ("checkpoint", 2, "SIGKILL", -9),  # iteration 2's checkpoint, its row already written
    ("training", 2, "SIGINT", 130),  # iteration 2 again, stops after its 2nd step
    ("training", 2, "poison", 1),  # iteration 3's 1st step: QF loss inf
    ("datafile", 1, "SIGKILL", -9),  # iteration 3's checkpoint: its first data file torn
    ("rename-before", 1, "SIGKILL", -9),  # iteration 3's checkpoint, all its data files written
    ("rename-after", 1, "SIGKILL", -9),  # iteration 3's checkpoint on disk, nothing cleaned
    ("variant", 1, "SIGKILL", -9),  # the resume's rewrite of variant.json, before it logs
]


def launch(args, wrapper=None, what=()):
    if wrapper is None:
        return run_child(["launch_experiment.py", *args])
    return run_child([wrapper, *what, *args])


def only_run(base_dir):
    (run_dir,) = (base_dir / "point-robot").iterdir()
    return run_dir


def fresh(base_dir, seed, iterations=ITERATIONS):
    args = ["configs/point-robot.json", "--seed", str(seed)]
    return args + set_args(tiny(base_dir, iterations))


def interrupted_run(folder):
    """The chain of launches of one run: the first fresh for 4 iterations, then resumed after
    each stop, the last one extended to ITERATIONS, then once more when it is finished."""
    wrapper = folder / "wrapper.py"
    wrapper.write_text(WRAPPER)
    base_dir = folder / "logs"
    procs = [launch(fresh(base_dir, 0, iterations=4), wrapper, CHAIN[0][:3])]
    run_dir = only_run(base_dir)
    for what in CHAIN[1:]:
        procs.append(launch(["--resume", str(run_dir)], wrapper, what[:3]))
    extend = set_args([f"algo_params.num_iterations={ITERATIONS}"])
    procs.append(launch(["--resume", str(run_dir), *extend]))
    procs.append(launch(["--resume", str(run_dir)]))
    return procs, run_dir


# a run folder (variant.json, a checkpoint that is not one) and ways of resuming it wrongly:
# name: (arguments after --resume RUN_DIR, words the one-line message must hold)
BAD_RESUMES = {
    "with-a-config": (["configs/point-robot.json"], ["no CONFIG, --seed or --debug"]),
    "with-a-seed": (["--seed", "3"], ["no CONFIG, --seed or --debug"]),
    "set-other-key": (set_args(["net_size=8"]), ["--set net_size=8", "num_iterations"]),
    "torn-checkpoint": ([], ["checkpoint.pt: not a readable checkpoint"]),
}


def bad_resume(folder, after):
    run_dir = folder / "run"
    run_dir.mkdir()
    variant = load_config(str(ROOT / "configs" / "point-robot.json"))
    apply_override(variant, f"util_params.base_log_dir={folder / 'logs'}")
    (run_dir / "variant.json").write_text(json.dumps(variant))
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip file")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    proc = launch(["--resume", str(run_dir), *after])
    return proc, before, run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pool = ThreadPoolExecutor(max_workers=4)

    def plain(name, seed):
        base_dir = tmp_path_factory.mktemp(name) / "logs"
        proc = launch(fresh(base_dir, seed))
        return proc, only_run(base_dir)

    started = {
        "interrupted": pool.submit(interrupted_run, tmp_path_factory.mktemp("interrupted")),
        "seed0": pool.submit(plain, "seed0", 0),
        "seed0-again": pool.submit(plain, "seed0-again", 0),
        "seed1": pool.submit(plain, "seed1", 1),
    }
    for name, (after, _) in BAD_RESUMES.items():
        started[name] = pool.submit(bad_resume, tmp_path_factory.mktemp(name), after)
    yield {name: future.result for name, future in started.items()}
    pool.shutdown(wait=True)


def finished(runs, name):
    proc, run_dir = runs[name]()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def progress(run_dir, with_time=False):
    with open(run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if with_time:
        return rows
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


# ------------------------------------------------------------------ seeds


def test_same_seed_same_progress(runs):
    first, second = finished(runs, "seed0"), finished(runs, "seed0-again")
    rows = progress(first)
    assert len(rows) == ITERATIONS
    assert rows == progress(second)
    # the time columns are there, and they are the only ones left out
    assert set(progress(first, with_time=True)[0]) - set(rows[0]) == TIME_COLUMNS


def test_different_seeds_differ(runs):
    rows0, rows1 = progress(finished(runs, "seed0")), progress(finished(runs, "seed1"))
    for column in ("AverageReturn_all_test_tasks", "QF Loss", "Z mean eval"):
        assert [r[column] for r in rows0] != [r[column] for r in rows1], column
    variants = [
        json.loads((finished(runs, name) / "variant.json").read_text())
        for name in ("seed0", "seed1")
    ]
    assert [v["util_params"]["seed"] for v in variants] == [0, 1]


# ------------------------------------------------------------------ kills and resumes


def test_each_stop_says_what_happened(runs):
    procs, run_dir = runs["interrupted"]()
    for proc, (what, _, action, status) in zip(procs, CHAIN, strict=False):
        assert proc.returncode == status, (what, action, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
    sigint, nan = procs[3], procs[4]
    assert sigint.stderr.strip().splitlines()[-1] == (
        f"interrupted; resume with: python launch_experiment.py --resume {run_dir}"
    )
    (line,) = nan.stderr.strip().splitlines()
    assert line.startswith(
        "error: QF Loss became NaN or inf at meta-gradient step 0 of iteration 3"
    )
    assert line.endswith(f"the last good checkpoint (after iteration 2) is kept in {run_dir}")
    extended, again = procs[-2:]
    for proc in (extended, again):
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr == ""
    assert f"all {ITERATIONS} iterations are done" in again.stdout


def test_resumed_run_equals_the_uninterrupted_one(runs):
    _, run_dir = runs["interrupted"]()
    rows = progress(run_dir)
    assert [row["Epoch"] for row in rows] == [str(k) for k in range(ITERATIONS)]
    assert rows == progress(finished(runs, "seed0"))
    reference = finished(runs, "seed0")
    returns = (run_dir / "online_returns.jsonl").read_text()
    assert returns == (reference / "online_returns.jsonl").read_text()
    assert online_return_pickles(run_dir) == online_return_pickles(reference)
    for name in ("policy", "context_encoder", "qf1", "target_vf"):
        got = torch.load(run_dir / f"{name}.pth")
        expected = torch.load(reference / f"{name}.pth")
        assert all(torch.equal(got[k], expected[k]) for k in expected), name
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["algo_params"]["num_iterations"] == ITERATIONS  # extended by --set
    assert not (run_dir / "checkpoint.pt.tmp").exists()  # the torn one was replaced
    # the data folder holds the files the last checkpoint names, no other
    checkpoint = load_checkpoint(run_dir)
    named = {
        f"{name}-{file:06d}.pt"
        for name in ("replay_buffer", "enc_replay_buffer")
        for segments in checkpoint[name]["segments"]
        for file in segments[:, 0].tolist()
    }
    assert {p.name for p in (run_dir / DATA_FOLDER).iterdir()} == named


def test_debug_log_is_appended(runs):
    procs, run_dir = runs["interrupted"]()
    lines = (run_dir / "debug.log").read_text().splitlines()
    # one start per launch but the one killed writing variant.json, the first launch's first
    starts = [k for k, line in enumerate(lines) if line.endswith(f"run folder: {run_dir}")]
    assert len(starts) == len(procs) - 1 and starts[0] == 0
    assert "collecting the initial pool of data" in lines[2]
    resumed = [line.split(" | ", 1)[1] for line in lines if "| resumed" in line]
    assert resumed == [
        "resumed after iteration 0: continuing with iteration 1",
        "resumed after iteration 0: continuing with iteration 1",
        "resumed after iteration 1: continuing with iteration 2",
        "resumed in iteration 2, after 2 meta-gradient steps: continuing with iteration 2",
        "resumed after iteration 2: continuing with iteration 3",
        "resumed after iteration 2: continuing with iteration 3",
        "resumed after iteration 2: continuing with iteration 3",
        "resumed after iteration 3: continuing with iteration 4",
        f"resumed after iteration {ITERATIONS - 1}: all {ITERATIONS} iterations are done",
    ]
    assert len(procs) == len(resumed) + 2


@pytest.mark.parametrize("name", list(BAD_RESUMES))
def test_bad_resume_exits_2_with_one_line(runs, name):
    proc, before, run_dir = runs[name]()
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error:")
    for word in BAD_RESUMES[name][1]:
        assert word in line
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert not (run_dir.parent / "logs").exists()


# ------------------------------------------------------------------ Ctrl-C in process


def tiny_variant(base_dir, iterations=2):
    variant = load_config(str(ROOT / "configs" / "point-robot.json"))
    for expression in [*tiny(base_dir, iterations), "util_params.seed=0"]:
        apply_override(variant, expression)
    return prepare(variant, "test")


def signal_at_step(monkeypatch, call, times, number=signal.SIGINT):
    calls = []
    original = PEARLTrainer.take_step

    def take_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            for _ in range(times):
                os.kill(os.getpid(), number)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PEARLTrainer, "take_step", take_step)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, pre-emption
def test_ctrl_c_stops_after_the_step_and_saves(tmp_path, monkeypatch, capfd, number):
    handler_before = signal.getsignal(number)
    signal_at_step(monkeypatch, TRAIN_STEPS_PER_ITR + 2, times=1, number=number)
    with pytest.raises(RunStopped) as info:
        run_experiment(tiny_variant(tmp_path))
    run_dir = only_run(tmp_path)
    assert info.value.exit_code == 130
    assert str(info.value) == (
        f"interrupted; resume with: python launch_experiment.py --resume {run_dir}"
    )
    assert "stopping after the current step" in capfd.readouterr().err
    saved = torch.load(run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["steps_done"]) == (1, 2)
    assert signal.getsignal(number) is handler_before


def test_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    signal_at_step(monkeypatch, TRAIN_STEPS_PER_ITR + 2, times=2)
    with pytest.raises(RunStopped) as info:
        run_experiment(tiny_variant(tmp_path))
    run_dir = only_run(tmp_path)
    assert info.value.exit_code == 130
    assert "its last checkpoint is kept" in str(info.value)
    saved = torch.load(run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["steps_done"]) == (1, None)
    assert len(progress(run_dir)) == 1


def test_a_run_stopped_before_its_first_checkpoint_starts_again(tmp_path, monkeypatch):
    reference = run_experiment(tiny_variant(tmp_path / "reference"))
    signal_at_step(monkeypatch, 2, times=2)  # at once, in iteration 0
    variant = tiny_variant(tmp_path / "stopped")
    with pytest.raises(RunStopped) as info:
        run_experiment(variant)
    run_dir = only_run(tmp_path / "stopped")
    assert "checkpoint" not in str(info.value)
    assert not (run_dir / "checkpoint.pt").exists()
    monkeypatch.undo()
    run_experiment(variant, run_dir, checkpoint=None)
    assert progress(run_dir) == progress(reference)
    assert "starting again from iteration 0" in (run_dir / "debug.log").read_text()

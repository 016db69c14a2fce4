"""TensorBoard and W&B (util_params.tensorboard, util_params.wandb) through the command line.

Both trackers must hold every numeric progress.csv column of every row, with the value the
file shows, against `Number of env steps total`: read back with TensorBoard's own event reader
and by parsing W&B's offline .wandb files (wandb has no reader for them). A run killed twice
(SIGKILL in training, then between a row and its checkpoint, so that the resume cuts a row off
and writes it again) and resumed must leave one point per iteration in TensorBoard and each
row sent to one W&B run exactly once. A tracker that is not installed stops the launch with
one line before a run folder exists, and a resume may turn the trackers on.
"""

import csv
import json
import math
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import TIME_COLUMNS, TRAIN_STEPS_PER_ITR, run_child
from test_resume import WRAPPER, launch, only_run, set_args, tiny

STEP_COLUMN = "Number of env steps total"
GROUP, TAGS, PROJECT = "tracker-tests", ["tiny", "point robot"], "pearl-tests"
WANDB_OFFLINE = [
    "util_params.wandb.mode=offline",
    f"util_params.wandb.project={PROJECT}",
    f"util_params.wandb.group={GROUP}",
    f"util_params.wandb.tags={json.dumps(TAGS)}",
]
BOTH = ["util_params.tensorboard=true", *WANDB_OFFLINE]
CHAIN_ITERATIONS = 4
# launches of the interrupted run: (what, count, action) for test_resume's WRAPPER, or None
CHAIN = [
    ("training", 2 * TRAIN_STEPS_PER_ITR + 2, "SIGKILL"),  # iteration 2, rows 0-1 written
    ("checkpoint", 1, "SIGKILL"),  # iteration 2's checkpoint, its row written and sent
    None,  # iteration 2 again (its row cut off and written again), then 3
]
# Runs launch_experiment's main with a package that cannot be imported (as if not installed).
WITHOUT = """
import os, sys

sys.path.insert(0, os.getcwd())
sys.modules[sys.argv[1]] = None  # `import NAME` now raises ImportError
import launch_experiment

launch_experiment.main(sys.argv[2:])
"""
MISSING = {  # package: (--set expressions asking for it, words the one-line error must hold)
    "tensorboard": (["util_params.tensorboard=true"], "util_params.tensorboard"),
    "wandb": (["util_params.wandb.mode=offline"], "util_params.wandb.mode 'offline'"),
}


def fresh(base_dir, iterations, extra=()):
    args = ["configs/point-robot.json", "--seed", "0"]
    return args + set_args([*tiny(base_dir, iterations), *extra])


def plain_run(folder):
    """Both trackers from the start, never interrupted."""
    proc = launch(fresh(folder / "logs", 3, BOTH))
    return proc, only_run(folder / "logs")


def interrupted_run(folder):
    """Both trackers; the processes of CHAIN, with wandb.json after each."""
    wrapper = folder / "wrapper.py"
    wrapper.write_text(WRAPPER)
    base_dir = folder / "logs"
    procs, states = [launch(fresh(base_dir, CHAIN_ITERATIONS, BOTH), wrapper, CHAIN[0])], []
    run_dir = only_run(base_dir)
    for what in CHAIN[1:]:
        states.append(json.loads((run_dir / "wandb.json").read_text()))
        if what is None:
            procs.append(launch(["--resume", str(run_dir)]))
        else:
            procs.append(launch(["--resume", str(run_dir)], wrapper, what))
    states.append(json.loads((run_dir / "wandb.json").read_text()))
    return procs, states, run_dir


def late_trackers(folder):
    """A finished run without trackers, then resumed with both turned on."""
    first = launch(fresh(folder / "logs", 2))
    run_dir = only_run(folder / "logs")
    before = {p.name for p in run_dir.iterdir()}
    progress_before = (run_dir / "progress.csv").read_bytes()
    again = launch(["--resume", str(run_dir), *set_args(BOTH)])
    return (first, again), before, progress_before, run_dir


def without(folder, package):
    overrides, _ = MISSING[package]
    base_dir = folder / "logs"
    args = ["-c", WITHOUT, package, *fresh(base_dir, 2, overrides)]
    return run_child(args), base_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        # W&B offline from the config alone, nothing written outside the tests' folders
        for variable in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT",
                         "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_RUN_ID",
                         "WANDB_RESUME", "WANDB_DISABLED"):
            mp.delenv(variable, raising=False)
        home = tmp_path_factory.mktemp("wandb-home")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DISABLE_GIT", "true")
        mp.setenv("WANDB_CONFIG_DIR", str(home / "config"))
        mp.setenv("WANDB_CACHE_DIR", str(home / "cache"))
        mp.setenv("WANDB_DATA_DIR", str(home / "data"))
        mp.setenv("WANDB_ARTIFACT_DIR", str(home / "artifacts"))
        pool = ThreadPoolExecutor(max_workers=3)
        started = {  # the longest first
            "interrupted": pool.submit(interrupted_run, tmp_path_factory.mktemp("interrupted")),
            "plain": pool.submit(plain_run, tmp_path_factory.mktemp("plain")),
            "late": pool.submit(late_trackers, tmp_path_factory.mktemp("late")),
        }
        for package in MISSING:
            started[package] = pool.submit(without, tmp_path_factory.mktemp(package), package)
        yield {name: future.result for name, future in started.items()}
        pool.shutdown(wait=True)


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ readers


def progress(run_dir):
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def numeric(text):
    """The value of a csv cell, None when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def same(a, b):
    """Equal floats, NaN equal to NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) == math.isnan(b) and math.isnan(a))


def expected_points(rows, columns=None):
    """{column: [(step, value), ...]} of progress.csv's numeric cells."""
    points = {}
    for row in rows:
        step = int(float(row[STEP_COLUMN]))
        for column, text in row.items():
            value = numeric(text)
            if value is not None and (columns is None or column in columns):
                points.setdefault(column, []).append((step, value))
    return points


def tensorboard_points(run_dir):
    """The event files in RUN_DIR/tensorboard and {tag: [(step, value), ...]} as TensorBoard
    reads them, every point kept (no purging of points that a restart made stale)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    folder = run_dir / "tensorboard"
    files = sorted(p.name for p in folder.iterdir())
    accumulator = EventAccumulator(
        str(folder), size_guidance={"tensors": 0}, purge_orphaned_data=False
    )
    accumulator.Reload()
    tags = accumulator.Tags()
    others = {kind: found for kind, found in tags.items() if kind != "tensors" and found}
    points = {}
    for tag in tags["tensors"]:
        for event in accumulator.Tensors(tag):
            array = make_ndarray(event.tensor_proto)
            assert array.dtype == np.float64 and array.shape == (), (tag, array)
            points.setdefault(tag, []).append((event.step, array.item()))
    return files, others, points


def assert_same_points(got, expected):
    assert set(got) == set(expected)
    for tag, points in expected.items():
        assert len(got[tag]) == len(points), (tag, got[tag], points)
        for (step, value), (want_step, want) in zip(got[tag], points, strict=True):
            assert step == want_step and same(value, want), (tag, got[tag], points)


WANDB_BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path):
    """The Records of an offline .wandb file: a 7-byte header (b':W&B', 2 magic bytes, a
    version byte), then a leveldb log: 32 KiB blocks of records, each a 7-byte header (crc,
    length, type) and its chunk; a Record too long for a block is split FIRST, MIDDLE..., LAST;
    a block's tail shorter than a header is padding."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    records, pos, payload = [], 7, None
    while pos + 7 <= len(data):
        left = WANDB_BLOCK - pos % WANDB_BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:  # zeros the writer left at the end
            assert length == 0 and not chunk.strip(b"\0"), (path, pos)
            continue
        assert len(chunk) == length, (path, pos)  # no torn record
        if kind in (FULL, FIRST):
            assert payload is None, (path, pos)
            payload = chunk
        else:
            assert kind in (MIDDLE, LAST) and payload is not None, (path, pos, kind)
            payload += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            records.append(record)
            payload = None
    return records


def offline_files(run_dir):
    """The offline runs' .wandb files, oldest first."""
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def wandb_runs(run_dir):
    """Per offline file: its run record and its history rows ({key: decoded value}) in order,
    and the config as the run and config records leave it."""
    found = []
    for path in offline_files(run_dir):
        runs, history, config = [], [], {}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
                for item in record.run.config.update:
                    config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            elif kind == "config":
                for item in record.config.update:
                    config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
                for item in record.config.remove:
                    config.pop(item.key or "/".join(item.nested_key), None)
            elif kind == "history":
                history.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
        found.append((path, runs, history, config))
    return found


def assert_row_sent(sent, row):
    """A W&B history row holds the row's numeric cells with their values, nothing else but
    W&B's own _step, _runtime, _timestamp."""
    numbers = {column: numeric(text) for column, text in row.items()}
    numbers = {column: value for column, value in numbers.items() if value is not None}
    assert {key for key in sent if not key.startswith("_")} == set(numbers)
    for column, value in numbers.items():
        got = sent[column]
        got = float("nan") if got == "NaN" else got  # in case it is sent as a string
        assert isinstance(got, (int, float)) and same(float(got), value), (column, got, value)


# ------------------------------------------------------------------ TensorBoard


def test_tensorboard_holds_every_numeric_column(runs):
    proc, run_dir = runs["plain"]()
    ok(proc)
    rows = progress(run_dir)
    assert [row["Epoch"] for row in rows] == ["0", "1", "2"]
    files, others, points = tensorboard_points(run_dir)
    assert len(files) == 1 and files[0].startswith("events.out.tfevents."), files
    assert others == {}  # no old-style scalars, histograms, graphs...
    expected = expected_points(rows)
    assert len(expected) == len(rows[0]) >= 40  # every column of a point-robot row is numeric
    assert_same_points(points, expected)  # time columns too: the values the file shows


def test_tensorboard_after_kills_and_resumes_has_one_point_per_iteration(runs):
    procs, _, run_dir = runs["interrupted"]()
    assert [proc.returncode for proc in procs] == [-9, -9, 0], procs[-1].stderr[-3000:]
    ok(procs[-1])
    rows = progress(run_dir)
    assert [row["Epoch"] for row in rows] == [str(k) for k in range(CHAIN_ITERATIONS)]
    steps = [int(row[STEP_COLUMN]) for row in rows]
    assert steps == sorted(set(steps))
    files, others, points = tensorboard_points(run_dir)
    assert len(files) == 1, files  # the killed processes' files were deleted
    assert others == {}
    for tag, tag_points in points.items():
        assert [step for step, _ in tag_points] == steps, tag
    # the rows of the first process (rewritten from progress.csv), iteration 2 as written
    # again, and iteration 3: all as the final progress.csv shows them, time columns too
    assert_same_points(points, expected_points(rows))


def test_resume_can_turn_the_trackers_on(runs):
    (first, again), before, progress_before, run_dir = runs["late"]()
    ok(first)
    ok(again)
    assert "all 2 iterations are done" in again.stdout
    assert not {"tensorboard", "wandb", "wandb.json"} & before
    assert (run_dir / "progress.csv").read_bytes() == progress_before
    rows = progress(run_dir)
    assert len(rows) == 2
    files, others, points = tensorboard_points(run_dir)
    assert len(files) == 1 and others == {}
    assert_same_points(points, expected_points(rows))
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["util_params"]["tensorboard"] is True
    assert variant["util_params"]["wandb"]["mode"] == "offline"
    # W&B, turned on too, is sent the rows the run already has
    ((_, _, history, _),) = wandb_runs(run_dir)
    assert len(history) == len(rows)
    for sent, row in zip(history, rows, strict=True):
        assert_row_sent(sent, row)
    assert json.loads((run_dir / "wandb.json").read_text())["rows_sent"] == len(rows)


# ------------------------------------------------------------------ W&B


def test_wandb_offline_run_holds_the_rows_and_the_config(runs):
    proc, run_dir = runs["plain"]()
    ok(proc)
    rows = progress(run_dir)
    state = json.loads((run_dir / "wandb.json").read_text())
    assert state["rows_sent"] == len(rows) == 3
    ((path, run_records, history, config),) = wandb_runs(run_dir)
    assert path.name == f"run-{state['id']}.wandb"
    assert path.parent.name.endswith(f"-{state['id']}")
    assert run_records, "no run record"
    for run in run_records:
        assert run.run_id == state["id"]
        assert run.run_group == GROUP
        assert list(run.tags) == TAGS
        assert run.project == PROJECT
    assert len(history) == len(rows)
    for sent, row in zip(history, rows, strict=True):
        assert_row_sent(sent, row)  # time columns too: the values progress.csv shows
    variant = json.loads((run_dir / "variant.json").read_text())
    config.pop("_wandb", None)  # W&B's own entry
    assert set(config) == set(variant)
    for key, value in variant.items():
        assert config[key] == value, key


def test_wandb_after_kills_and_resumes_sends_each_row_once_to_one_run(runs):
    procs, states, run_dir = runs["interrupted"]()
    assert [proc.returncode for proc in procs] == [-9, -9, 0], procs[-1].stderr[-3000:]
    run_id = states[0]["id"]
    # after the first kill rows 0-1 were sent; after the second, row 2, which the resume cut
    # from progress.csv and wrote again without sending it again
    assert states == [
        {"id": run_id, "rows_sent": 2},
        {"id": run_id, "rows_sent": 3},
        {"id": run_id, "rows_sent": CHAIN_ITERATIONS},
    ]
    found = wandb_runs(run_dir)
    assert len(found) == len(procs)  # one offline run folder per process
    epochs = []
    for path, run_records, history, _ in found:
        assert path.name == f"run-{run_id}.wandb"
        assert path.parent.name.endswith(f"-{run_id}")
        assert run_records and all(run.run_id == run_id for run in run_records)
        epochs += [sent["Epoch"] for sent in history]
    assert sorted(epochs) == list(range(CHAIN_ITERATIONS))  # each iteration sent once
    # what was sent is the rows' values (the redone row 2 kept its first time columns)
    sent_rows = [sent for _, _, history, _ in found for sent in history]
    final = progress(run_dir)
    for sent in sent_rows:
        row = final[sent["Epoch"]]
        if sent["Epoch"] == 2:
            row = {k: v for k, v in row.items() if k not in TIME_COLUMNS}
            sent = {k: v for k, v in sent.items() if k not in TIME_COLUMNS}
        assert_row_sent(sent, row)


# ------------------------------------------------------------------ not installed


@pytest.mark.parametrize("package", list(MISSING))
def test_a_tracker_not_installed_exits_2_with_one_line(runs, package):
    proc, base_dir = runs[package]()
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: configs/point-robot.json: ")
    assert MISSING[package][1] in line
    assert f"pip install 'pearl-rlkit[{package}]'" in line
    assert not base_dir.exists()  # no run folder

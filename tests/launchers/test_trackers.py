"""TensorBoard and W&B (util_params.tensorboard, util_params.wandb) through the command line.

Both trackers must hold every numeric progress.csv column of every row, with the value the
file shows, against `Number of env steps total`: read back with TensorBoard's own event reader
and by parsing W&B's offline .wandb files (wandb has no reader for them). A run SIGKILLed
between a row and its checkpoint (the resume cuts that row off and writes it again) and
resumed must leave one point per iteration in TensorBoard, and one W&B run to which every row
was sent at step = its iteration (the rows a killed launch gave W&B are lost with it, so they
are sent again). A resume may turn TensorBoard on and continues the same W&B run with the rows
not sent yet. A tracker that is not installed stops the launch with one line before a run
folder exists.
"""

import csv
import json
import math
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import TIME_COLUMNS, run_child
from test_resume import WRAPPER, launch, only_run, set_args, tiny

from rlkit.core.tracking import numeric_columns

STEP_COLUMN = "Number of env steps total"
GROUP, TAGS, PROJECT = "tracker-tests", ["tiny", "point robot"], "pearl-tests"
WANDB_OFFLINE = [
    "util_params.wandb.mode=offline",
    f"util_params.wandb.project={PROJECT}",
    f"util_params.wandb.group={GROUP}",
    f"util_params.wandb.tags={json.dumps(TAGS)}",
]
KILLED_ITERATIONS = 4
# the 3rd checkpoint of the killed run's first launch is iteration 2's: SIGKILL while it is
# written, after iteration 2's row went to progress.csv and to the trackers
KILL = ("checkpoint", 3, "SIGKILL")
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


def wandb_state(run_dir):
    return json.loads((run_dir / "wandb.json").read_text())


def killed_run(folder):
    """Both trackers, 4 iterations: killed writing iteration 2's checkpoint, then resumed;
    wandb.json after each launch."""
    wrapper = folder / "wrapper.py"
    wrapper.write_text(WRAPPER)
    extra = ["util_params.tensorboard=true", *WANDB_OFFLINE]
    killed = launch(fresh(folder / "logs", KILLED_ITERATIONS, extra), wrapper, KILL)
    run_dir = only_run(folder / "logs")
    states = [wandb_state(run_dir)]
    resumed = launch(["--resume", str(run_dir)])
    states.append(wandb_state(run_dir))
    return (killed, resumed), states, run_dir


def late_tensorboard(folder):
    """A finished run of 2 iterations with W&B only, then resumed with TensorBoard turned on
    and one more iteration; the first variant.json, wandb.json after each launch."""
    first = launch(fresh(folder / "logs", 2, WANDB_OFFLINE))
    run_dir = only_run(folder / "logs")
    before = {p.name for p in run_dir.iterdir()}
    variant = json.loads((run_dir / "variant.json").read_text())
    states = [wandb_state(run_dir)]
    more = ["util_params.tensorboard=true", "algo_params.num_iterations=3"]
    again = launch(["--resume", str(run_dir), *set_args(more)])
    states.append(wandb_state(run_dir))
    return (first, again), before, variant, states, run_dir


def without(folder, package):
    overrides, _ = MISSING[package]
    base_dir = folder / "logs"
    args = ["-c", WITHOUT, package, *fresh(base_dir, 2, overrides)]
    return run_child(args), base_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        # W&B offline from the config alone, nothing written outside the tests' folders
        for variable in (
            "WANDB_MODE",
            "WANDB_DIR",
            "WANDB_API_KEY",
            "WANDB_PROJECT",
            "WANDB_ENTITY",
            "WANDB_RUN_GROUP",
            "WANDB_TAGS",
            "WANDB_RUN_ID",
            "WANDB_RESUME",
            "WANDB_DISABLED",
        ):
            mp.delenv(variable, raising=False)
        home = tmp_path_factory.mktemp("wandb-home")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DISABLE_GIT", "true")
        for variable, name in [("CONFIG", "config"), ("CACHE", "cache"), ("DATA", "data")]:
            mp.setenv(f"WANDB_{variable}_DIR", str(home / name))
        pool = ThreadPoolExecutor(max_workers=2)
        started = {  # the longest first
            "killed": pool.submit(killed_run, tmp_path_factory.mktemp("killed")),
            "late": pool.submit(late_tensorboard, tmp_path_factory.mktemp("late")),
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
    """Equal numbers, NaN equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


def expected_points(rows):
    """{column: [(step, value), ...]} of progress.csv's numeric cells."""
    points = {}
    for row in rows:
        step = int(float(row[STEP_COLUMN]))
        for column, text in row.items():
            value = numeric(text)
            if value is not None:
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
    a block's tail shorter than a header is padding. The file of a killed process may end in
    the middle of a Record: that one is left out."""
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
        if len(chunk) < length:  # torn at the end
            break
        if kind == 0:  # zeros the writer left at the end
            assert length == 0 and not data[pos:].strip(b"\0"), (path, pos)
            break
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
    (_, resumed), _, run_dir = runs["killed"]()
    ok(resumed)
    rows = progress(run_dir)
    files, others, points = tensorboard_points(run_dir)
    assert len(files) == 1 and files[0].startswith("events.out.tfevents."), files
    assert others == {}  # no old-style scalars, histograms, graphs...
    expected = expected_points(rows)
    assert len(expected) == len(rows[0]) >= 40  # every column of a point-robot row is numeric
    # float64 scalars (tensorboard_points checks), time columns too: the values the file
    # shows, rows 0-1 written again from progress.csv by the resume, rows 2-3 as they came
    assert_same_points(points, expected)


def test_tensorboard_after_a_kill_has_one_point_per_iteration(runs):
    (killed, resumed), _, run_dir = runs["killed"]()
    assert killed.returncode == -9, killed.stderr[-3000:]
    ok(resumed)
    # the kill came after iteration 2's row, before its checkpoint: the row was cut off
    # and written again
    log = (run_dir / "debug.log").read_text()
    assert "resumed after iteration 1: continuing with iteration 2" in log
    assert log.count("| iteration 2: test return") == 2
    rows = progress(run_dir)
    assert [row["Epoch"] for row in rows] == [str(k) for k in range(KILLED_ITERATIONS)]
    steps = [int(row[STEP_COLUMN]) for row in rows]
    assert steps == sorted(set(steps))
    files, _, points = tensorboard_points(run_dir)
    assert len(files) == 1, files  # the killed process's file was deleted
    assert points
    for tag, tag_points in points.items():
        assert [step for step, _ in tag_points] == steps, tag


def test_resume_can_turn_tensorboard_on(runs):
    (first, again), before, _, _, run_dir = runs["late"]()
    ok(first)
    ok(again)
    assert "tensorboard" not in before
    assert "resumed after iteration 1: continuing with iteration 2" in again.stdout
    rows = progress(run_dir)
    assert [row["Epoch"] for row in rows] == ["0", "1", "2"]
    files, others, points = tensorboard_points(run_dir)
    assert len(files) == 1 and others == {}
    # rows 0-1 from the progress.csv of the launch without TensorBoard, row 2 as it came
    assert_same_points(points, expected_points(rows))
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["util_params"]["tensorboard"] is True


# ------------------------------------------------------------------ W&B


def test_wandb_offline_run_holds_the_rows_and_the_config(runs):
    """The late run: 2 rows sent by the first launch, the 3rd by the resumed one, which
    continues the same W&B run."""
    (first, again), _, first_variant, states, run_dir = runs["late"]()
    ok(first)
    ok(again)
    run_id = states[0]["id"]
    # each launch finished its W&B run cleanly: the rows it sent count as sent
    assert states == [{"id": run_id, "rows_finished": 2}, {"id": run_id, "rows_finished": 3}]
    rows = progress(run_dir)
    found = wandb_runs(run_dir)
    assert len(found) == 2  # one offline run folder per launch, both of the same W&B run
    variants = [first_variant, json.loads((run_dir / "variant.json").read_text())]
    assert variants[1]["util_params"]["tensorboard"] is True  # the resumed run's own
    for (path, run_records, _, config), variant in zip(found, variants, strict=True):
        assert path.name == f"run-{run_id}.wandb"
        assert path.parent.name.startswith("offline-run-")
        assert path.parent.name.endswith(f"-{run_id}")
        assert run_records, f"{path}: no run record"
        for run in run_records:
            assert run.run_id == run_id
            assert run.run_group == GROUP
            assert list(run.tags) == TAGS
            assert run.project == PROJECT
        config.pop("_wandb", None)  # W&B's own entry
        assert set(config) == set(variant)
        for key, value in variant.items():
            assert config[key] == value, key
    assert [[sent["Epoch"] for sent in history] for _, _, history, _ in found] == [[0, 1], [2]]
    sent_rows = [sent for _, _, history, _ in found for sent in history]
    for sent, row in zip(sent_rows, rows, strict=True):
        assert_row_sent(sent, row)  # time columns too: the values progress.csv shows
        assert sent["_step"] == sent["Epoch"]  # W&B's step is the iteration


def sent_epochs(run_dir):
    """The Epoch of every history row in the offline files, per file."""
    return [[sent["Epoch"] for sent in history] for _, _, history, _ in wandb_runs(run_dir)]


def test_wandb_after_a_kill_sends_every_row_of_the_same_run(runs):
    """W&B's own process buffers what it is given and loses it when the run is SIGKILLed (here
    the killed launch's file holds none of its rows): rows count as sent only once a W&B run
    finished cleanly, so the resumed launch sends them all again, each at step = its
    iteration, in the same W&B run (W&B keeps the first point of a step it already has)."""
    (killed, resumed), states, run_dir = runs["killed"]()
    assert killed.returncode == -9, killed.stderr[-3000:]
    ok(resumed)
    run_id = states[0]["id"]
    assert states == [
        {"id": run_id, "rows_finished": 0},  # the killed launch never finished its W&B run
        {"id": run_id, "rows_finished": KILLED_ITERATIONS},
    ]
    found = wandb_runs(run_dir)
    assert len(found) == 2  # one offline run folder per launch
    for path, run_records, _, _ in found:
        assert path.name == f"run-{run_id}.wandb"
        assert path.parent.name.endswith(f"-{run_id}")
        assert all(run.run_id == run_id for run in run_records)
    assert found[-1][1], "the resumed launch's file has no run record"
    epochs = sent_epochs(run_dir)
    assert epochs[-1] == list(range(KILLED_ITERATIONS))  # every row, the lost ones again
    final = progress(run_dir)
    for _, _, history, _ in found:
        for sent in history:
            assert sent["_step"] == sent["Epoch"]
            row = final[int(sent["Epoch"])]
            if sent["Epoch"] == 2 and sent in found[0][2]:  # sent before row 2 was redone
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


def test_nan_and_text_columns_are_not_logged():
    # a column measured only in some iterations (Meta-World's evaluator) has no point between
    row = {"MetaWorldSuccessRate_test_tasks": "nan", "QF Loss": "1.5", "note": "text"}
    assert numeric_columns(row) == {"QF Loss": 1.5}

"""End to end through the command line: tiny runs of the reference point-robot configs and of
the algorithm's variants, the run folder they leave, and clean failures on bad input.

The launches are independent subprocesses; they start together (module fixture `runs`) so the
file's wall time is about that of the slowest few, not of their sum.
"""

import csv
import json
import math
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import torch
from conftest import (
    N_EVAL_TASKS,
    ROOT,
    TRAIN_STEPS_PER_ITR,
    online_return_pickles,
    run_child,
    tiny_overrides,
)

from rlkit.envs import ENVS
from rlkit.launchers.config import apply_override, load_config, validate
from rlkit.launchers.launcher import build_networks

OBS_DIM = ACTION_DIM = 2  # both point robots

REFERENCE_COLUMNS = [
    "AverageTrainReturn_all_train_tasks",
    "AverageReturn_all_train_tasks",
    "AverageReturn_all_test_tasks",
    "Z mean train",
    "Z variance train",
    "Z mean eval",
    "Z variance eval",
    "KL Divergence",
    "KL Loss",
    "QF Loss",
    "VF Loss",
    "Policy Loss",
    *[
        f"{name} {stat}"
        for name in ("Q Predictions", "V Predictions", "Log Pis", "Policy mu", "Policy log std")
        for stat in ("Mean", "Std", "Max", "Min")
    ],
    "Number of train steps total",
    "Number of env steps total",
    "Number of rollouts total",
    "Train Time (s)",
    "(Previous) Eval Time (s)",
    "Sample Time (s)",
    "Epoch Time (s)",
    "Total Train Time (s)",
    "Epoch",
]
NETWORK_FILES = ["context_encoder", "policy", "qf1", "qf2", "vf", "target_vf"]
# name: (config, iterations, extra --set expressions); all use --seed 0
TRAINING_RUNS = {
    "point-robot": (
        "configs/point-robot.json",
        2,
        ["algo_params.num_extra_rl_steps_posterior=20"],
    ),
    "sparse-point-robot": (
        "configs/sparse-point-robot.json",
        2,
        ["algo_params.num_steps_posterior=20", "algo_params.dump_eval_paths=true"],
    ),
    "recurrent": (
        "configs/point-robot.json",
        1,
        ["algo_params.recurrent=true", "algo_params.embedding_mini_batch_size=4"],
    ),
    "no-bottleneck": (
        "configs/point-robot.json",
        1,
        ["algo_params.use_information_bottleneck=false"],
    ),
    "next-obs": ("configs/point-robot.json", 1, ["algo_params.use_next_obs_in_context=true"]),
}
# The MuJoCo reference experiments: one iteration each, paths of 20 steps.
MUJOCO_CONFIGS = [
    "cheetah-dir",
    "cheetah-vel",
    "ant-dir",
    "ant-goal",
    "humanoid-dir",
    "hopper_rand_params",
    "walker_rand_params",
]
TWO_TASK_CONFIGS = {"cheetah-dir", "ant-dir"}  # the same two tasks train and evaluate
for _name in MUJOCO_CONFIGS:
    _tasks = ["n_train_tasks=2", "n_eval_tasks=2"] if _name in TWO_TASK_CONFIGS else []
    TRAINING_RUNS[_name] = (
        f"configs/{_name}.json",
        1,
        ["algo_params.max_path_length=20", "algo_params.num_extra_rl_steps_posterior=20", *_tasks],
    )

MALFORMED = '{\n  "env_name": "point-robot",\n  "net_size": 64,,\n}\n'
# files made in the bad run's folder before it starts
BAD_FILES = {
    "malformed-json": ("bad.json", MALFORMED.encode()),
    "unreadable-config": ("bad.json", b'{"net_size": "\xff\xfe"}'),
    "output-is-a-file": ("a-file", b""),
}
# name: (arguments before the --set's, --set expressions, words the message must hold);
# {folder} is the bad run's own folder. Every class of bad input the launcher rejects.
BAD_RUNS = {
    "missing-config": (["{folder}/none.json"], [], ["{folder}/none.json", "no such config"]),
    "unreadable-config": (["{folder}/bad.json"], [], ["{folder}/bad.json", "not UTF-8"]),
    "malformed-json": (["{folder}/bad.json"], [], ["{folder}/bad.json", "line 3, column 18"]),
    "unknown-key": (
        ["configs/point-robot.json"],
        ["algo_params.batchsize=3"],
        ["algo_params.batchsize", "algo_params.batch_size"],
    ),
    "unknown-env-param": (
        ["configs/point-robot.json"],
        ["env_params.n_taks=5"],
        ["configs/point-robot.json", "env_params.n_taks", "env_params.n_tasks"],
    ),
    "wrong-type": (
        ["configs/point-robot.json"],
        ["algo_params.discount=high"],
        ["algo_params.discount", "a number", "high"],
    ),
    "negative-size": (
        ["configs/sparse-point-robot.json"],
        ["algo_params.batch_size=-1"],
        ["configs/sparse-point-robot.json", "algo_params.batch_size"],
    ),
    "zero-count": (
        ["configs/point-robot.json"],
        ["algo_params.meta_batch=0"],
        ["configs/point-robot.json", "algo_params.meta_batch", "at least 1"],
    ),
    "too-many-train-tasks": (
        ["configs/point-robot.json"],
        ["n_train_tasks=101"],
        ["configs/point-robot.json", "n_train_tasks", "101"],
    ),
    "too-many-eval-tasks": (
        ["configs/point-robot.json"],
        ["n_eval_tasks=101"],
        ["configs/point-robot.json", "n_eval_tasks", "101", "100 tasks"],
    ),
    "mini-batch-too-large": (
        ["configs/point-robot.json"],
        ["algo_params.embedding_mini_batch_size=65"],
        ["embedding_mini_batch_size (65)", "embedding_batch_size (64)"],
    ),
    "unknown-env": (
        ["configs/point-robot.json"],
        ["env_name=point-robto"],
        ["point-robto", "point-robot", "sparse-point-robot", "cheetah-dir"],
    ),
    "bad-set": (["configs/point-robot.json"], ["net_size"], ["--set net_size", "KEY=VALUE"]),
    "output-is-a-file": (
        ["configs/point-robot.json"],
        ["util_params.base_log_dir={folder}/a-file/logs"],
        ["util_params.base_log_dir", "{folder}/a-file", "is not a folder"],
    ),
    "resume-not-a-run": (["--resume", "{folder}"], [], ["--resume {folder}", "not a run"]),
    "resume-no-folder": (["--resume", "{folder}/x"], [], ["--resume {folder}/x", "no such"]),
}


def launch(args):
    return run_child(["launch_experiment.py", *args])


def set_args(expressions):
    return [arg for expression in expressions for arg in ("--set", expression)]


def training_sets(name, base_dir):
    config, iterations, extra = TRAINING_RUNS[name]
    return config, tiny_overrides(base_dir, iterations) + extra


def expected_variant(config, expressions):
    """The settings the run must have recorded: the config, the --set's, the seed, and the
    thread count it ran with (conftest gives every process, children included, one thread)."""
    variant = load_config(str(ROOT / config))
    for expression in expressions:
        apply_override(variant, expression)
    apply_override(variant, "util_params.seed=0")
    if variant["util_params"]["num_threads"] is None:
        apply_override(variant, f"util_params.num_threads={os.environ['OMP_NUM_THREADS']}")
    return variant


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts every launch of this file at once; maps a name to (future, base_dir, extra)."""
    pool = ThreadPoolExecutor(max_workers=4)
    started = {}
    for name in TRAINING_RUNS:
        base_dir = tmp_path_factory.mktemp(name) / "logs"
        config, expressions = training_sets(name, base_dir)
        args = [config, "--seed", "0", *set_args(expressions)]
        started[name] = (pool.submit(launch, args), base_dir, (config, expressions))
    for name, (before, expressions, _) in BAD_RUNS.items():
        folder = tmp_path_factory.mktemp(name)
        base_dir = folder / "logs"
        if name in BAD_FILES:
            file_name, content = BAD_FILES[name]
            (folder / file_name).write_bytes(content)
        args = [arg.format(folder=folder) for arg in before]
        if args[0] != "--resume":
            expressions = [f"util_params.base_log_dir={base_dir}", *expressions]
        args += set_args([e.format(folder=folder) for e in expressions])
        started[name] = (pool.submit(launch, args), base_dir, folder)
    base_dir = tmp_path_factory.mktemp("docker") / "logs"
    args = ["configs/point-robot.json", "--docker", "--set", f"util_params.base_log_dir={base_dir}"]
    started["docker"] = (pool.submit(launch, args), base_dir, None)
    yield started
    pool.shutdown(wait=True)


def finished(runs, name):
    future, base_dir, extra = runs[name]
    return future.result(), base_dir, extra


def successful_run(runs, name):
    """(process, run folder, settings) of a training launch that must have succeeded."""
    proc, base_dir, (config, expressions) = finished(runs, name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    env_name = load_config(str(ROOT / config))["env_name"]
    assert [p.name for p in base_dir.iterdir()] == [env_name]
    run_dirs = list((base_dir / env_name).iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].is_dir()
    return proc, run_dirs[0], expected_variant(config, expressions)


def read_progress(run_dir):
    with open(run_dir / "progress.csv", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def load_state(run_dir, name):
    return torch.load(run_dir / f"{name}.pth", map_location="cpu")


def networks_for(variant, obs_dim=OBS_DIM, action_dim=ACTION_DIM):
    nets = build_networks(variant, obs_dim, action_dim)
    nets["target_vf"] = build_networks(variant, obs_dim, action_dim)["vf"]
    return nets


# ------------------------------------------------------------------ the reference configs

MAIN_RUNS = ["point-robot", "sparse-point-robot"]


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_one_timestamped_run_folder(runs, name):
    proc, run_dir, variant = successful_run(runs, name)
    assert run_dir.parent.name == variant["env_name"]
    assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}(_\d+)?", run_dir.name)
    # the launcher tells where the results are when it starts and when it ends
    assert proc.stdout.count(str(run_dir)) >= 2


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_progress_csv(runs, name):
    _, run_dir, variant = successful_run(runs, name)
    columns, rows = read_progress(run_dir)
    missing = [c for c in REFERENCE_COLUMNS if c not in columns]
    assert not missing
    assert len(rows) == 2
    values = [{c: float(row[c]) for c in columns} for row in rows]
    for row in values:
        bad = [c for c, v in row.items() if not math.isfinite(v)]
        assert not bad, f"not finite: {bad}"
    assert [row["Epoch"] for row in values] == [0, 1]
    steps = [row["Number of train steps total"] for row in values]
    assert steps == [TRAIN_STEPS_PER_ITR, 2 * TRAIN_STEPS_PER_ITR]
    rollouts = [row["Number of rollouts total"] for row in values]
    assert 0 < rollouts[0] < rollouts[1]
    env_steps = [row["Number of env steps total"] for row in values]
    initial = variant["n_train_tasks"] * variant["algo_params"]["num_initial_steps"]
    assert initial < env_steps[0] < env_steps[1]
    for row in values:
        assert row["Z variance train"] > 0 and row["Z variance eval"] > 0
    # an iteration's Epoch Time is its sampling, training and evaluation; its evaluation is the
    # next row's (Previous) Eval Time. The CSV keeps each float's repr, so the sum holds exactly
    # but for rounding
    for row, following in zip(values[:-1], values[1:], strict=True):
        own_eval = following["(Previous) Eval Time (s)"]
        expected = row["Sample Time (s)"] + row["Train Time (s)"] + own_eval
        assert row["Epoch Time (s)"] == pytest.approx(expected, rel=1e-9)
    last = values[-1]
    assert last["Epoch Time (s)"] > last["Sample Time (s)"] + last["Train Time (s)"]
    # all three lie between the iteration's row and the one before it (the start, for row 0)
    totals = [0.0] + [row["Total Train Time (s)"] for row in values]
    for row, before, after in zip(values, totals[:-1], totals[1:], strict=True):
        assert row["Epoch Time (s)"] <= after - before + 1e-9
    assert values[0]["(Previous) Eval Time (s)"] == 0
    assert values[1]["(Previous) Eval Time (s)"] > 0
    assert values[0]["Total Train Time (s)"] < values[1]["Total Train Time (s)"]
    if variant["algo_params"]["sparse_rewards"]:
        # sparse returns: each of at most 20 steps earns a reward in [0, 1]
        for row in values:
            for key in ("AverageReturn_all_train_tasks", "AverageReturn_all_test_tasks"):
                assert 0 <= row[key] <= variant["algo_params"]["max_path_length"]
    else:
        for row in values:
            assert row["AverageReturn_all_test_tasks"] < 0  # minus distances


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_variant_json_is_a_valid_config_of_the_run(runs, name):
    _, run_dir, variant = successful_run(runs, name)
    saved = json.loads((run_dir / "variant.json").read_text())
    assert saved == variant
    reloaded = load_config(str(run_dir / "variant.json"))
    assert reloaded == variant
    validate(reloaded, str(run_dir / "variant.json"))
    assert reloaded["util_params"]["seed"] == 0
    assert reloaded["net_size"] == 16
    assert reloaded["algo_params"]["num_train_steps_per_itr"] == TRAIN_STEPS_PER_ITR
    assert reloaded["util_params"]["base_log_dir"] == str(run_dir.parent.parent)


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_versions_and_debug_log(runs, name):
    _, run_dir, _ = successful_run(runs, name)
    versions = json.loads((run_dir / "versions.json").read_text())
    for library in ("python", "torch", "numpy", "mujoco", "gymnasium", "metaworld"):
        assert isinstance(versions[library], str) and versions[library]
    assert versions["torch"] == torch.__version__
    assert versions["numpy"] == np.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert (run_dir / "debug.log").stat().st_size > 0


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_state_dicts_load_into_the_networks(runs, name):
    _, run_dir, variant = successful_run(runs, name)
    nets = networks_for(variant)
    states = {}
    for file_name in NETWORK_FILES:
        state = load_state(run_dir, file_name)
        nets[file_name].load_state_dict(state)  # strict: same names and shapes
        assert all(torch.isfinite(t).all() for t in state.values())
        states[file_name] = state
    # target V trails V by Polyak averaging: close to it but no longer equal after training
    assert any(not torch.equal(states["vf"][k], states["target_vf"][k]) for k in states["vf"])
    assert states["qf1"].keys() == states["qf2"].keys()
    assert any(not torch.equal(states["qf1"][k], states["qf2"][k]) for k in states["qf1"])


@pytest.mark.parametrize("name", MAIN_RUNS)
def test_online_returns_per_epoch(runs, name):
    _, run_dir, _ = successful_run(runs, name)
    lines = (run_dir / "online_returns.jsonl").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [0, 1]
    for record in records:
        # 40 steps per evaluation run with trajectories of 20: two trajectories
        for key in ("train", "test"):
            assert len(record[key]) == 2
            assert all(math.isfinite(x) for x in record[key])
    # and the reference's pickles of the same arrays, one pair per epoch
    assert sorted(online_return_pickles(run_dir)) == [
        "online-test-epoch0.pkl",
        "online-test-epoch1.pkl",
        "online-train-epoch0.pkl",
        "online-train-epoch1.pkl",
    ]


def test_dump_eval_paths(runs):
    _, run_dir, variant = successful_run(runs, "sparse-point-robot")
    folder = run_dir / "eval_trajectories"
    names = sorted(p.name for p in folder.glob("*.pkl"))
    n_tasks = variant["env_params"]["n_tasks"]
    eval_tasks = range(n_tasks - N_EVAL_TASKS, n_tasks)
    for epoch in (0, 1):
        assert f"prior-epoch{epoch}.pkl" in names
        for task in eval_tasks:
            assert any(n.startswith(f"task{task}-epoch{epoch}") for n in names), names
    goals = ENVS[variant["env_name"]](**variant["env_params"]).tasks
    prior = joblib.load(folder / "prior-epoch0.pkl")
    assert len(prior) > 0
    for path in prior:
        assert path["observations"].shape == (variant["algo_params"]["max_path_length"], 2)
        np.testing.assert_allclose(path["goal"], goals[eval_tasks[0]])
    task_file = next(n for n in names if n.startswith(f"task{eval_tasks[-1]}-epoch1"))
    paths = joblib.load(folder / task_file)
    assert sum(len(p["rewards"]) for p in paths) == variant["algo_params"]["num_steps_per_eval"]
    np.testing.assert_allclose(paths[0]["goal"], goals[eval_tasks[-1]])


def test_no_eval_paths_unless_asked(runs):
    _, run_dir, _ = successful_run(runs, "point-robot")
    assert not list(run_dir.glob("eval_trajectories/*.pkl"))


@pytest.mark.parametrize("name", MUJOCO_CONFIGS)
def test_mujoco_reference_config_runs_one_iteration(runs, name):
    _, run_dir, variant = successful_run(runs, name)
    assert json.loads((run_dir / "variant.json").read_text()) == variant
    columns, rows = read_progress(run_dir)
    assert [c for c in REFERENCE_COLUMNS if c not in columns] == []
    assert len(rows) == 1
    for column in ("AverageReturn_all_test_tasks", "AverageTrainReturn_all_train_tasks", "QF Loss"):
        assert math.isfinite(float(rows[0][column]))
    assert float(rows[0]["Number of env steps total"]) > variant["n_train_tasks"] * 20
    env = ENVS[variant["env_name"]](**variant["env_params"])
    dims = env.observation_space.shape[0], env.action_space.shape[0]
    nets = networks_for(variant, *dims)
    for file_name in NETWORK_FILES:
        nets[file_name].load_state_dict(load_state(run_dir, file_name))
    assert len((run_dir / "online_returns.jsonl").read_text().splitlines()) == 1
    assert (run_dir / "debug.log").stat().st_size > 0


# ------------------------------------------------------------------ variants of the algorithm

# name: (key that differs from the default, its value in the run)
VARIANTS = {
    "recurrent": ("recurrent", True),
    "no-bottleneck": ("use_information_bottleneck", False),
    "next-obs": ("use_next_obs_in_context", True),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_runs_one_iteration(runs, name):
    key, value = VARIANTS[name]
    _, run_dir, variant = successful_run(runs, name)
    assert variant["algo_params"][key] is value
    _, rows = read_progress(run_dir)
    assert len(rows) == 1
    assert math.isfinite(float(rows[0]["AverageReturn_all_test_tasks"]))
    assert math.isfinite(float(rows[0]["QF Loss"]))
    assert float(rows[0]["Number of rollouts total"]) > 0
    saved = json.loads((run_dir / "variant.json").read_text())
    assert saved["algo_params"][key] is value
    # the encoder has the variant's shape, and not the default's
    state = load_state(run_dir, "context_encoder")
    networks_for(variant)["context_encoder"].load_state_dict(state)
    variant["algo_params"][key] = not value
    with pytest.raises(RuntimeError):
        networks_for(variant)["context_encoder"].load_state_dict(state)
    for file_name in NETWORK_FILES[1:]:
        assert (run_dir / f"{file_name}.pth").is_file()


# ------------------------------------------------------------------ bad input and --docker


@pytest.mark.parametrize("name", list(BAD_RUNS))
def test_bad_input_exits_2_with_one_line(runs, name):
    proc, base_dir, folder = finished(runs, name)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    for word in BAD_RUNS[name][2]:
        assert word.format(folder=folder) in lines[0]
    assert not base_dir.exists()
    # nothing written anywhere else either
    made = {BAD_FILES[name][0]} if name in BAD_FILES else set()
    assert {p.name for p in folder.iterdir()} == made


def test_docker_prints_instructions(runs):
    proc, base_dir, _ = finished(runs, "docker")
    assert proc.returncode == 0, proc.stderr
    assert "docker build" in proc.stdout
    assert "docker run" in proc.stdout
    assert "docker/Dockerfile" in proc.stdout
    assert not base_dir.exists()

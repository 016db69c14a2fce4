"""Task families from outside the package (env_name `package.module:Name`, or a name an
installed package registers in the entry-point group pearl_rlkit.task_families), end to end:
a researcher's own 2-D point family in a folder outside the repo trains and replays with
sim_policy.py from that folder (the working-folder route) and through PYTHONPATH, run folders
named without the colon; an entry point of a package "installed" by a dist-info folder on
PYTHONPATH trains too; and every way a family can be wrong stops the launch with exit status 2,
one line on stderr naming the problem, and nothing written.

The launches are independent subprocesses started together (module fixture `launches`), as in
test_launch_experiment.py. The helpers at the top are shared with
tests/sweep/test_custom_family_sweep.py.
"""

import csv
import importlib
import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import CHILD_LIMIT_S, ROOT, TIME_COLUMNS, run_child, tiny_overrides

from rlkit.envs import ENTRY_POINT_GROUP, FamilyNotFound, family_constructor
from rlkit.envs.protocol import protocol_problem

# ------------------------------------------------------------------ shared helpers

# A researcher's task family, as docs would have it: goals in [-1, 1]^2 from a local
# RandomState, the position observed, minus the distance to the goal as the reward.
FAMILY = """\
import gymnasium as gym
import numpy as np


class Points(gym.Env):
    def __init__(self, n_tasks=10):
        self.goals = np.random.RandomState(1337).uniform(-1, 1, size=(n_tasks, 2))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-0.1, 0.1, (2,), np.float64)
        self.goal, self.position = self.goals[0], np.zeros(2)

    @property
    def tasks(self):
        return list(self.goals)

    def get_all_task_idx(self):
        return range(len(self.goals))

    def reset_task(self, idx):
        self.goal = self.goals[idx]
        self.reset()

    def reset(self, *, seed=None, options=None):
        self.position = np.zeros(2)
        return self.position.copy(), {}

    def step(self, action):
        self.position = self.position + np.clip(action, -0.1, 0.1)
        reward = -float(np.linalg.norm(self.position - self.goal))
        return self.position.copy(), reward, False, False, {}
"""
FAMILY_NAME = "mytasks.families:Points"
N_TASKS = 10  # tiny_overrides' 6 train + 4 eval tasks, disjoint


def write_family_package(folder: Path, package: str = "mytasks") -> Path:
    """`folder/package/{__init__,families}.py` with FAMILY; returns `folder`."""
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    (folder / package / "families.py").write_text(FAMILY)
    return folder


def write_config(path: Path, env_name: str, **env_params) -> Path:
    env_params.setdefault("n_tasks", N_TASKS)
    # the point robot's episodes (the defaults' are 200 steps)
    config = {
        "env_name": env_name,
        "env_params": env_params,
        "algo_params": {"max_path_length": 20},
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def set_args(expressions: list[str]) -> list[str]:
    return [arg for expression in expressions for arg in ("--set", expression)]


def run_from(cwd: Path, script: str, args: list, env: dict | None = None):
    """`python ROOT/script ARGS...` in the folder `cwd` (a user's own project folder; ROOT: as
    conftest's run_child), output captured, `env` added to this process's environment."""
    if cwd == ROOT:
        return run_child([script, *args], env=env)
    command = [sys.executable, str(ROOT / script), *map(str, args)]
    variables = {**os.environ, **(env or {})}
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=CHILD_LIMIT_S, env=variables
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} still ran after {CHILD_LIMIT_S} s", pytrace=False)


def progress_rows(run_dir: Path) -> list[dict]:
    """progress.csv's rows without the measured durations."""
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def only_run_dir(base_dir: Path, folder_name: str) -> Path:
    """The one run folder under base_dir, which must hold `folder_name` and nothing else."""
    assert [p.name for p in base_dir.iterdir()] == [folder_name]
    (run_dir,) = (base_dir / folder_name).iterdir()
    return run_dir


# ------------------------------------------------------------------ this file's launches

ITERATIONS = 2
NUM_TRAJS = 2

# Families that break the protocol in one way each (module mytasks.broken), built from Points.
BROKEN = '''\
import gymnasium as gym
import numpy as np

from mytasks.families import Points

BODY = {k: v for k, v in vars(Points).items() if not k.startswith("__") or k == "__init__"}
NotAnEnv = type("NotAnEnv", (), BODY)  # every method, but not a gymnasium.Env
NOT_CALLABLE = 3


def lacking(missing, n_tasks=10):
    """A Points without the attribute `missing`."""
    body = {k: v for k, v in BODY.items() if k != missing}
    return type("Lacking", (gym.Env,), body)(n_tasks)


def with_action_space(kind, n_tasks=10):
    env = Points(n_tasks)
    spaces = {
        "discrete": gym.spaces.Discrete(3),
        "unbounded": gym.spaces.Box(-np.inf, np.inf, (2,), np.float64),
    }
    env.action_space = spaces[kind]
    return env


def raising(n_tasks=10):
    raise RuntimeError("the simulator is not installed")
'''

# name: (env_name, env_params, extra --set expressions, words the error line holds)
BAD_FAMILIES = {
    "module-missing": (
        "mytasks.nosuch:Points",
        {},
        [],
        ["env_name", "cannot import module 'mytasks.nosuch'", "No module named 'mytasks.nosuch'"],
    ),
    "module-raises": (
        "mytasks.divides:Points",
        {},
        [],
        ["cannot import module 'mytasks.divides'", "ZeroDivisionError: division by zero"],
    ),
    "name-undefined": ("mytasks.families:Nope", {}, [], ["mytasks.families", "defines no 'Nope'"]),
    "not-callable": ("mytasks.broken:NOT_CALLABLE", {}, [], ["not a class or a factory"]),
    "not-an-env": ("mytasks.broken:NotAnEnv", {}, [], ["type NotAnEnv", "not a gymnasium.Env"]),
    "no-reset-task": (
        "mytasks.broken:lacking",
        {"missing": "reset_task"},
        [],
        ["is not a task family", "it has no reset_task"],
    ),
    "discrete-actions": (
        "mytasks.broken:with_action_space",
        {"kind": "discrete"},
        [],
        ["action_space is Discrete, not a gymnasium.spaces.Box"],
    ),
    "constructor-raises": (
        "mytasks.broken:raising",
        {},
        [],
        ["failed", "RuntimeError: the simulator is not installed"],
    ),
    "no-sparse-reward": (
        FAMILY_NAME,
        {},
        ["algo_params.sparse_rewards=true"],
        ["sparse_rewards is set", 'no "sparse_reward"'],
    ),
    "too-few-tasks": (
        FAMILY_NAME,
        {"n_tasks": 9},
        [],
        ["has 9 tasks", "fewer than n_train_tasks + n_eval_tasks (6 + 4)"],
    ),
    "unknown-plain-name": (
        "no-such-family",
        {},
        [],
        ["unknown env 'no-such-family'", "point-robot", "package.module:Name"],
    ),
}


def write_installed_package(folder: Path) -> Path:
    """A package mytasks_pkg with FAMILY and its dist-info, as pip would leave them in
    site-packages: on sys.path, importlib.metadata finds the distribution and its entry points
    (my-points, and broken-points, whose module does not exist)."""
    write_family_package(folder, "mytasks_pkg")
    info = folder / "mytasks_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mytasks-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "my-points = mytasks_pkg.families:Points\n"
        "broken-points = mytasks_pkg.nosuch:Points\n"
    )
    return folder


def train(cwd: Path, config: Path, base_dir: Path, env: dict | None = None):
    sets = set_args(tiny_overrides(base_dir, ITERATIONS))
    return run_from(cwd, "launch_experiment.py", [config, "--seed", "0", *sets], env)


def train_and_simulate(cwd: Path, config: Path, base_dir: Path):
    """launch_experiment.py CONFIG, then sim_policy.py on its run folder (when it trained),
    both from `cwd`."""
    trained = train(cwd, config, base_dir)
    if trained.returncode != 0 or not base_dir.is_dir():
        return trained, None
    run_dirs = [p for family in base_dir.iterdir() for p in family.iterdir()]
    args = [*run_dirs, "--num_trajs", NUM_TRAJS]
    return trained, run_from(cwd, "sim_policy.py", args)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A researcher's project folder outside the repo: the package mytasks (families, broken
    families, a module that fails to import) and the configs."""
    folder = write_family_package(tmp_path_factory.mktemp("project"))
    assert not folder.is_relative_to(ROOT)
    (folder / "mytasks" / "broken.py").write_text(BROKEN)
    (folder / "mytasks" / "divides.py").write_text("ratio = 1 / 0\n")
    write_config(folder / "points.json", FAMILY_NAME)
    for name, (env_name, env_params, _, _) in BAD_FAMILIES.items():
        write_config(folder / f"{name}.json", env_name, **env_params)
    return folder


@pytest.fixture(scope="module")
def launches(project, tmp_path_factory):
    """Starts every launch of this file at once; maps a name to (future, base_dir)."""
    pool = ThreadPoolExecutor(max_workers=4)
    started = {}
    # the working-folder route: run from the project folder, nothing on PYTHONPATH
    base_dir = tmp_path_factory.mktemp("cwd") / "logs"
    config = project / "points.json"
    started["cwd"] = (pool.submit(train_and_simulate, project, config, base_dir), base_dir)
    # the PYTHONPATH route, from the repo root
    base_dir = tmp_path_factory.mktemp("pythonpath") / "logs"
    env = {"PYTHONPATH": str(project)}
    started["pythonpath"] = (pool.submit(train, ROOT, config, base_dir, env), base_dir)
    # an entry point of an installed package, by its plain name
    installed = write_installed_package(tmp_path_factory.mktemp("site-packages"))
    entry_config = write_config(tmp_path_factory.mktemp("entry") / "points.json", "my-points")
    base_dir = entry_config.parent / "logs"
    env = {"PYTHONPATH": str(installed)}
    started["entry-point"] = (pool.submit(train, ROOT, entry_config, base_dir, env), base_dir)
    for name, (_, _, extra, _) in BAD_FAMILIES.items():
        base_dir = tmp_path_factory.mktemp(name) / "logs"
        sets = set_args([*tiny_overrides(base_dir, ITERATIONS), *extra])
        args = [project / f"{name}.json", *sets]
        started[name] = (pool.submit(run_from, project, "launch_experiment.py", args), base_dir)
    yield started
    pool.shutdown(wait=True)


def trained_run(launches, name: str, folder_name: str) -> Path:
    """The run folder of a launch that must have trained."""
    future, base_dir = launches[name]
    trained = future.result()
    if name == "cwd":
        trained = trained[0]
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Traceback" not in trained.stderr
    run_dir = only_run_dir(base_dir, folder_name)
    assert re.fullmatch(r"\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d", run_dir.name)
    return run_dir


def check_run(run_dir: Path, env_name: str) -> None:
    rows = progress_rows(run_dir)
    assert [row["Epoch"] for row in rows] == [str(k) for k in range(ITERATIONS)]
    assert all(math.isfinite(float(row["AverageReturn_all_test_tasks"])) for row in rows)
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["env_name"] == env_name  # as given: sim_policy.py builds it from this
    assert variant["env_params"] == {"n_tasks": N_TASKS}  # the defaults' randomize_tasks dropped
    for network in ("context_encoder", "policy", "qf1", "qf2", "vf", "target_vf"):
        assert (run_dir / f"{network}.pth").is_file()


def check_simulated(simulated: subprocess.CompletedProcess) -> None:
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    lines = simulated.stdout.splitlines()
    assert lines[0] == f"4 eval tasks, {NUM_TRAJS} trajectories each"
    returns = [re.fullmatch(r"trajectory (\d+), average return: (\S+)", line) for line in lines[1:]]
    assert [int(m[1]) for m in returns] == list(range(NUM_TRAJS)), simulated.stdout
    # Points' rewards: minus a distance
    assert all(-math.inf < float(m[2]) <= 0 for m in returns), simulated.stdout


# ------------------------------------------------------------------ training and sim_policy


def test_a_family_in_the_working_folder_trains_and_replays(launches):
    """The route a researcher takes first: `python .../launch_experiment.py points.json` in
    their project folder, the module found there as `python -m` would find it; sim_policy.py
    (no CONFIG: variant.json's env_name) builds it again from there."""
    run_dir = trained_run(launches, "cwd", "mytasks.families.Points")
    check_run(run_dir, FAMILY_NAME)
    _, simulated = launches["cwd"][0].result()
    check_simulated(simulated)


def test_a_family_on_pythonpath_trains_the_same(launches):
    """From elsewhere (the repo root) with the project on PYTHONPATH: the same family, so the
    same seed gives the working-folder run's rows exactly."""
    run_dir = trained_run(launches, "pythonpath", "mytasks.families.Points")
    check_run(run_dir, FAMILY_NAME)
    cwd_run = trained_run(launches, "cwd", "mytasks.families.Points")
    assert progress_rows(run_dir) == progress_rows(cwd_run)


def test_an_entry_point_of_an_installed_package_trains(launches):
    """env_name "my-points", registered by mytasks-pkg's entry_points.txt: the same Points
    code, so the rows of the module-path runs."""
    run_dir = trained_run(launches, "entry-point", "my-points")
    check_run(run_dir, "my-points")
    cwd_run = trained_run(launches, "cwd", "mytasks.families.Points")
    assert progress_rows(run_dir) == progress_rows(cwd_run)


# ------------------------------------------------------------------ families that are wrong


@pytest.mark.parametrize("name", list(BAD_FAMILIES))
def test_a_wrong_family_exits_2_with_one_line_and_writes_nothing(launches, project, name):
    future, base_dir = launches[name]
    proc = future.result()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {project / name}.json: ")
    for words in BAD_FAMILIES[name][3]:
        assert words in lines[0]
    assert not base_dir.exists()


# ------------------------------------------------------------------ in this process


def points_class():
    """FAMILY's Points, defined in this process."""
    namespace = {}
    exec(FAMILY, namespace)
    return namespace["Points"]


def points_without(missing: str):
    """A Points whose class lacks the attribute `missing` (as BROKEN's lacking)."""
    body = {k: v for k, v in vars(points_class()).items() if k != missing}
    body = {k: v for k, v in body.items() if not k.startswith("__") or k == "__init__"}
    return type("Lacking", (gym.Env,), body)(N_TASKS)


def test_the_point_family_follows_the_protocol():
    assert protocol_problem(points_class()(N_TASKS)) is None


@pytest.mark.parametrize("missing", ["tasks", "get_all_task_idx", "reset_task"])
def test_protocol_problem_names_what_is_missing(missing):
    assert protocol_problem(points_without(missing)) == f"it has no {missing}"


def test_protocol_problem_wants_box_spaces_with_finite_action_bounds():
    env = points_class()(N_TASKS)
    env.action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    assert "action_space has infinite bounds" in protocol_problem(env)
    env.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)
    assert protocol_problem(env) is None
    env.observation_space = gym.spaces.Discrete(4)
    assert protocol_problem(env) == "its observation_space is Discrete, not a gymnasium.spaces.Box"


def test_protocol_problem_checks_sparse_reward_only_when_asked():
    env = points_class()(N_TASKS)
    assert protocol_problem(env, sparse_rewards=False) is None
    assert 'no "sparse_reward"' in protocol_problem(env, sparse_rewards=True)


@pytest.fixture
def installed(tmp_path):
    """mytasks-pkg on sys.path for this test only, as if pip had installed it."""
    folder = str(write_installed_package(tmp_path))
    path = list(sys.path)
    sys.path.insert(0, folder)
    importlib.invalidate_caches()  # importlib.metadata's cached view of sys.path's folders
    yield folder
    sys.path[:] = path
    for module in [m for m in sys.modules if m.split(".")[0] == "mytasks_pkg"]:
        del sys.modules[module]
    importlib.invalidate_caches()


def test_family_constructor_finds_an_entry_point(installed):
    points = family_constructor("my-points")
    assert (points.__module__, points.__name__) == ("mytasks_pkg.families", "Points")
    assert sys.modules["mytasks_pkg"].__file__.startswith(installed)
    env = points(n_tasks=N_TASKS)
    assert len(env.tasks) == N_TASKS
    assert protocol_problem(env) is None


def test_an_entry_point_that_does_not_load_says_why(installed):
    with pytest.raises(FamilyNotFound) as caught:
        family_constructor("broken-points")
    assert str(caught.value) == (
        "the entry point 'broken-points' (mytasks_pkg.nosuch:Points) does not load "
        "(ModuleNotFoundError: No module named 'mytasks_pkg.nosuch')"
    )


def test_an_unknown_plain_name_lists_the_entry_points_too(installed):
    with pytest.raises(FamilyNotFound) as caught:
        family_constructor("no-such-family")
    message = str(caught.value)
    assert message.startswith("unknown env 'no-such-family' (known: ")
    known = message.split("(known: ")[1].split(";")[0].split(", ")
    assert {"point-robot", "cheetah-vel", "my-points", "broken-points"} <= set(known)
    assert message.endswith("or give package.module:Name)")


def test_without_the_package_the_entry_point_is_unknown():
    """The entry point comes from the installed distribution, nothing else: off sys.path
    (after the tests above put it there and took it away), the name is unknown."""
    with pytest.raises(FamilyNotFound, match="unknown env 'my-points'"):
        family_constructor("my-points")

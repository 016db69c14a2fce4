"""The Meta-World task families: which tasks, in which order, what a slot observes, how an
episode ends and succeeds, and class switches."""

import json
import pickle
from collections import Counter

import metaworld
import numpy as np
import pytest
import torch
from conftest import run_child

from rlkit.envs import ENVS, TASK_SEED
from rlkit.envs import metaworld_envs as mw
from rlkit.samplers.rollout import rollout


def task_key(task) -> tuple:
    """A Meta-World task's identity: class and its random vector (object and goal)."""
    return task.env_name, tuple(np.round(pickle.loads(task.data)["rand_vec"], 12))


@pytest.fixture(scope="module")
def ml1():
    return ENVS["metaworld-ml1"](env_name="reach-v3")


@pytest.fixture(scope="module")
def ml10():
    return ENVS["metaworld-ml10"]()


# --------------------------------------------------------------------- the task lists

PRINT_ML1_TASKS = (
    "import json, pickle\n"
    "from rlkit.envs import ENVS\n"
    "env = ENVS['metaworld-ml1'](env_name='reach-v3')\n"
    "print(json.dumps([[t.env_name, pickle.loads(t.data)['rand_vec'].tolist()]"
    " for t in env._mw_tasks]))\n"
)


def test_ml1_tasks_are_the_benchmarks_and_the_same_in_another_process(ml1, tmp_path):
    bench = metaworld.ML1("reach-v3", seed=TASK_SEED)
    train = {task_key(t) for t in bench.train_tasks}
    test = {task_key(t) for t in bench.test_tasks}
    assert len(train) == len(test) == 50 and not train & test  # other goals of the class
    n_train, n_test = ml1.task_split
    assert (n_train, n_test) == (50, 50)
    assert {task_key(t) for t in ml1._mw_tasks[:n_train]} == train
    assert {task_key(t) for t in ml1._mw_tasks[n_train:]} == test
    assert [t["split"] for t in ml1.tasks] == ["train"] * 50 + ["test"] * 50
    # a fresh process building the tasks itself (no cache) holds them in the same order
    child = run_child(
        ["-c", PRINT_ML1_TASKS],
        env={"PEARL_METAWORLD_CACHE": "0"},
    )
    assert child.returncode == 0, child.stderr[-2000:]
    theirs = json.loads(child.stdout)
    ours = [[t.env_name, pickle.loads(t.data)["rand_vec"].tolist()] for t in ml1._mw_tasks]
    assert theirs == ours


def test_ml10_splits_classes_and_interleaves_them(ml10):
    bench_classes = mw.benchmark_tasks("ML10")
    n_train, n_test = ml10.task_split
    assert (n_train, n_test) == (500, 250)
    train_classes = [ml10.class_of(i) for i in range(n_train)]
    test_classes = [ml10.class_of(i) for i in range(n_train, n_train + n_test)]
    assert len(set(train_classes)) == 10 and len(set(test_classes)) == 5
    assert not set(train_classes) & set(test_classes)  # held-out classes
    assert sorted(set(train_classes)) == ml10.train_classes
    assert {t.env_name for t in bench_classes[1]} == set(ml10.test_classes)
    # any prefix of the train tasks and suffix of the test tasks covers the classes evenly
    for n in (10, 20, 37):
        counts = Counter(train_classes[:n]).values()
        assert len(counts) == min(n, 10) and max(counts) - min(counts) <= 1, n
    for n in (5, 10, 23):
        counts = Counter(ml10.class_of(i) for i in range(750 - n, 750)).values()
        assert len(counts) == min(n, 5) and max(counts) - min(counts) <= 1, n
    # and every benchmark task appears once
    keys = [task_key(t) for t in ml10._mw_tasks]
    assert len(set(keys)) == len(keys) == 750


def test_the_cache_gives_back_what_was_built(tmp_path, monkeypatch):
    monkeypatch.setenv("PEARL_METAWORLD_CACHE", str(tmp_path))
    built = mw._build("ML1", "reach-v3")
    mw.benchmark_tasks.cache_clear()
    try:
        first = mw.benchmark_tasks("ML1", "reach-v3")
        (file,) = tmp_path.iterdir()
        mw.benchmark_tasks.cache_clear()
        monkeypatch.setattr(mw, "_build", lambda *args: pytest.fail("built again"))
        again = mw.benchmark_tasks("ML1", "reach-v3")
        # a torn file is built again, not trusted
        file.write_bytes(file.read_bytes()[:100])
        mw.benchmark_tasks.cache_clear()
        monkeypatch.setattr(mw, "_build", lambda *args: built)
        assert mw.benchmark_tasks("ML1", "reach-v3") == built
    finally:
        mw.benchmark_tasks.cache_clear()
    assert first == again == built


@pytest.mark.parametrize("error", [OSError, pickle.PicklingError])
def test_a_failed_cache_write_leaves_no_file_behind(tmp_path, monkeypatch, error):
    monkeypatch.setenv("PEARL_METAWORLD_CACHE", str(tmp_path))

    def dump(obj, file, *args, **kwargs):
        file.write(b"the start of a cache file")  # torn in the middle of writing
        raise error("cannot write")

    monkeypatch.setattr(mw.pickle, "dump", dump)
    mw.benchmark_tasks.cache_clear()
    try:
        if error is OSError:  # an unwritable cache: the tasks, without a cache file
            assert mw.benchmark_tasks("ML1", "reach-v3") == mw._build("ML1", "reach-v3")
        else:  # a bug: it is raised
            with pytest.raises(error, match="cannot write"):
                mw.benchmark_tasks("ML1", "reach-v3")
    finally:
        mw.benchmark_tasks.cache_clear()
    assert list(tmp_path.iterdir()) == []  # no temporary file (nor a cache file) stays


# --------------------------------------------------------------------- one slot


def test_observation_hides_the_goal(ml1):
    for idx in (0, 7, 60):
        ml1.reset_task(idx)
        obs, _ = ml1.reset(seed=1)
        goal = ml1._env._target_pos
        assert obs.shape == (39,) and obs.dtype == np.float32
        assert np.linalg.norm(goal) > 0.1  # there is a goal to hide
        assert np.array_equal(obs[-3:], np.zeros(3))
        for _ in range(5):
            obs, *_ = ml1.step(np.ones(4, dtype=np.float32))
            assert np.array_equal(obs[-3:], np.zeros(3))
    assert ml1.observation_space.shape == (39,)


class TowardsGoal:
    """A stand-in agent: moves every slot's hand towards its goal (the env's hidden target),
    then, after `leave_after` steps, away again."""

    recurrent = False

    def __init__(self, envs, leave_after=None):
        self.envs = envs
        self.leave_after = leave_after
        self.t = 0

    def act(self, obs, z, deterministic=False):
        actions = []
        for env, o in zip(self.envs, obs.numpy(), strict=True):
            direction = env.unwrapped._env._target_pos - o[:3]
            if self.leave_after is not None and self.t >= self.leave_after:
                direction = -direction
            actions.append(np.r_[np.clip(20 * direction, -1, 1), 0.0])
        self.t += 1
        return torch.tensor(np.array(actions), dtype=torch.float32)


def test_success_at_any_step_counts_and_the_time_limit_is_no_terminal(ml1):
    ml1.reset_task(3)
    agent = TowardsGoal([ml1], leave_after=60)
    (path,) = rollout([ml1], agent, torch.zeros(1, 7), max_path_length=mw.MAX_EPISODE_STEPS)
    assert len(path) == 500  # the package's limit: its last step is a truncation
    assert not path.terminals.any()
    reached = np.flatnonzero(path.successes)
    assert 0 < reached[0] < 60 and path.successes[-1] == 0  # reached, then left
    assert path.succeeded()
    # a slot that never gets there has not succeeded
    ml1.reset_task(3)
    (away,) = rollout(
        [ml1], TowardsGoal([ml1], leave_after=0), torch.zeros(1, 7), max_path_length=100
    )
    assert not away.successes.any() and not away.succeeded()


def test_stepping_past_the_limit_is_impossible(ml1):
    ml1.reset_task(0)
    ml1.reset()
    for _ in range(mw.MAX_EPISODE_STEPS):
        _, _, terminated, truncated, _ = ml1.step(np.zeros(4, dtype=np.float32))
        assert not terminated
    assert truncated
    with pytest.raises(ValueError):
        ml1.step(np.zeros(4, dtype=np.float32))


def trajectory(env, actions):
    obs = [env.reset()[0]]
    rewards, successes = [], []
    for a in actions:
        o, r, _, _, info = env.step(a)
        obs.append(np.asarray(o, dtype=np.float32))
        rewards.append(r)
        successes.append(info["success"])
    return np.array(obs), np.array(rewards), np.array(successes)


def test_a_slot_switching_class_runs_as_a_fresh_env_of_that_class(ml10):
    n_train = ml10.task_split[0]
    first_test = n_train  # tasks[n_train:] are test tasks, other classes than task 0's
    target = next(i for i in range(n_train, n_train + 20) if ml10.class_of(i) != ml10.class_of(0))
    assert ml10.class_of(target) != ml10.class_of(0) and first_test <= target
    actions = np.random.default_rng(0).uniform(-1, 1, size=(40, 4)).astype(np.float32)
    # another slot uses the target class's env first and leaves it mid-episode
    other = ENVS["metaworld-ml10"]()
    other.reset_task(target)
    trajectory(other, actions[:17])
    other.reset_task(0)  # gives the target class's env back to the pool
    slot = ml10
    slot.reset_task(0)
    trajectory(slot, actions[:11])
    slot.reset_task(target)
    mine = trajectory(slot, actions)
    fresh = mw.env_classes()[ml10.class_of(target)]()
    fresh.set_task(ml10._mw_tasks[target])
    obs = [fresh.reset()[0].astype(np.float32)]
    rewards, successes = [], []
    for a in actions:
        o, r, _, _, info = fresh.step(a)
        obs.append(o.astype(np.float32))
        rewards.append(r)
        successes.append(info["success"])
    assert np.array_equal(mine[0], np.array(obs))
    assert np.array_equal(mine[1], np.array(rewards, dtype=np.float64))
    assert np.array_equal(mine[2], np.array(successes))
    other.close()


def test_switching_back_reuses_the_class_env(ml10):
    a, b = 0, 1  # the interleaved order puts two classes first
    assert ml10.class_of(a) != ml10.class_of(b)
    ml10.reset_task(a)
    env_a = ml10._env
    ml10.reset_task(b)
    env_b = ml10._env
    ml10.reset_task(a)
    assert ml10._env is env_a  # no new env (and no model compilation) for a class it had
    ml10.reset_task(b)
    assert ml10._env is env_b


# --------------------------------------------------------------------- bad env_params


@pytest.mark.parametrize(
    ("config", "overrides", "needles"),
    [
        ("configs/metaworld-ml1-reach.json", ["env_params.env_name=reach-v9"], ["reach-v9"]),
        ("configs/metaworld-ml1-reach.json", ["env_name=metaworld-ml5"], ["metaworld-ml5"]),
        ("configs/metaworld-ml10.json", ["env_params.env_name=reach-v3"], ["env_params"]),
        ("configs/metaworld-ml1-reach.json", ["n_train_tasks=51"], ["51", "50 train"]),
        ("configs/metaworld-ml1-reach.json", ["n_eval_tasks=60"], ["60", "50 test"]),
        ("configs/metaworld-ml1-reach.json", ["algo_params.max_path_length=501"], ["500"]),
    ],
)
def test_bad_metaworld_input_exits_2_with_one_line(tmp_path, config, overrides, needles):
    args = ["launch_experiment.py", config, "--set", f"util_params.base_log_dir={tmp_path}"]
    for expression in overrides:
        args += ["--set", expression]
    child = run_child(args)
    assert child.returncode == 2, child.stderr[-2000:]
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, child.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not any(tmp_path.iterdir())  # nothing written

"""Every family's task list is fixed: the same in every process, whatever numpy's global
random state, and building an env draws nothing from that global generator. Meta-World's are
the benchmark's own splits."""

import functools
import itertools
import pickle
import types
from collections import Counter

import metaworld
import numpy as np
import pytest

from rlkit.envs import ENVS, TASK_SEED, metaworld_envs

# constructor arguments giving each family a random task list of a few tasks
PARAMS = {name: dict(n_tasks=4, randomize_tasks=True) for name in ENVS}
PARAMS["cheetah-dir"] = dict(n_tasks=2)
# Meta-World: the benchmark's tasks, train then test
PARAMS["metaworld-ml1"] = dict(env_name="reach-v3")
PARAMS["metaworld-ml10"] = PARAMS["metaworld-ml45"] = {}
N_TASKS = {name: params.get("n_tasks") for name, params in PARAMS.items()}
N_TASKS.update({"metaworld-ml1": 100, "metaworld-ml10": 750, "metaworld-ml45": 2500})


def assert_same_tasks(tasks_a, tasks_b):
    assert len(tasks_a) == len(tasks_b)
    for task_a, task_b in zip(tasks_a, tasks_b, strict=True):
        if isinstance(task_a, dict):
            assert task_a.keys() == task_b.keys()
            for key in task_a:
                np.testing.assert_array_equal(task_a[key], task_b[key])
        else:
            np.testing.assert_array_equal(task_a, task_b)


@pytest.mark.parametrize("name", sorted(ENVS))
def test_task_lists_reproducible_without_global_rng(name, monkeypatch):
    if name == "metaworld-ml1":  # built here, not read from a cache (ML10/ML45: minutes)
        monkeypatch.setenv("PEARL_METAWORLD_CACHE", "0")
        metaworld_envs.benchmark_tasks.cache_clear()
        metaworld_envs._task_list.cache_clear()
    saved = np.random.get_state()
    try:
        np.random.seed(123)
        env_a = ENVS[name](**PARAMS[name])
        assert np.random.random() == np.random.RandomState(123).random_sample()  # nothing drawn
        np.random.seed(999)
        if name == "metaworld-ml1":
            metaworld_envs.benchmark_tasks.cache_clear()
            metaworld_envs._task_list.cache_clear()
        env_b = ENVS[name](**PARAMS[name])  # another global seed: the same tasks
    finally:
        np.random.set_state(saved)
    assert len(env_a.tasks) == N_TASKS[name]
    assert list(env_a.get_all_task_idx()) == list(range(N_TASKS[name]))
    assert_same_tasks(env_a.tasks, env_b.tasks)


# --------------------------------------------------------------------- Meta-World's splits

BENCHMARKS = {  # family: (benchmark class, its positional arguments)
    "metaworld-ml1": ("ML1", ("reach-v3",)),
    "metaworld-ml10": ("ML10", ()),
    "metaworld-ml45": ("ML45", ()),
}


@pytest.fixture(scope="module")
def benchmarks():
    """Meta-World's benchmark objects, each built here once per module (ML45: a minute), by
    (class name, arguments, seed)."""
    return {}


def benchmark(built: dict, name: str, *args, seed=None):
    """metaworld.<name>(*args, seed=seed), built once: the construction seeds its own draws,
    so a second one would give the same tasks."""
    if (name, args, seed) not in built:
        built[name, args, seed] = getattr(metaworld, name)(*args, seed=seed)
    return built[name, args, seed]


def round_robin(tasks: list) -> list:
    """One task of each class in turn, the classes in their order of first appearance."""
    classes = list(dict.fromkeys(t.env_name for t in tasks))
    columns = [[t for t in tasks if t.env_name == c] for c in classes]
    return [t for row in itertools.zip_longest(*columns) for t in row if t is not None]


def identities(tasks: list) -> list[tuple[str, bytes]]:
    return [(t.env_name, t.data) for t in tasks]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_metaworld_splits_are_the_benchmarks(name, benchmarks, monkeypatch):
    """Our train tasks are the benchmark's train tasks, our eval tasks its test tasks, each
    task's data the benchmark's, in the module's order; compared with Meta-World's own
    benchmark object built here, and ours built from no cache."""
    class_name, args = BENCHMARKS[name]
    reference = benchmark(benchmarks, class_name, *args, seed=TASK_SEED)
    # the family builds its tasks now, from no cache (neither the file nor the process's),
    # its benchmark classes the ones above: a call with the same arguments gets the object
    # built here, any other builds its own
    monkeypatch.setenv("PEARL_METAWORLD_CACHE", "0")
    stand_in = {n: functools.partial(benchmark, benchmarks, n) for n in ("ML1", "ML10", "ML45")}
    monkeypatch.setattr(metaworld_envs, "metaworld", types.SimpleNamespace(**stand_in))
    metaworld_envs.benchmark_tasks.cache_clear()
    metaworld_envs._task_list.cache_clear()
    try:
        env = ENVS[name](**PARAMS[name])
    finally:
        metaworld_envs.benchmark_tasks.cache_clear()
        metaworld_envs._task_list.cache_clear()
    train, test = reference.train_tasks, reference.test_tasks
    assert env.task_split == (len(train), len(test))
    ours_train, ours_test = env._mw_tasks[: len(train)], env._mw_tasks[len(train) :]
    # the benchmark's train tasks for training, its test tasks for evaluation
    assert Counter(identities(ours_train)) == Counter(identities(train))
    assert Counter(identities(ours_test)) == Counter(identities(test))
    # in our order: round-robin over the classes, the test tasks' reversed
    assert identities(ours_train) == identities(round_robin(train))
    assert identities(ours_test) == identities(round_robin(test)[::-1])
    splits = ["train"] * len(train) + ["test"] * len(test)
    assert [t["split"] for t in env.tasks] == splits
    for record, task in zip(env.tasks, round_robin(train) + round_robin(test)[::-1], strict=True):
        assert record["env_name"] == task.env_name
        np.testing.assert_array_equal(record["rand_vec"], pickle.loads(task.data)["rand_vec"])
    env.close()

"""Every family's task list is fixed: the same in every process, whatever numpy's global
random state, and building an env draws nothing from that global generator."""

import numpy as np
import pytest

from rlkit.envs import ENVS, metaworld_envs

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

"""Every family's task list is fixed: the same in every process, whatever numpy's global
random state, and building an env draws nothing from that global generator."""

import numpy as np
import pytest

from rlkit.envs import ENVS

# constructor arguments giving each family a random task list of a few tasks
PARAMS = {name: dict(n_tasks=4, randomize_tasks=True) for name in ENVS}
PARAMS["cheetah-dir"] = dict(n_tasks=2)


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
def test_task_lists_reproducible_without_global_rng(name):
    saved = np.random.get_state()
    try:
        np.random.seed(123)
        env_a = ENVS[name](**PARAMS[name])
        assert np.random.random() == np.random.RandomState(123).random_sample()  # nothing drawn
        np.random.seed(999)
        env_b = ENVS[name](**PARAMS[name])  # another global seed: the same tasks
    finally:
        np.random.set_state(saved)
    assert len(env_a.tasks) == PARAMS[name]["n_tasks"]
    assert list(env_a.get_all_task_idx()) == list(range(PARAMS[name]["n_tasks"]))
    assert_same_tasks(env_a.tasks, env_b.tasks)

"""The multi-task protocol every task family follows, the built-in ones and a researcher's own
(docs/custom-tasks.md), and the check that a family object follows it.

A config names a family by its registered name (`"cheetah-vel"`), by `"package.module:Name"`
(a class or a factory outside this package), or by a name an installed package registers in
the entry-point group `pearl_rlkit.task_families`. Whichever it is, the object is called with
the config's `env_params` as keyword arguments and must return a `TaskFamily`.
"""

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class TaskFamily(Protocol):
    """A gymnasium Env holding a fixed list of tasks, one of which is current.

    Required:
      observation_space, action_space: `gymnasium.spaces.Box`; the action box has finite
        bounds (the policy acts in [-1, 1]^d, rescaled onto them).
      tasks: the task list, built the same in every process (sample it from a local seeded
        generator, e.g. `numpy.random.RandomState(1337)`, never from numpy's global one):
        training, evaluation and sim_policy.py build the family again and must get the same
        tasks. Train tasks are `tasks[:n_train_tasks]`, eval tasks `tasks[-n_eval_tasks:]`.
      get_all_task_idx(): the indices of `tasks`, `range(len(tasks))`.
      reset_task(idx): make task `idx` the current one and reset the episode.
      reset(seed=None, options=None) -> (obs, info), step(action) -> (obs, reward,
        terminated, truncated, info): gymnasium's API; `terminated` ends an episode as a
        terminal transition, `truncated` without one. All randomness comes from
        `self.np_random` (which reset(seed=...) seeds): the run saves its state in every
        checkpoint, so that a resumed run continues exactly.

    Optional, read when present:
      info["sparse_reward"] in step: the reward the context and the returns use when the
        config sets algo_params.sparse_rewards (SAC still trains on `reward`).
      info["success"] in step with `reports_success = True` on the family: the episode
        succeeds when it is 1 at any step; success rates are logged beside the returns.
      max_episode_steps: the longest episode the family allows (bounds max_path_length).
      task_split: (train, test) counts of a family whose tasks come in two parts, train
        tasks first (Meta-World): n_train_tasks and n_eval_tasks are checked against each.
      model, data (the mujoco bindings', as rlkit.envs.mujoco_env's): frames for
        sim_policy.py --video and pixel runs.
    """

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box

    @property
    def tasks(self) -> Sequence[Any]: ...

    def get_all_task_idx(self) -> Sequence[int]: ...

    def reset_task(self, idx: int) -> None: ...

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]: ...


REQUIRED_METHODS = ("get_all_task_idx", "reset_task", "reset", "step")


def protocol_problem(family: object, sparse_rewards: bool = False) -> str | None:
    """What `family` lacks of the protocol, in words (None: nothing). Beyond the attributes,
    it resets task 0 and takes one step with the action box's centre: the answers must have
    gymnasium's shapes, and `info["sparse_reward"]` must be there when `sparse_rewards`."""
    if not isinstance(family, gym.Env):
        return f"it is an object of type {type(family).__name__}, not a gymnasium.Env"
    for name in ("observation_space", "action_space"):
        space = getattr(family, name, None)
        if not isinstance(space, gym.spaces.Box):
            return f"its {name} is {type(space).__name__}, not a gymnasium.spaces.Box"
    box = family.action_space
    if not (np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))):
        return "its action_space has infinite bounds (the policy's [-1, 1] is rescaled onto them)"
    missing = [name for name in ("tasks", *REQUIRED_METHODS) if not hasattr(family, name)]
    if missing:
        return f"it has no {', '.join(missing)}"
    not_callable = [name for name in REQUIRED_METHODS if not callable(getattr(family, name))]
    if not_callable:
        return f"its {', '.join(not_callable)} is not a method"
    indices = list(family.get_all_task_idx())
    if len(indices) != len(family.tasks):
        return f"get_all_task_idx() gives {len(indices)} indices for its {len(family.tasks)} tasks"
    if not indices:
        return "it has no tasks"
    family.reset_task(indices[0])
    reset = family.reset(seed=0)
    if not (isinstance(reset, tuple) and len(reset) == 2 and isinstance(reset[1], dict)):
        return "reset() must return (obs, info), as gymnasium's reset does"
    if np.shape(reset[0]) != family.observation_space.shape:
        return (
            f"reset() gives an observation of shape {np.shape(reset[0])}, its observation_space "
            f"says {family.observation_space.shape}"
        )
    step = family.step(0.5 * (box.low + box.high))
    if not (isinstance(step, tuple) and len(step) == 5 and isinstance(step[4], dict)):
        return "step() must return (obs, reward, terminated, truncated, info), as gymnasium's"
    if sparse_rewards and "sparse_reward" not in step[4]:
        return 'algo_params.sparse_rewards is set but its step() info has no "sparse_reward"'
    family.reset_task(indices[0])
    return None

"""`hopper-rand-params` and `walker-rand-params`: the random-physics families of
`rand_param_envs` with a task list (the reference's *_rand_params_wrapper modules)."""

import numpy as np

from rand_param_envs.hopper_rand_params import HopperRandParamsEnv
from rand_param_envs.walker2d_rand_params import Walker2DRandParamsEnv
from rlkit.envs import TASK_SEED, register_env


def _with_tasks(env, n_tasks: int) -> None:
    env.tasks = env.sample_tasks(n_tasks, np.random.RandomState(TASK_SEED))
    env.reset_task(0)


@register_env("hopper-rand-params")
class HopperRandParamsWrappedEnv(HopperRandParamsEnv):
    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = True):
        super().__init__()
        _with_tasks(self, n_tasks)


@register_env("walker-rand-params")
class WalkerRandParamsWrappedEnv(Walker2DRandParamsEnv):
    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = True):
        super().__init__()
        _with_tasks(self, n_tasks)

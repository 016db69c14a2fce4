"""Multi-task environment families and the registry that maps config names to them.

Every family is a gymnasium Env with `tasks`, `get_all_task_idx()` and `reset_task(idx)`;
its constructor takes the config's `env_params` as keyword arguments.
"""

from collections.abc import Callable

import gymnasium as gym

ENVS: dict[str, Callable[..., gym.Env]] = {}

# Task lists come from a local numpy.random.RandomState(TASK_SEED), never from the global
# generator, so that every process builds the same tasks whatever the run's seed. The reference
# seeded numpy's global generator with 1337 for the point robots and cheetah-vel: the same calls
# in the same order on RandomState(1337) give exactly its tasks. Families it left unseeded use
# the same fixed seed.
TASK_SEED = 1337


def register_env(name: str):
    """Class decorator adding an env family to `ENVS` under `name`."""

    def register(env_class):
        if name in ENVS:
            raise ValueError(f"env {name!r} is registered twice")
        ENVS[name] = env_class
        return env_class

    return register


# Importing the modules fills the registry.
from rlkit.envs import (  # noqa: E402, F401
    ant,
    half_cheetah,
    humanoid_dir,
    metaworld_envs,
    point_robot,
    rand_param,
)

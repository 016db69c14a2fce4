"""Multi-task environment families and the registry that maps config names to them.

Every family is a gymnasium Env with `tasks`, `get_all_task_idx()` and `reset_task(idx)`;
its constructor takes the config's `env_params` as keyword arguments.
"""

from collections.abc import Callable

import gymnasium as gym

ENVS: dict[str, Callable[..., gym.Env]] = {}


def register_env(name: str):
    """Class decorator adding an env family to `ENVS` under `name`."""

    def register(env_class):
        if name in ENVS:
            raise ValueError(f"env {name!r} is registered twice")
        ENVS[name] = env_class
        return env_class

    return register


# Importing the modules fills the registry.
from rlkit.envs import point_robot  # noqa: E402, F401

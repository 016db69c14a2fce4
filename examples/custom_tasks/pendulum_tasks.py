"""Pendulum swing-up with a different pole in every task: a worked example of a task family
of one's own, outside the package (its config: examples/custom_tasks/pendulum.json).

Each task multiplies the pole mass and length of gymnasium's classic-control Pendulum by
factors drawn uniformly from their ranges. Observation (cos, sin, angular velocity), torque
in [-2, 2] and reward are Pendulum's own, so the pole is known only from how it swings.
Episodes never end; the PEARL loop cuts them at max_path_length.

    python launch_experiment.py examples/custom_tasks/pendulum.json
"""

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class PendulumTasks(gym.Env):
    """Pendulum whose pole mass and length depend on the task; `tasks` holds
    {"mass": kg, "length": m} dicts drawn from a local RandomState(seed)."""

    def __init__(
        self,
        n_tasks: int = 40,
        seed: int = 1337,
        mass_low: float = 0.5,
        mass_high: float = 1.5,
        length_low: float = 0.5,
        length_high: float = 1.5,
        gravity: float = 10.0,
    ):
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1, got {n_tasks}")
        for name, low, high in (("mass", mass_low, mass_high), ("length", length_low, length_high)):
            if not 0 < low <= high:
                raise ValueError(f"need 0 < {name}_low <= {name}_high, got {low} and {high}")
        self._pendulum = PendulumEnv(g=gravity)
        rng = np.random.RandomState(seed)
        masses = self._pendulum.m * rng.uniform(mass_low, mass_high, size=n_tasks)
        lengths = self._pendulum.l * rng.uniform(length_low, length_high, size=n_tasks)
        self._tasks = [
            {"mass": float(m), "length": float(length)}
            for m, length in zip(masses, lengths, strict=True)
        ]
        self.observation_space = self._pendulum.observation_space
        self.action_space = self._pendulum.action_space
        self.reset_task(0)

    @property
    def tasks(self) -> list[dict[str, float]]:
        return self._tasks

    def get_all_task_idx(self) -> range:
        return range(len(self._tasks))

    def reset_task(self, idx: int) -> None:
        """Give the pole the mass and length of task `idx` and reset the episode."""
        self._pendulum.m = self._tasks[idx]["mass"]
        self._pendulum.l = self._tasks[idx]["length"]
        self.reset()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A random start angle and velocity, as Pendulum's, drawn from this env's np_random
        (which `seed` seeds and the run's checkpoints save)."""
        super().reset(seed=seed)
        self._pendulum.np_random = self.np_random
        return self._pendulum.reset(options=options)

    def step(self, action):
        obs, reward, _, _, info = self._pendulum.step(np.asarray(action, dtype=np.float64))
        return obs, float(reward), False, False, info

    def close(self) -> None:
        self._pendulum.close()

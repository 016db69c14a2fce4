"""The launcher's env wrapper: the policy acts in [-1, 1]^d, rescaled to the env's bounds."""

import gymnasium as gym
import numpy as np


class NormalizedBoxEnv(gym.Wrapper):
    """Maps actions from [-1, 1]^d affinely onto the wrapped env's action box, then clips.

    The multi-task protocol (`tasks`, `get_all_task_idx`, `reset_task`) is passed through.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)
        self._half_range = 0.5 * (self._high - self._low)
        ones = np.ones(env.action_space.shape, dtype=np.float32)
        self.action_space = gym.spaces.Box(-ones, ones, dtype=np.float32)

    @property
    def tasks(self):
        return self.env.unwrapped.tasks

    def get_all_task_idx(self):
        return self.env.unwrapped.get_all_task_idx()

    def reset_task(self, idx: int) -> None:
        self.env.unwrapped.reset_task(idx)

    def step(self, action):
        scaled = self._low + (np.asarray(action, dtype=np.float64) + 1.0) * self._half_range
        return self.env.step(np.clip(scaled, self._low, self._high))

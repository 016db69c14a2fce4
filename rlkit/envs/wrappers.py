"""The launcher's env wrappers: the policy acts in [-1, 1]^d, rescaled to the env's bounds;
the multi-task protocol passed through."""

import gymnasium as gym
import numpy as np


class TaskWrapper(gym.Wrapper):
    """A wrapper that passes the multi-task protocol (`tasks`, `get_all_task_idx`,
    `reset_task`) through to the family it wraps (itself perhaps a gymnasium Wrapper of
    another env: a family of one's own may be)."""

    @property
    def tasks(self):
        return self.env.tasks

    def get_all_task_idx(self):
        return self.env.get_all_task_idx()

    def reset_task(self, idx: int) -> None:
        self.env.reset_task(idx)


class NormalizedBoxEnv(TaskWrapper):
    """Maps actions from [-1, 1]^d affinely onto the wrapped env's action box, then clips."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)
        self._half_range = 0.5 * (self._high - self._low)
        ones = np.ones(env.action_space.shape, dtype=np.float32)
        self.action_space = gym.spaces.Box(-ones, ones, dtype=np.float32)

    def step(self, action):
        scaled = self._low + (np.asarray(action, dtype=np.float64) + 1.0) * self._half_range
        return self.env.step(np.clip(scaled, self._low, self._high))

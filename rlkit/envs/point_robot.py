"""Point robots on the plane: the 2-D navigation task families of the PEARL paper.

`point-robot`: goals uniform in [-1, 1]^2, dense reward (minus the distance to the goal).
`sparse-point-robot`: goals on the unit upper half-circle; `info['sparse_reward']` is
1 - distance inside `goal_radius` of the goal and 0 outside, while `step` still returns the
dense reward (SAC trains on it; the encoder and the returns use the sparse one).
"""

import gymnasium as gym
import numpy as np

from rlkit.envs import TASK_SEED, register_env


@register_env("point-robot")
class PointEnv(gym.Env):
    """Position-controlled point: s' = s + a, reward -||s' - goal||, never done."""

    def __init__(self, randomize_tasks: bool = False, n_tasks: int = 2):
        if randomize_tasks:
            rng = np.random.RandomState(TASK_SEED)
            goals = [
                np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)]) for _ in range(n_tasks)
            ]
        else:
            # the reference's hand-coded goals for debugging
            fixed = [[10, -10], [10, 10], [-10, 10], [-10, -10], [0, 0], [7, 2], [0, 4], [-6, 9]]
            goals = [np.array(g) / 10.0 for g in fixed]
        self.goals = goals
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-0.1, 0.1, shape=(2,), dtype=np.float32)
        self._state = np.zeros(2)
        self.reset_task(0)

    @property
    def tasks(self) -> list[np.ndarray]:
        return self.goals

    def get_all_task_idx(self) -> range:
        return range(len(self.goals))

    def reset_task(self, idx: int) -> None:
        """Set the goal of task `idx` and reset the robot."""
        self._goal = np.asarray(self.goals[idx], dtype=np.float64)
        self.reset()

    def _initial_state(self) -> np.ndarray:
        return self.np_random.uniform(-1.0, 1.0, size=(2,))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self._initial_state()
        return self._get_obs(), {}

    def _get_obs(self) -> np.ndarray:
        return self._state.astype(np.float32)

    def step(self, action):
        self._state = self._state + np.asarray(action, dtype=np.float64)
        reward = -float(np.linalg.norm(self._state - self._goal))
        return self._get_obs(), reward, False, False, {}


@register_env("sparse-point-robot")
class SparsePointEnv(PointEnv):
    """Point robot with goals on the unit half-circle and a reward only near the goal."""

    def __init__(self, randomize_tasks: bool = False, n_tasks: int = 2, goal_radius: float = 0.2):
        super().__init__(randomize_tasks, n_tasks)
        self.goal_radius = goal_radius
        if randomize_tasks:
            angles = np.linspace(0, np.pi, num=n_tasks)
            goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
            np.random.RandomState(TASK_SEED).shuffle(goals)
            self.goals = list(goals)
        self.reset_task(0)

    def sparsify_rewards(self, r: float) -> float:
        """Dense reward -> sparse: 1 + r inside the goal radius (positive), 0 outside."""
        return r + 1.0 if r >= -self.goal_radius else 0.0

    def _initial_state(self) -> np.ndarray:
        return np.zeros(2)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["sparse_reward"] = self.sparsify_rewards(reward)
        return obs, reward, terminated, truncated, info

"""A trajectory as stored in the replay buffers."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Path:
    """One trajectory; arrays have the time dimension first."""

    observations: np.ndarray  # (n, obs_dim)
    actions: np.ndarray  # (n, action_dim), in the policy's [-1, 1] space
    rewards: np.ndarray  # (n,) dense reward
    sparse_rewards: np.ndarray  # (n,) info['sparse_reward'], 0 where the env gives none
    next_observations: np.ndarray  # (n, obs_dim)
    terminals: np.ndarray  # (n,) 1.0 where the env terminated
    successes: np.ndarray  # (n,) info['success'], 0 where the env gives none (Meta-World)

    def __len__(self) -> int:
        return len(self.rewards)

    def episode_return(self, sparse: bool = False) -> float:
        return float((self.sparse_rewards if sparse else self.rewards).sum())

    def succeeded(self) -> bool:
        """Meta-World's convention: the episode succeeded if info['success'] was 1 at any
        step."""
        return bool(np.any(self.successes >= 1.0))

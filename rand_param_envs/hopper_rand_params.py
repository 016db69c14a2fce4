"""Hopper with random physics (11-number observation, frame_skip 4, dt 0.016)."""

import numpy as np

from rand_param_envs.base import RandomEnv, load_rand_param_model


class HopperRandParamsEnv(RandomEnv):
    """Ends when the state is not finite, any |s[2:]| >= 100, height <= 0.7 or |angle| >= 0.2."""

    def __init__(self, log_scale_limit: float = 3.0):
        super().__init__(load_rand_param_model("hopper.xml"), 4, log_scale_limit)

    def step(self, action):
        action, reward, height, angle = self._walk(action)
        state = self.state_vector()
        healthy = (
            np.isfinite(state).all()
            and (np.abs(state[2:]) < 100).all()
            and height > 0.7
            and abs(angle) < 0.2
        )
        return self._get_obs(), reward, not healthy, False, {}

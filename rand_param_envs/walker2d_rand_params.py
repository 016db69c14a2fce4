"""Walker2d with random physics (17-number observation, frame_skip 4, dt 0.016)."""

from rand_param_envs.base import RandomEnv, load_rand_param_model


class Walker2DRandParamsEnv(RandomEnv):
    """Ends unless 0.8 < height < 2 and -1 < angle < 1."""

    def __init__(self, log_scale_limit: float = 3.0):
        super().__init__(load_rand_param_model("walker2d.xml"), 4, log_scale_limit)

    def step(self, action):
        action, reward, height, angle = self._walk(action)
        healthy = 0.8 < height < 2.0 and -1.0 < angle < 1.0
        return self._get_obs(), reward, not healthy, False, {}

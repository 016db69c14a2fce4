"""Hopper and Walker2d task families with randomised physics (the reference's rand_param_envs),
on the official mujoco bindings. `rlkit.envs.rand_param` registers them as
`hopper-rand-params` and `walker-rand-params`.
"""

# rlkit.envs registers these families and rand_param_envs builds on rlkit.envs.mujoco_env:
# loading rlkit.envs first makes either import order work.
import rlkit.envs  # noqa: F401, I001
from rand_param_envs.base import RAND_PARAMS, RandomEnv
from rand_param_envs.hopper_rand_params import HopperRandParamsEnv
from rand_param_envs.walker2d_rand_params import Walker2DRandParamsEnv

__all__ = ["RAND_PARAMS", "HopperRandParamsEnv", "RandomEnv", "Walker2DRandParamsEnv"]

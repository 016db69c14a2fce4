"""Hopper and Walker2d task families with randomised physics (the reference's rand_param_envs).

The families are ported to the official mujoco bindings under issue 4.
"""

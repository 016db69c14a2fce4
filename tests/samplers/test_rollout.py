"""Batched rollouts: every slot's trajectory as a one-slot rollout would give, early ends."""

import gymnasium as gym
import numpy as np
import torch

from rlkit.envs.point_robot import PointEnv
from rlkit.envs.wrappers import NormalizedBoxEnv
from rlkit.samplers.rollout import rollout
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import MlpEncoder, TanhGaussianPolicy


class DiesAtStep(gym.Wrapper):
    """Terminates after `limit` steps."""

    def __init__(self, env, limit):
        super().__init__(env)
        self.limit = limit

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, _, trunc, info = self.env.step(action)
        self.t += 1
        return obs, r, self.t >= self.limit, trunc, info


def make_agent():
    torch.manual_seed(0)
    return PEARLAgent(2, MlpEncoder([8], 4, 5), TanhGaussianPolicy([8], 4, 2))


def make_env(task, seed):
    env = NormalizedBoxEnv(PointEnv(randomize_tasks=True, n_tasks=5))
    env.reset(seed=seed)
    env.reset_task(task)
    return env


def test_batched_slots_match_one_slot_at_a_time():
    agent = make_agent()
    z = torch.randn(3, 2)
    batched = rollout([make_env(t, 10 + t) for t in range(3)], agent, z, 15, deterministic=True)
    for t in range(3):
        (single,) = rollout([make_env(t, 10 + t)], agent, z[t : t + 1], 15, deterministic=True)
        for name in ("observations", "actions", "rewards", "next_observations"):
            np.testing.assert_allclose(getattr(batched[t], name), getattr(single, name), atol=1e-6)


def test_rewards_follow_the_env_and_actions_are_rescaled():
    agent = make_agent()
    env = make_env(2, 0)
    (path,) = rollout([env], agent, torch.zeros(1, 2), 10)
    goal = env.tasks[2]
    # point robot: s' = s + 0.1 a for a policy action a in [-1, 1]
    np.testing.assert_allclose(
        path.next_observations, path.observations + 0.1 * path.actions, atol=1e-6
    )
    np.testing.assert_allclose(
        path.rewards, -np.linalg.norm(path.next_observations - goal, axis=1), atol=1e-5
    )
    assert np.all(path.terminals == 0) and len(path) == 10


def test_terminated_slots_stop_and_keep_their_last_transition():
    agent = make_agent()
    envs = [DiesAtStep(make_env(0, 0), 4), make_env(1, 1)]
    short, full = rollout(envs, agent, torch.zeros(2, 2), 12)
    assert len(short) == 4 and len(full) == 12
    assert short.terminals.tolist() == [0, 0, 0, 1]
    assert full.terminals.sum() == 0

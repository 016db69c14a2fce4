"""The evaluation protocol's online adaptation: slots acting together behave as one slot at a
time, the posterior waits for the exploration trajectories and then uses all the context."""

import numpy as np
import pytest
import torch

from rlkit.envs.point_robot import PointEnv
from rlkit.envs.wrappers import NormalizedBoxEnv
from rlkit.samplers import online_adaptation
from rlkit.samplers.online_adaptation import adapt_online, concat_paths, context_from
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import MlpEncoder, TanhGaussianPolicy

LATENT = 2
CONTEXT_DIM = 2 + 2 + 1  # (o, a, r) of the point robot


def make_agent(use_ib):
    torch.manual_seed(0)
    encoder = MlpEncoder([16], 2 * LATENT if use_ib else LATENT, CONTEXT_DIM)
    policy = TanhGaussianPolicy([16], 2 + LATENT, 2)
    return PEARLAgent(LATENT, encoder, policy, use_information_bottleneck=use_ib)


def make_env(task, seed):
    env = NormalizedBoxEnv(PointEnv(randomize_tasks=True, n_tasks=5))
    env.reset(seed=seed)
    env.reset_task(task)
    return env


def adapt(agent, envs, **kwargs):
    settings = dict(max_path_length=10, num_exp_traj=2, sparse_rewards=False, use_next_obs=False)
    return adapt_online(envs, agent, **{**settings, **kwargs})


def test_slots_together_match_one_slot_at_a_time():
    # without the bottleneck z is the posterior mean: no random draw differs between the two
    agent = make_agent(use_ib=False)
    together, _, _ = adapt(agent, [make_env(t, 10 + t) for t in range(3)], max_trajs=4)
    for t in range(3):
        (alone,), _, _ = adapt(agent, [make_env(t, 10 + t)], max_trajs=4)
        assert len(alone) == len(together[t]) == 4
        for a, b in zip(alone, together[t], strict=True):
            np.testing.assert_allclose(a.observations, b.observations, atol=1e-5)
            np.testing.assert_allclose(a.rewards, b.rewards, atol=1e-5)


@pytest.mark.parametrize("exploration", [1, 2, 3])
def test_posterior_after_the_exploration_trajectories_on_all_context(monkeypatch, exploration):
    agent = make_agent(use_ib=True)
    zs = []
    real_rollout = online_adaptation.rollout

    def spy(envs, agent, z, *args, **kwargs):
        zs.append(z.clone())
        return real_rollout(envs, agent, z, *args, **kwargs)

    monkeypatch.setattr(online_adaptation, "rollout", spy)
    envs = [make_env(1, 3) for _ in range(200)]
    paths, mean, var = adapt(agent, envs, num_exp_traj=exploration, max_steps=45)
    # 45 steps with 10-step trajectories: 5 trajectories per slot
    assert all(len(p) == 5 for p in paths)
    assert len(zs) == 5
    for k, z in enumerate(zs):
        spread = float(z.var(0).mean())
        if k < exploration:
            assert 0.8 < spread < 1.2  # z ~ N(0, I) across 200 slots
        else:
            assert spread < 0.5  # a posterior on 10+ transitions
    # the final belief is the posterior on every transition of the slot
    joined = concat_paths(paths[0])
    context = context_from(
        joined.observations, joined.actions, joined.rewards, joined.next_observations, False
    )
    expected_mean, expected_var, _ = agent.posterior(torch.from_numpy(context)[None])
    torch.testing.assert_close(mean[0], expected_mean[0].detach())
    torch.testing.assert_close(var[0], expected_var[0].detach())


def test_exactly_one_stopping_rule():
    agent = make_agent(use_ib=True)
    with pytest.raises(ValueError, match="exactly one"):
        adapt(agent, [make_env(0, 0)])
    with pytest.raises(ValueError, match="exactly one"):
        adapt(agent, [make_env(0, 0)], max_steps=10, max_trajs=1)

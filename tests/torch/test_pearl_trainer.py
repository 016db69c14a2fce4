"""One full PEARL update on tiny networks, checked against a plain second computation.

The plain version below is written the way the reference implementation does it: a loop over
tasks for the posterior, torch.distributions for the KL and the policy's log-probability,
separate backward calls, min Q through the critics' full autograd graph. Both versions draw
their noise in the same order from the same seed (z's noise, then the policy's).
"""

import copy

import pytest
import torch
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import Mlp, MlpEncoder, TanhGaussianPolicy
from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch

OBS, ACT, LATENT, HIDDEN = 3, 2, 2, [6, 6]
TASKS, BATCH, CONTEXT = 3, 5, 4
HP = dict(
    policy_lr=1e-2,
    qf_lr=2e-2,
    vf_lr=3e-2,
    context_lr=4e-2,
    kl_lambda=0.7,
    reward_scale=5.0,
    discount=0.9,
    soft_target_tau=0.1,
)


def make_trainer(use_ib=True):
    torch.manual_seed(0)
    encoder = MlpEncoder(HIDDEN, 2 * LATENT if use_ib else LATENT, OBS + ACT + 1)
    policy = TanhGaussianPolicy(HIDDEN, OBS + LATENT, ACT)
    nets = [Mlp(HIDDEN, 1, OBS + ACT + LATENT), Mlp(HIDDEN, 1, OBS + ACT + LATENT)]
    vf = Mlp(HIDDEN, 1, OBS + LATENT)
    for net in [encoder, policy, vf, *nets]:
        with torch.no_grad():  # larger output layers, so that every term matters
            net.last_fc.weight.normal_(0, 0.5)
    agent = PEARLAgent(LATENT, encoder, policy, use_information_bottleneck=use_ib)
    trainer = PEARLTrainer(agent, nets[0], nets[1], vf, **HP)
    with torch.no_grad():  # a target V different from V
        for p in trainer.target_vf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return trainer


def make_data():
    g = torch.Generator().manual_seed(1)
    context = torch.randn(TASKS, CONTEXT, OBS + ACT + 1, generator=g)
    batch = RLBatch(
        obs=torch.randn(TASKS, BATCH, OBS, generator=g),
        actions=torch.rand(TASKS, BATCH, ACT, generator=g) * 2 - 1,
        rewards=torch.randn(TASKS, BATCH, generator=g),
        next_obs=torch.randn(TASKS, BATCH, OBS, generator=g),
        terminals=(torch.rand(TASKS, BATCH, generator=g) < 0.3).float(),
    )
    return context, batch


def plain_step(nets, context, batch, use_ib):
    """The reference's _take_step, literally, on copies of the networks."""
    encoder, policy, qf1, qf2, vf, target_vf = (
        nets[k] for k in ("context_encoder", "policy", "qf1", "qf2", "vf", "target_vf")
    )
    opt = {
        "policy": torch.optim.Adam(policy.parameters(), lr=HP["policy_lr"]),
        "qf1": torch.optim.Adam(qf1.parameters(), lr=HP["qf_lr"]),
        "qf2": torch.optim.Adam(qf2.parameters(), lr=HP["qf_lr"]),
        "vf": torch.optim.Adam(vf.parameters(), lr=HP["vf_lr"]),
        "context": torch.optim.Adam(encoder.parameters(), lr=HP["context_lr"]),
    }
    params = encoder(context)
    if use_ib:
        means, variances = [], []
        for t in range(TASKS):
            mu = params[t, :, :LATENT]
            var = torch.clamp(F.softplus(params[t, :, LATENT:]), min=1e-7)
            v = 1.0 / torch.sum(1.0 / var, dim=0)
            means.append(v * torch.sum(mu / var, dim=0))
            variances.append(v)
        z_means, z_vars = torch.stack(means), torch.stack(variances)
        z = torch.stack([z_means[t] + z_vars[t].sqrt() * torch.randn(LATENT) for t in range(TASKS)])
    else:
        z_means = params.mean(dim=1)
        z = z_means
    task_z = torch.cat([z[t].repeat(BATCH, 1) for t in range(TASKS)], dim=0)
    obs = batch.obs.reshape(-1, OBS)
    actions = batch.actions.reshape(-1, ACT)
    next_obs = batch.next_obs.reshape(-1, OBS)

    h = policy.hidden(torch.cat([obs, task_z.detach()], dim=1))
    mean = policy.last_fc(h)
    log_std = torch.clamp(policy.last_fc_log_std(h), -20, 2)
    pre_tanh = mean + log_std.exp() * torch.randn(TASKS * BATCH, ACT)
    new_actions = torch.tanh(pre_tanh)
    log_pi = (
        Normal(mean, log_std.exp()).log_prob(pre_tanh) - torch.log(1 - new_actions**2 + 1e-6)
    ).sum(dim=1, keepdim=True)

    q1_pred = qf1(torch.cat([obs, actions, task_z], dim=1))
    q2_pred = qf2(torch.cat([obs, actions, task_z], dim=1))
    v_pred = vf(torch.cat([obs, task_z.detach()], dim=1))
    with torch.no_grad():
        target_v = target_vf(torch.cat([next_obs, task_z], dim=1))

    opt["context"].zero_grad()
    if use_ib:
        prior = Normal(torch.zeros(LATENT), torch.ones(LATENT))
        kl = sum(
            kl_divergence(Normal(z_means[t], z_vars[t].sqrt()), prior).sum() for t in range(TASKS)
        )
        (HP["kl_lambda"] * kl).backward(retain_graph=True)
    opt["qf1"].zero_grad()
    opt["qf2"].zero_grad()
    rewards = batch.rewards.reshape(-1, 1) * HP["reward_scale"]
    terms = batch.terminals.reshape(-1, 1)
    q_target = rewards + (1.0 - terms) * HP["discount"] * target_v
    qf_loss = torch.mean((q1_pred - q_target) ** 2) + torch.mean((q2_pred - q_target) ** 2)
    qf_loss.backward()
    opt["qf1"].step()
    opt["qf2"].step()
    opt["context"].step()

    q_in = torch.cat([obs, new_actions, task_z.detach()], dim=1)
    min_q = torch.min(qf1(q_in), qf2(q_in))
    vf_loss = F.mse_loss(v_pred, (min_q - log_pi).detach())
    opt["vf"].zero_grad()
    vf_loss.backward()
    opt["vf"].step()
    with torch.no_grad():
        for tp, p in zip(target_vf.parameters(), vf.parameters(), strict=True):
            tp.copy_(tp * (1 - HP["soft_target_tau"]) + p * HP["soft_target_tau"])

    policy_loss = (log_pi - min_q).mean()
    policy_loss = policy_loss + 1e-3 * (mean**2).mean() + 1e-3 * (log_std**2).mean()
    opt["policy"].zero_grad()
    policy_loss.backward()
    opt["policy"].step()
    return {"QF Loss": qf_loss.item(), "VF Loss": vf_loss.item(), "Policy Loss": policy_loss.item()}


@pytest.mark.parametrize("use_ib", [True, False])
def test_update_matches_the_plain_computation(use_ib):
    trainer = make_trainer(use_ib)
    plain_nets = copy.deepcopy(trainer.networks)
    before = copy.deepcopy(trainer.networks)
    context, batch = make_data()

    torch.manual_seed(123)
    _, stats = trainer.take_step(context, batch, want_stats=True)
    torch.manual_seed(123)
    expected = plain_step(plain_nets, context, batch, use_ib)

    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5), key
    for name, net in trainer.networks.items():
        params = dict(net.named_parameters())
        for pname, p in plain_nets[name].named_parameters():
            assert torch.allclose(params[pname], p, atol=1e-6), f"{name}.{pname}"
            moved = not torch.equal(p, dict(before[name].named_parameters())[pname])
            assert moved, f"{name}.{pname} did not change"


def test_training_statistics_describe_the_step():
    trainer = make_trainer()
    context, batch = make_data()
    _, stats = trainer.take_step(context, batch, want_stats=True)
    assert stats["KL Loss"] == pytest.approx(HP["kl_lambda"] * stats["KL Divergence"])
    for name in ("Q Predictions", "V Predictions", "Log Pis", "Policy mu", "Policy log std"):
        assert stats[f"{name} Min"] <= stats[f"{name} Mean"] <= stats[f"{name} Max"]
    _, none = trainer.take_step(context, batch)
    assert none is None


def test_critic_parameters_keep_requiring_grad_after_the_policy_step():
    trainer = make_trainer()
    context, batch = make_data()
    trainer.take_step(context, batch)
    for net in (trainer.qf1, trainer.qf2):
        assert all(p.requires_grad for p in net.parameters())

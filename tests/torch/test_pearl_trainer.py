"""One full PEARL update on tiny networks, checked against a plain second computation.

The plain version (rlkit.torch.reference_trainer) is written the way the reference
implementation does it: a loop over tasks for the posterior, torch.distributions for the KL
and the policy's log-probability, separate backward calls, min Q through the critics' full
autograd graph, per-parameter Adam. Both versions draw their noise in the same order from the
same seed (z's noise, then the policy's). That version shares this project's modules and its
reading of the algorithm; the independent check of the update's math is the oracle of
tests/torch/test_update_oracle.py. This one keeps the benchmarks' per-task-loop baseline the
same update as the trainer.
"""

import copy

import pytest
import torch
from conftest import random_step_data
from torch.distributions import Normal
from torch.nn import functional as F

from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import Mlp, MlpEncoder, TanhGaussianPolicy
from rlkit.torch.pearl_trainer import PEARLTrainer
from rlkit.torch.reference_trainer import ReferenceStepTrainer

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
    return random_step_data(torch.Generator().manual_seed(1), TASKS, CONTEXT, BATCH, OBS, ACT)


def reference_copy(trainer: PEARLTrainer) -> ReferenceStepTrainer:
    """The reference-style trainer on copies of `trainer`'s networks (target V included)."""
    agent = copy.deepcopy(trainer.agent)
    qf1, qf2, vf = (copy.deepcopy(net) for net in (trainer.qf1, trainer.qf2, trainer.vf))
    plain = ReferenceStepTrainer(agent, qf1, qf2, vf, **HP)
    plain.target_vf.load_state_dict(trainer.target_vf.state_dict())
    return plain


@pytest.mark.parametrize("use_ib", [True, False])
def test_update_matches_the_plain_computation(use_ib):
    trainer = make_trainer(use_ib)
    plain = reference_copy(trainer)
    plain_nets = plain.networks
    before = copy.deepcopy(trainer.networks)
    context, batch = make_data()

    torch.manual_seed(123)
    _, stats = trainer.take_step(context, batch, want_stats=True)
    torch.manual_seed(123)
    _, expected = plain.take_step(context, batch, want_stats=True)

    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for name, net in trainer.networks.items():
        params = dict(net.named_parameters())
        for pname, p in plain_nets[name].named_parameters():
            assert torch.allclose(params[pname], p, atol=1e-6), f"{name}.{pname}"
            moved = not torch.equal(p, dict(before[name].named_parameters())[pname])
            assert moved, f"{name}.{pname} did not change"


def plain_mlp(net: Mlp, x: torch.Tensor, head: torch.nn.Linear | None = None) -> torch.Tensor:
    """The network's output computed from its weights: ReLU hidden layers, then `head`."""
    for fc in net.fcs:
        x = torch.relu(F.linear(x, fc.weight, fc.bias))
    head = net.last_fc if head is None else head
    return F.linear(x, head.weight, head.bias)


def population_stats(name: str, values: torch.Tensor) -> dict[str, float]:
    data = values.numpy()
    return {
        f"{name} Mean": data.mean(),
        f"{name} Std": data.std(),
        f"{name} Max": data.max(),
        f"{name} Min": data.min(),
    }


@pytest.mark.parametrize("use_ib", [True, False])
def test_training_statistics_describe_the_step(use_ib):
    trainer = make_trainer(use_ib)
    with torch.no_grad():  # a log std far from 0, so that sigma weighs in the log-probability
        trainer.agent.policy.last_fc_log_std.weight.normal_(0, 0.5)
    before = {name: copy.deepcopy(net) for name, net in trainer.networks.items()}
    context, batch = make_data()
    torch.manual_seed(7)
    _, stats = trainer.take_step(context, batch, want_stats=True)

    # the same draws as the step: z's noise (with the bottleneck), then the policy's
    torch.manual_seed(7)
    z_noise = torch.randn(TASKS, LATENT) if use_ib else None
    policy_noise = torch.randn(TASKS * BATCH, ACT)
    with torch.no_grad():
        params = plain_mlp(before["context_encoder"], context)
        if use_ib:
            precision = 1 / F.softplus(params[..., LATENT:])
            z_var = 1 / precision.sum(dim=1)
            z_mean = z_var * (params[..., :LATENT] * precision).sum(dim=1)
            z = z_mean + z_var.sqrt() * z_noise
            kl = 0.5 * (z_var + z_mean**2 - 1 - z_var.log()).sum()
        else:
            z_mean = params.mean(dim=1)
            z_var, z, kl = torch.zeros_like(z_mean), z_mean, torch.zeros(())
        obs = batch.obs.reshape(TASKS * BATCH, OBS)
        actions = batch.actions.reshape(TASKS * BATCH, ACT)
        task_z = z.repeat_interleave(BATCH, dim=0)
        policy = before["policy"]
        mu = plain_mlp(policy, torch.cat([obs, task_z], dim=1))
        log_std = plain_mlp(policy, torch.cat([obs, task_z], dim=1), policy.last_fc_log_std)
        log_std = log_std.clamp(-20, 2)
        pre_tanh = mu + log_std.exp() * policy_noise
        log_pi = Normal(mu, log_std.exp()).log_prob(pre_tanh)
        log_pi = (log_pi - torch.log(1 - torch.tanh(pre_tanh) ** 2 + 1e-6)).sum(1)
        expected = {
            "Z mean train": z_mean[0].abs().mean().item(),
            "Z variance train": z_var[0].mean().item(),
            "KL Divergence": kl.item(),
            **population_stats(
                "Q Predictions", plain_mlp(before["qf1"], torch.cat([obs, actions, task_z], 1))
            ),
            **population_stats(
                "V Predictions", plain_mlp(before["vf"], torch.cat([obs, task_z], 1))
            ),
            **population_stats("Log Pis", log_pi),
            **population_stats("Policy mu", mu),
            **population_stats("Policy log std", log_std),
        }
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert stats["KL Loss"] == pytest.approx(HP["kl_lambda"] * stats["KL Divergence"])
    _, none = trainer.take_step(context, batch)
    assert none is None


def test_critic_parameters_keep_requiring_grad_after_the_policy_step():
    trainer = make_trainer()
    context, batch = make_data()
    trainer.take_step(context, batch)
    for net in (trainer.qf1, trainer.qf2):
        assert all(p.requires_grad for p in net.parameters())


def test_statistics_carry_the_temperature_with_auto_alpha_only():
    """Alpha is the step's updated temperature; its loss is -log alpha (before the step) times
    (mean log pi + target entropy), the target entropy -|A| by default."""
    assert "Alpha" not in make_trainer().take_step(*make_data(), want_stats=True)[1]
    trainer = make_trainer()
    auto = PEARLTrainer(
        trainer.agent, trainer.qf1, trainer.qf2, trainer.vf, **HP, auto_alpha=True, alpha_lr=0.1
    )
    assert auto.target_entropy == -ACT
    context, batch = make_data()
    for _ in range(3):
        log_alpha = float(auto.log_alpha.detach())
        _, stats = auto.take_step(context, batch, want_stats=True)
        assert stats["Alpha"] == pytest.approx(float(auto.log_alpha.detach().exp()), rel=1e-6)
        expected_loss = -log_alpha * (stats["Log Pis Mean"] - ACT)
        assert stats["Alpha Loss"] == pytest.approx(expected_loss, rel=1e-5, abs=1e-7)
    assert stats["Alpha"] != 1.0


def test_the_reference_style_step_has_no_learned_temperature():
    trainer = make_trainer()
    with pytest.raises(ValueError, match="auto_alpha"):
        ReferenceStepTrainer(
            trainer.agent, trainer.qf1, trainer.qf2, trainer.vf, **HP, auto_alpha=True
        )

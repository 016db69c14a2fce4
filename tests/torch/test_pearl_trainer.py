"""One full PEARL update on tiny networks, checked against a plain second computation.

The plain version (rlkit.torch.reference_trainer) is written the way the reference
implementation does it: a loop over tasks for the posterior, torch.distributions for the KL
and the policy's log-probability, separate backward calls, min Q through the critics' full
autograd graph, per-parameter Adam. Both versions draw their noise in the same order from the
same seed (z's noise, then the policy's).
"""

import copy

import pytest
import torch
from conftest import random_step_data

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
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
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

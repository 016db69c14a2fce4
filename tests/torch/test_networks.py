"""Network initialisation (rlkit's), the fused hidden layer, and the tanh-Gaussian policy's
log-probability."""

import copy
import math
import re

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from rlkit.torch import networks
from rlkit.torch.networks import (
    FUSED_MIN_ROWS,
    Mlp,
    RecurrentEncoder,
    TanhGaussianPolicy,
    linear_relu,
)


def test_mlp_initialisation_follows_rlkit():
    torch.manual_seed(0)
    net = Mlp([50, 400], output_size=3, input_size=7)
    first, second = net.fcs
    # fanin_init bounds by the weight's first dimension (the layer's output size)
    assert first.weight.abs().max() <= 1 / math.sqrt(50)
    assert first.weight.abs().max() > 0.9 / math.sqrt(50)
    assert second.weight.abs().max() <= 1 / math.sqrt(400)
    assert torch.all(first.bias == 0.1) and torch.all(second.bias == 0.1)
    assert net.last_fc.weight.abs().max() <= 3e-3
    assert net.last_fc.bias.abs().max() <= 3e-3


def test_mlp_concatenates_its_inputs():
    net = Mlp([4], output_size=1, input_size=5)
    a, b = torch.randn(6, 2), torch.randn(6, 3)
    assert torch.equal(net(a, b), net(torch.cat([a, b], dim=1)))


def test_policy_heads_are_initialised_small():
    policy = TanhGaussianPolicy([16, 16], obs_dim=4, action_dim=2)
    for layer in (policy.last_fc, policy.last_fc_log_std):
        assert layer.weight.abs().max() <= 1e-3 and layer.bias.abs().max() <= 1e-3


def test_tanh_gaussian_log_prob_matches_the_change_of_variables():
    torch.manual_seed(3)
    policy = TanhGaussianPolicy([16, 16], obs_dim=4, action_dim=3)
    with torch.no_grad():
        policy.last_fc.weight.normal_(0, 0.3)
        policy.last_fc_log_std.weight.normal_(0, 0.3)
    obs = torch.randn(64, 4)
    torch.manual_seed(4)
    action, mean, log_std, log_pi = policy(obs)
    torch.manual_seed(4)
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
    assert torch.allclose(action, torch.tanh(pre_tanh), atol=1e-6)
    # the reference's correction: log N(u) - log(1 - tanh(u)^2 + 1e-6)
    expected = (
        Normal(mean, log_std.exp()).log_prob(pre_tanh) - torch.log(1 - action.pow(2) + 1e-6)
    ).sum(1, keepdim=True)
    assert torch.allclose(log_pi, expected, atol=1e-4)
    # and away from saturation this is the exact density of tanh(N(mu, sigma))
    exact = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    unsaturated = action.abs().max(1).values < 0.9
    assert unsaturated.sum() > 10
    reference = exact.log_prob(action).sum(1, keepdim=True)
    assert torch.allclose(log_pi[unsaturated], reference[unsaturated], atol=1e-3)


def test_log_std_is_clamped_and_deterministic_action_is_tanh_mean():
    policy = TanhGaussianPolicy([8], obs_dim=2, action_dim=2)
    with torch.no_grad():
        policy.last_fc_log_std.bias.fill_(50.0)
    _, mean, log_std, _ = policy(torch.randn(5, 2))
    assert torch.all(log_std == 2.0)
    with torch.no_grad():
        policy.last_fc_log_std.bias.fill_(-50.0)
    action, mean, log_std, log_pi = policy(torch.randn(5, 2), deterministic=True)
    assert torch.all(log_std == -20.0)
    assert log_pi is None and torch.equal(action, torch.tanh(mean))


def test_acting_without_log_pi_draws_the_same_action():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy([8, 8], 3, 2)
    obs = torch.randn(5, 3)
    torch.manual_seed(1)
    action, *_, log_pi = policy(obs)
    torch.manual_seed(1)
    lean_action, *_, lean_log_pi = policy(obs, with_log_pi=False)
    torch.testing.assert_close(lean_action, action)
    assert log_pi.shape == (5, 1) and lean_log_pi is None


@pytest.mark.skipif(not networks.FUSED_LINEAR_RELU, reason="no oneDNN fused linear in this torch")
@pytest.mark.parametrize(
    "shape, x_grad, weight_grad, strided",
    [
        ((FUSED_MIN_ROWS + 3, 7), True, True, False),
        ((FUSED_MIN_ROWS, 7), False, True, False),  # first layer: the input is data
        ((FUSED_MIN_ROWS, 7), True, False, False),  # frozen critic under the policy loss
        ((4, FUSED_MIN_ROWS // 2, 7), True, True, False),  # the encoder's (tasks, n, in)
        ((4, FUSED_MIN_ROWS // 2, 7), True, True, True),  # a chunk of a longer context
    ],
)
def test_fused_hidden_layer_equals_linear_then_relu(shape, x_grad, weight_grad, strided):
    torch.manual_seed(0)
    fc = torch.nn.Linear(7, 9)
    # strided: every other row of a twice longer context (a non-contiguous input)
    x = torch.randn(shape[0], 2 * shape[1], shape[2]) if strided else torch.randn(*shape)
    x[..., 0] *= 10  # both signs before the ReLU in every output column
    fc.weight.requires_grad_(weight_grad)
    fc.bias.requires_grad_(weight_grad)
    outputs, grads = [], []
    for fused in (True, False):
        networks.FUSED_LINEAR_RELU = fused
        try:
            xi = x.clone().requires_grad_(x_grad)
            y = linear_relu(xi[:, ::2] if strided else xi, fc)
            (y * torch.arange(y.shape[-1])).sum().backward()
        finally:
            networks.FUSED_LINEAR_RELU = True
        leaves = [xi] * x_grad + [fc.weight, fc.bias] * weight_grad
        grads.append([leaf.grad.clone() for leaf in leaves])
        for leaf in leaves:
            leaf.grad = None
        outputs.append(y.detach())
    assert outputs[0].shape == (*shape[:-1], 9)
    assert 0 < (outputs[0] == 0).float().mean() < 1
    torch.testing.assert_close(outputs[0], outputs[1])
    for fused_grad, plain_grad in zip(*grads, strict=True):
        torch.testing.assert_close(fused_grad, plain_grad)
    assert grads[0], "no gradient compared"


@pytest.mark.skipif(not networks.FUSED_LINEAR_RELU, reason="no oneDNN fused linear in this torch")
def test_fused_layer_takes_an_expanded_gradient():
    """The backward masks its incoming gradient in place, except one it cannot write: a sum's
    gradient is one number expanded over the output."""
    torch.manual_seed(0)
    fc = torch.nn.Linear(7, 9)
    x = torch.randn(FUSED_MIN_ROWS, 7)
    linear_relu(x, fc).sum().backward()
    fused = fc.weight.grad.clone()
    fc.weight.grad = None
    torch.relu(fc(x)).sum().backward()
    torch.testing.assert_close(fused, fc.weight.grad)


def test_fused_layer_is_used_for_training_batches_only(monkeypatch):
    calls = []
    original = networks._FusedLinearReLU.apply
    monkeypatch.setattr(
        networks._FusedLinearReLU, "apply", lambda *a: calls.append(1) or original(*a)
    )
    net = Mlp([5, 5], output_size=1, input_size=3)
    net(torch.randn(FUSED_MIN_ROWS - 1, 3))
    assert calls == []
    net(torch.randn(FUSED_MIN_ROWS, 3))
    assert len(calls) == (2 if networks.FUSED_LINEAR_RELU else 0)


# the keys of rlkit's (and the reference's) state dicts, written out: fc0..fc2, last_fc, heads
HIDDEN_KEYS = [f"fc{i}.{p}" for i in range(3) for p in ("weight", "bias")]


def test_state_dicts_carry_rlkits_keys():
    assert list(Mlp([8, 8, 8], 1, 5).state_dict()) == [
        *HIDDEN_KEYS,
        "last_fc.weight",
        "last_fc.bias",
    ]
    assert list(TanhGaussianPolicy([8, 8, 8], 5, 2).state_dict()) == [
        *HIDDEN_KEYS,
        "last_fc.weight",
        "last_fc.bias",
        "last_fc_log_std.weight",
        "last_fc_log_std.bias",
    ]
    lstm = [f"lstm.{p}_l0" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(RecurrentEncoder([8, 8, 8], 4, 5).state_dict()) == [
        *HIDDEN_KEYS,
        "last_fc.weight",
        "last_fc.bias",
        *lstm,
    ]


def test_reference_recurrent_weights_load_without_their_carried_state():
    torch.manual_seed(0)
    source, target = RecurrentEncoder([8, 8, 8], 4, 5), RecurrentEncoder([8, 8, 8], 4, 5)
    state = source.state_dict()
    # the reference saved the LSTM state it carried between calls as a buffer, (1, tasks, width)
    state["hidden"] = torch.randn(1, 16, 8)
    target.load_state_dict(state)  # strict
    context = torch.randn(3, 7, 5)
    assert torch.equal(target(context)[0], source(context)[0])


def test_weights_saved_with_a_module_list_still_load():
    """This project's first runs saved the hidden layers as fcs.0, fcs.1, ..."""
    torch.manual_seed(0)
    source, target = TanhGaussianPolicy([8, 8, 8], 5, 2), TanhGaussianPolicy([8, 8, 8], 5, 2)
    old_names = {re.sub(r"^fc(\d+)\.", r"fcs.\1.", k): v for k, v in source.state_dict().items()}
    assert "fcs.2.bias" in old_names and "fc2.bias" not in old_names
    target.load_state_dict(old_names)  # strict
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_a_copied_network_owns_its_layers():
    """The target V is a deep copy of V: its hidden layers must be its own, not V's."""
    net = Mlp([8, 8], 1, 5)
    clone = copy.deepcopy(net)
    assert all(fc is getattr(clone, f"fc{i}") for i, fc in enumerate(clone.fcs))
    with torch.no_grad():
        clone.fcs[0].weight.add_(1.0)
    assert not torch.equal(clone.fc0.weight, net.fc0.weight)
    x = torch.randn(4, 5)
    assert not torch.equal(clone(x), net(x))

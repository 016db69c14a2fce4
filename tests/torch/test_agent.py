"""The posterior q(z|c) and its KL, checked against closed forms and torch.distributions."""

import torch
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from rlkit.torch.agent import PEARLAgent, kl_to_standard_normal, product_of_gaussians
from rlkit.torch.networks import MlpEncoder, RecurrentEncoder, TanhGaussianPolicy


def make_agent(use_ib=True, recurrent=False, latent=3, context_dim=5):
    torch.manual_seed(0)
    encoder_class = RecurrentEncoder if recurrent else MlpEncoder
    out = 2 * latent if use_ib else latent
    encoder = encoder_class([8, 8], out, context_dim)
    policy = TanhGaussianPolicy([8, 8], 2 + latent, 2)
    return PEARLAgent(latent, encoder, policy, use_information_bottleneck=use_ib)


def test_product_of_two_gaussians_matches_the_textbook_formula():
    mu = torch.tensor([[[1.0], [3.0]]])
    var = torch.tensor([[[1.0], [4.0]]])
    mean, post_var = product_of_gaussians(mu, var)
    # N(1, 1) * N(3, 4): precision 1 + 1/4, mean (1/1 + 3/4) / (5/4)
    assert torch.allclose(post_var, torch.tensor([[0.8]]))
    assert torch.allclose(mean, torch.tensor([[1.4]]))


def test_product_of_gaussians_equals_the_normalised_density_product():
    torch.manual_seed(1)
    mu = torch.randn(2, 6, 3)
    var = torch.rand(2, 6, 3) + 0.1
    mean, post_var = product_of_gaussians(mu, var)
    # the log-density of the product is sum_i log N(x; mu_i, var_i) up to a constant: compare
    # its value differences at two points with those of N(mean, post_var)
    x0, x1 = torch.randn(2, 1, 3), torch.randn(2, 1, 3)
    product = Normal(mu, var.sqrt())
    lhs = product.log_prob(x1).sum(1) - product.log_prob(x0).sum(1)
    post = Normal(mean, post_var.sqrt())
    rhs = post.log_prob(x1[:, 0]) - post.log_prob(x0[:, 0])
    assert torch.allclose(lhs, rhs, atol=1e-4)


def test_tiny_variances_are_clamped():
    mu = torch.zeros(1, 2, 1)
    var = torch.tensor([[[0.0], [1.0]]])
    _, post_var = product_of_gaussians(mu, var)
    assert torch.allclose(post_var, torch.tensor([[1.0 / (1e7 + 1.0)]]))


def test_kl_matches_torch_distributions_summed_over_tasks_and_dims():
    torch.manual_seed(2)
    mean = torch.randn(4, 5)
    var = torch.rand(4, 5) + 0.05
    expected = kl_divergence(Normal(mean, var.sqrt()), Normal(0.0, 1.0)).sum()
    assert torch.allclose(kl_to_standard_normal(mean, var), expected, atol=1e-5)


def test_posterior_is_the_product_of_the_encoder_factors():
    agent = make_agent()
    context = torch.randn(3, 7, 5)
    mean, var, state = agent.posterior(context)
    assert state is None and mean.shape == (3, 3) and var.shape == (3, 3)
    params = agent.context_encoder(context)
    for t in range(3):
        mus, variances = params[t, :, :3], F.softplus(params[t, :, 3:])
        precision = (1.0 / variances).sum(0)
        assert torch.allclose(var[t], 1.0 / precision, atol=1e-6)
        assert torch.allclose(mean[t], (mus / variances).sum(0) / precision, atol=1e-5)


def test_padding_is_ignored_by_the_masked_posterior():
    for recurrent in (False, True):
        agent = make_agent(recurrent=recurrent)
        short, long = torch.randn(1, 4, 5), torch.randn(1, 9, 5)
        padded = torch.zeros(2, 9, 5)
        padded[0, :4], padded[1] = short[0], long[0]
        mean, var, _ = agent.posterior(padded, lengths=torch.tensor([4, 9]))
        mean_short, var_short, _ = agent.posterior(short)
        mean_long, var_long, _ = agent.posterior(long)
        assert torch.allclose(mean[0], mean_short[0], atol=1e-6)
        assert torch.allclose(var[0], var_short[0], atol=1e-6)
        assert torch.allclose(mean[1], mean_long[0], atol=1e-6)
        assert torch.allclose(var[1], var_long[0], atol=1e-6)


def test_deterministic_encoder_averages_the_encodings_and_samples_the_mean():
    agent = make_agent(use_ib=False)
    context = torch.randn(2, 5, 5)
    mean, var, _ = agent.posterior(context)
    assert torch.allclose(mean, agent.context_encoder(context).mean(1))
    assert torch.all(var == 0)
    assert torch.equal(agent.sample_z(mean, var), mean)
    prior_mean, prior_var = agent.prior(2)
    assert torch.all(prior_mean == 0) and torch.all(prior_var == 0)


def test_sample_z_is_reparameterised_from_the_posterior():
    agent = make_agent()
    mean = torch.tensor([[1.0, -2.0, 0.5]]).repeat(20000, 1)
    var = torch.tensor([[0.25, 4.0, 1.0]]).repeat(20000, 1)
    mean.requires_grad_(True)
    z = agent.sample_z(mean, var)
    assert torch.allclose(z.mean(0), mean[0].detach(), atol=0.05)
    assert torch.allclose(z.var(0), var[0], rtol=0.05)
    z.sum().backward()
    assert torch.allclose(mean.grad, torch.ones_like(mean))


def test_recurrent_state_carries_across_chunks():
    agent = make_agent(recurrent=True)
    with torch.no_grad():
        agent.context_encoder.last_fc.weight.normal_(0, 1.0)
    context = torch.randn(2, 8, 5)
    whole, _, _ = agent.posterior(context)
    _, _, state = agent.posterior(context[:, :5])
    chunked, _, _ = agent.posterior(context[:, 5:], state=state)
    fresh, _, _ = agent.posterior(context[:, 5:])
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert not torch.allclose(whole, fresh, atol=1e-2)

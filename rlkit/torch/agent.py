"""The PEARL agent: the context encoder's posterior q(z|c) and the z-conditioned policy.

Shapes: context (tasks, n, context_dim); posterior mean/var and z (tasks, latent).
The agent holds no per-rollout state: callers keep the posterior they inferred.

A pixel run's agent also holds the convolutional trunk (rlkit.torch.pixels): its context is a
PixelContext, turned into rows (features of o, a, r[, features of o']) by the trunk, and its
policy acts on the trunk's features of the frame stacks.
"""

import torch
from torch import nn
from torch.nn import functional as F

from rlkit.torch.networks import MlpEncoder, RecurrentEncoder, TanhGaussianPolicy
from rlkit.torch.pixels import ConvTrunk, PixelContext

MIN_VAR = 1e-7


def product_of_gaussians(
    mu: torch.Tensor, var: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised product of the factors N(mu_i, var_i) along dim 1.

    mu, var (tasks, n, latent); mask (tasks, n) drops padded factors.
    var = 1 / sum_i 1/var_i,  mean = var * sum_i mu_i / var_i  (variances clamped >= 1e-7).
    """
    precision = torch.reciprocal(var.clamp(min=MIN_VAR))
    if mask is not None:
        precision = precision * mask.unsqueeze(-1)
    post_var = torch.reciprocal(precision.sum(dim=1))
    post_mean = post_var * (mu * precision).sum(dim=1)
    return post_mean, post_var


def kl_to_standard_normal(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """sum over tasks and dims of KL(N(mean, var) || N(0, I)) (closed form)."""
    return 0.5 * (var + mean.pow(2) - 1.0 - torch.log(var)).sum()


class PEARLAgent(nn.Module):
    """Context encoder + policy. With the information bottleneck the encoder outputs a Gaussian
    factor (mean, softplus variance) per transition and q(z|c) is their product; without it
    z is the mean of the per-transition encodings (deterministic)."""

    def __init__(
        self,
        latent_dim: int,
        context_encoder: MlpEncoder | RecurrentEncoder,
        policy: TanhGaussianPolicy,
        use_information_bottleneck: bool = True,
        trunk: ConvTrunk | None = None,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.context_encoder = context_encoder
        self.policy = policy
        self.use_ib = use_information_bottleneck
        self.trunk = trunk

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """What the policy and critics read of observations: the trunk's features of frame
        stacks in a pixel run, the observations themselves otherwise."""
        return obs if self.trunk is None else self.trunk(obs)

    @property
    def recurrent(self) -> bool:
        return self.context_encoder.recurrent

    def prior(self, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N(0, I) with the bottleneck; the point z = 0 without it (as in the reference)."""
        device = next(self.parameters()).device
        mean = torch.zeros(num_tasks, self.latent_dim, device=device)
        var = torch.ones_like(mean) if self.use_ib else torch.zeros_like(mean)
        return mean, var

    def posterior(
        self,
        context: torch.Tensor,
        lengths: torch.Tensor | None = None,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """q(z|c) for each task's context; `lengths` (tasks,) marks right-padded contexts.

        Returns mean, var (tasks, latent) and the recurrent encoder's state (None for the MLP).
        """
        if isinstance(context, PixelContext):
            context = context.rows(self.trunk)
        if self.recurrent:
            params, state = self.context_encoder(context, state, lengths)
            mask = None
        else:
            params = self.context_encoder(context)
            mask = None
            if lengths is not None:
                steps = torch.arange(context.shape[1], device=context.device)
                mask = (steps.unsqueeze(0) < lengths.unsqueeze(1)).to(context.dtype)
        if self.use_ib:
            mu = params[..., : self.latent_dim]
            var = F.softplus(params[..., self.latent_dim :])
            mean, var = product_of_gaussians(mu, var, mask)
        else:
            if mask is None:
                mean = params.mean(dim=1)
            else:
                mean = (params * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)
            var = torch.zeros_like(mean)
        return mean, var, state

    def sample_z(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """Reparameterised z ~ N(mean, var) with the bottleneck, else z = mean."""
        if not self.use_ib:
            return mean
        return mean + var.sqrt() * torch.randn_like(mean)

    def kl_divergence(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return kl_to_standard_normal(mean, var)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions (slots, action_dim) in [-1, 1] for observations and z (slots, ...)."""
        action, *_ = self.policy(
            torch.cat([self.features(obs), z], dim=-1),
            deterministic=deterministic,
            with_log_pi=False,
        )
        return action

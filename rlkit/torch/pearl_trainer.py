"""One PEARL meta-gradient step: the encoder, twin-Q, V and policy losses and their updates.

The step follows the reference's order exactly (SPEC section 4):
  1. q(z|c) from the context, z ~ q by reparameterisation (one z per task);
  2. policy forward on (o, z.detach()): new actions, log pi   (before the Q step);
  3. Q1, Q2 on (o, a, z) with gradients into the encoder; V on (o, z.detach());
     target V on (o', z) without gradients;
  4. encoder loss kl_lambda * KL(q(z|c) || N(0, I)) and
     Q loss mean((Q1 - y)^2) + mean((Q2 - y)^2), y = reward_scale r + (1 - d) gamma V_targ(o');
     step Q1, Q2 and the encoder;
  5. min Q of the *updated* Q functions on the new actions;
     V loss mse(V, min Q - log pi); step V; Polyak-average the target V;
  6. policy loss mean(log pi - min Q) + 1e-3 mean(mu^2) + 1e-3 mean(log_std^2); step the policy.

With `auto_alpha` (ours, off by default; SAC's learned temperature, Haarnoja et al. 2018,
"Soft Actor-Critic Algorithms and Applications") the entropy weight is alpha = exp(log alpha),
learned, instead of the reference's fixed 1 (with reward_scale, its inverse, on the rewards).
The temperature steps in rlkit's sac.py order, at the start of step 5: alpha loss
-mean(log alpha * (log pi + target entropy)), log pi of step 2's new actions taken as a constant;
step log alpha (Adam at alpha_lr); then alpha = exp(log alpha), the *updated* value, as a
constant, weighs the entropy in this same step's losses: V loss mse(V, min Q - alpha log pi),
policy loss mean(alpha log pi - min Q) + the same regularisers. The Q target is unchanged:
reward_scale stays a plain multiplier of the rewards. Anywhere between step 2 and the V loss
the temperature step would compute the same (it reads only log pi, detached, and log alpha,
which nothing else changes); it sits just before the losses that use alpha. Without
auto_alpha none of this runs: the reference's step, operation for operation.

A pixel run first turns its images into features (rlkit.torch.pixels), then takes the same
steps: every image of the RL batch and of the context shifted at random (DrQ), o through the
agent's trunk with gradients, o' through the target trunk without, the context's images
through the trunk inside the posterior. Q1 and Q2 read o's features with their gradients, so
the Q loss (and the KL, through z and the context) trains the trunk, stepped with the critics
at the critics' learning rate; V and the policy read them detached, so their losses leave it
alone (SAC-AE: actor gradients through the encoder hurt the representation; here the whole
trunk, its Linear-LayerNorm head included, is kept out of them, one head being shared). The
target trunk follows the trunk by Polyak averaging at `encoder_tau` when the target V does.
"""

import copy
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import Mlp
from rlkit.torch.pixels import PixelContext, random_shift
from rlkit.torch.pytorch_util import soft_update


@dataclass
class RLBatch:
    """Transitions per task, each (tasks, batch, dim)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminals: torch.Tensor


@dataclass
class StepOutputs:
    """What one step leaves for the statistics and the next context chunk, all detached:
    the encoder's state (None for the MLP encoder), the posterior (tasks, latent), the losses
    (scalars) and the per-transition predictions (tasks * batch, 1 or action_dim); with
    auto_alpha the temperature used in the step's losses and its loss (scalars), else None."""

    encoder_state: tuple[torch.Tensor, torch.Tensor] | None
    z_mean: torch.Tensor
    z_var: torch.Tensor
    kl_div: torch.Tensor
    kl_loss: torch.Tensor
    qf_loss: torch.Tensor
    vf_loss: torch.Tensor
    policy_loss: torch.Tensor
    q1_pred: torch.Tensor
    v_pred: torch.Tensor
    log_pi: torch.Tensor
    policy_mean: torch.Tensor
    policy_log_std: torch.Tensor
    alpha: torch.Tensor | None = None
    alpha_loss: torch.Tensor | None = None


def stats_of(name: str, values: torch.Tensor) -> OrderedDict:
    """rlkit's create_stats_ordered_dict: NAME Mean, Std, Max, Min."""
    data = values.detach().cpu().numpy()
    return OrderedDict(
        [
            (f"{name} Mean", float(np.mean(data))),
            (f"{name} Std", float(np.std(data))),
            (f"{name} Max", float(np.max(data))),
            (f"{name} Min", float(np.min(data))),
        ]
    )


class PEARLTrainer:
    """Owns the critics, the target V and the five optimizers (with auto_alpha also log alpha
    and its optimizer); turns batches into updates."""

    def __init__(
        self,
        agent: PEARLAgent,
        qf1: Mlp,
        qf2: Mlp,
        vf: Mlp,
        *,
        policy_lr: float,
        qf_lr: float,
        vf_lr: float,
        context_lr: float,
        kl_lambda: float,
        reward_scale: float,
        discount: float,
        soft_target_tau: float,
        policy_mean_reg_weight: float = 1e-3,
        policy_std_reg_weight: float = 1e-3,
        encoder_tau: float = 0.05,
        augment_pad: int = 0,
        auto_alpha: bool = False,
        target_entropy: float | None = None,
        alpha_lr: float = 3e-4,
    ):
        self.agent = agent
        self.qf1, self.qf2, self.vf = qf1, qf2, vf
        self.target_vf = copy.deepcopy(vf)
        self.kl_lambda = kl_lambda
        self.reward_scale = reward_scale
        self.discount = discount
        self.soft_target_tau = soft_target_tau
        self.policy_mean_reg_weight = policy_mean_reg_weight
        self.policy_std_reg_weight = policy_std_reg_weight
        # fused Adam: one kernel per optimizer step instead of a loop over parameters
        adam = partial(torch.optim.Adam, fused=True)
        self.policy_optimizer = adam(agent.policy.parameters(), lr=policy_lr)
        self.qf1_optimizer = adam(qf1.parameters(), lr=qf_lr)
        self.qf2_optimizer = adam(qf2.parameters(), lr=qf_lr)
        self.vf_optimizer = adam(vf.parameters(), lr=vf_lr)
        self.context_optimizer = adam(agent.context_encoder.parameters(), lr=context_lr)
        self._q_params = list(qf1.parameters()) + list(qf2.parameters())
        # pixel runs: the trunk, its target copy, and the shift of every image
        self.target_trunk = None if agent.trunk is None else copy.deepcopy(agent.trunk)
        if agent.trunk is not None:
            self.target_trunk.requires_grad_(False)
            self.trunk_optimizer = adam(agent.trunk.parameters(), lr=qf_lr)
        self.encoder_tau = encoder_tau
        self.augment_pad = augment_pad
        # SAC's learned temperature: log alpha from 0 (alpha 1, the reference's fixed weight)
        self.auto_alpha = auto_alpha
        if auto_alpha:
            action_dim = agent.policy.output_size
            self.target_entropy = -float(action_dim) if target_entropy is None else target_entropy
            like = next(vf.parameters())
            self.log_alpha = torch.zeros((), dtype=like.dtype, device=like.device)
            self.log_alpha.requires_grad_(True)
            self.alpha_optimizer = adam([self.log_alpha], lr=alpha_lr)

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The six networks under their snapshot names."""
        networks = OrderedDict(
            context_encoder=self.agent.context_encoder,
            policy=self.agent.policy,
            qf1=self.qf1,
            qf2=self.qf2,
            vf=self.vf,
            target_vf=self.target_vf,
        )
        if self.agent.trunk is not None:
            networks.update(trunk=self.agent.trunk, target_trunk=self.target_trunk)
        return networks

    def to(self, *args, **kwargs) -> "PEARLTrainer":
        """Moves (or casts) the networks and log alpha as nn.Module.to does, in place: the
        optimizers keep their parameters."""
        for net in self.networks.values():
            net.to(*args, **kwargs)
        if self.auto_alpha:
            self.log_alpha.data = self.log_alpha.data.to(*args, **kwargs)
        return self

    def _shift(self, frames: torch.Tensor) -> torch.Tensor:
        return random_shift(frames, self.augment_pad)

    def _observations(self, batch: RLBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """o and o' as the networks read them, (tasks * batch, dim): the observations
        themselves, or in a pixel run the trunk's features of the shifted frames (o' through
        the target trunk, without gradients)."""
        tasks, b = batch.obs.shape[:2]
        if self.agent.trunk is None:
            return batch.obs.reshape(tasks * b, -1), batch.next_obs.reshape(tasks * b, -1)
        obs = self.agent.trunk(self._shift(batch.obs))
        with torch.no_grad():
            next_obs = self.target_trunk(self._shift(batch.next_obs))
        return obs.reshape(tasks * b, -1), next_obs.reshape(tasks * b, -1)

    def _min_q_action_grad_only(self, obs, actions, z) -> torch.Tensor:
        """min(Q1, Q2)(o, a, z) differentiable in `a` only: the policy loss never uses the
        critics' parameter gradients, so they are not computed (about 10% of the step)."""
        for p in self._q_params:
            p.requires_grad_(False)
        try:
            return torch.min(self.qf1(obs, actions, z), self.qf2(obs, actions, z))
        finally:
            for p in self._q_params:
                p.requires_grad_(True)

    def take_step(
        self,
        context: torch.Tensor,
        batch: RLBatch,
        encoder_state: tuple[torch.Tensor, torch.Tensor] | None = None,
        want_stats: bool = False,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, OrderedDict | None]:
        """One meta-gradient step on context (tasks, n, dim) and the RL batch.

        Returns the recurrent encoder's state, detached (the caller carries it to the next
        context chunk: truncated backprop), and the step's statistics when `want_stats`.
        """
        out = self.update(context, batch, encoder_state)
        return out.encoder_state, (self.step_stats(out) if want_stats else None)

    def update(
        self,
        context: torch.Tensor,
        batch: RLBatch,
        encoder_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> StepOutputs:
        """The step's math and optimizer updates, with no host synchronisation (so that it can
        be captured in a CUDA graph); returns what the statistics and the next chunk need."""
        agent = self.agent
        tasks, b = batch.obs.shape[:2]
        obs, next_obs = self._observations(batch)
        if isinstance(context, PixelContext):
            context = context.map_frames(self._shift)

        # 1. posterior and one z per task
        z_mean, z_var, encoder_state = agent.posterior(context, state=encoder_state)
        z = agent.sample_z(z_mean, z_var)
        task_z = z.unsqueeze(1).expand(tasks, b, z.shape[-1]).reshape(tasks * b, -1)
        actions = batch.actions.reshape(tasks * b, -1)
        rewards = batch.rewards.reshape(tasks * b, 1)
        terminals = batch.terminals.reshape(tasks * b, 1)

        # 2. policy on (o, z.detach()), before the Q step; a pixel run's features detached
        new_actions, policy_mean, policy_log_std, log_pi = agent.policy(
            torch.cat([obs.detach(), task_z.detach()], dim=-1)
        )

        # 3. critics; the encoder learns only through Q (and the KL). The twins run one after
        # the other: one batched call over their stacked weights (baddbmm) was 15% slower on
        # CPU (docs/benchmarks.md, twin Q functions), and on CUDA the graph removes the
        # launches it saves
        q1_pred = self.qf1(obs, actions, task_z)
        q2_pred = self.qf2(obs, actions, task_z)
        v_pred = self.vf(obs.detach(), task_z.detach())
        with torch.no_grad():
            target_v = self.target_vf(next_obs, task_z)

        # 4. encoder and Q step
        if agent.use_ib:
            kl_div = agent.kl_divergence(z_mean, z_var)
        else:
            kl_div = torch.zeros((), device=obs.device)
        kl_loss = self.kl_lambda * kl_div
        q_target = self.reward_scale * rewards + (1.0 - terminals) * self.discount * target_v
        qf_loss = torch.mean((q1_pred - q_target) ** 2) + torch.mean((q2_pred - q_target) ** 2)
        self.context_optimizer.zero_grad(set_to_none=True)
        self.qf1_optimizer.zero_grad(set_to_none=True)
        self.qf2_optimizer.zero_grad(set_to_none=True)
        if agent.trunk is not None:
            self.trunk_optimizer.zero_grad(set_to_none=True)
        (kl_loss + qf_loss).backward()
        self.qf1_optimizer.step()
        self.qf2_optimizer.step()
        self.context_optimizer.step()
        if agent.trunk is not None:
            self.trunk_optimizer.step()

        # 5. (auto_alpha) temperature step, then V step against the updated critics
        alpha = alpha_loss = None
        entropy_term = log_pi
        if self.auto_alpha:
            alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
            alpha = self.log_alpha.detach().exp()
            entropy_term = alpha * log_pi
        min_q_new_actions = self._min_q_action_grad_only(obs.detach(), new_actions, task_z.detach())
        v_target = min_q_new_actions - entropy_term
        vf_loss = torch.mean((v_pred - v_target.detach()) ** 2)
        self.vf_optimizer.zero_grad(set_to_none=True)
        vf_loss.backward()
        self.vf_optimizer.step()
        soft_update(self.vf, self.target_vf, self.soft_target_tau)
        if agent.trunk is not None:
            soft_update(agent.trunk, self.target_trunk, self.encoder_tau)

        # 6. policy step
        policy_loss = (entropy_term - min_q_new_actions).mean()
        policy_loss = (
            policy_loss
            + self.policy_mean_reg_weight * policy_mean.pow(2).mean()
            + self.policy_std_reg_weight * policy_log_std.pow(2).mean()
        )
        self.policy_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.policy_optimizer.step()

        return StepOutputs(
            encoder_state=None
            if encoder_state is None
            else tuple(s.detach() for s in encoder_state),
            z_mean=z_mean.detach(),
            z_var=z_var.detach(),
            kl_div=kl_div.detach(),
            kl_loss=kl_loss.detach(),
            qf_loss=qf_loss.detach(),
            vf_loss=vf_loss.detach(),
            policy_loss=policy_loss.detach(),
            q1_pred=q1_pred.detach(),
            v_pred=v_pred.detach(),
            log_pi=log_pi.detach(),
            policy_mean=policy_mean.detach(),
            policy_log_std=policy_log_std.detach(),
            alpha=alpha,
            alpha_loss=None if alpha_loss is None else alpha_loss.detach(),
        )

    @staticmethod
    def step_stats(out: StepOutputs) -> OrderedDict:
        """The logged training statistics of one step (rlkit's names)."""
        stats = OrderedDict()
        stats["Z mean train"] = float(out.z_mean[0].abs().mean())
        stats["Z variance train"] = float(out.z_var[0].mean())
        stats["KL Divergence"] = float(out.kl_div)
        stats["KL Loss"] = float(out.kl_loss)
        stats["QF Loss"] = float(out.qf_loss)
        stats["VF Loss"] = float(out.vf_loss)
        stats["Policy Loss"] = float(out.policy_loss)
        stats.update(stats_of("Q Predictions", out.q1_pred))
        stats.update(stats_of("V Predictions", out.v_pred))
        stats.update(stats_of("Log Pis", out.log_pi))
        stats.update(stats_of("Policy mu", out.policy_mean))
        stats.update(stats_of("Policy log std", out.policy_log_std))
        if out.alpha is not None:
            stats["Alpha"] = float(out.alpha)
            stats["Alpha Loss"] = float(out.alpha_loss)
        return stats

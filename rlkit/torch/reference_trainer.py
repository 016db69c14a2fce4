"""The reference implementation's meta-gradient step, written the way it is written there.

`ReferenceStepTrainer.take_step` computes the same update as `PEARLTrainer.take_step`, in the
reference's style: a Python loop over tasks for the posterior, z and its expansion,
torch.distributions for the KL, a separate KL backward pass, min Q through the critics' full
autograd graph (their parameter gradients computed and thrown away), per-parameter Adam,
hidden layers as separate linear and ReLU calls.

It is not used for training. It serves as the independent second computation in the update's
test (tests/torch/test_pearl_trainer.py) and as the per-task-loop baseline of the speed
benchmarks, so the baseline they time is known to be the same update.
"""

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from rlkit.torch import networks
from rlkit.torch.agent import MIN_VAR
from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch


@contextmanager
def unfused_hidden_layers() -> Iterator[None]:
    fused = networks.FUSED_LINEAR_RELU
    networks.FUSED_LINEAR_RELU = False
    try:
        yield
    finally:
        networks.FUSED_LINEAR_RELU = fused


class ReferenceStepTrainer(PEARLTrainer):
    """PEARLTrainer with the reference's step; MLP context encoders and the reference's fixed
    entropy weight only."""

    def __init__(self, agent, qf1, qf2, vf, **hyperparameters):
        super().__init__(agent, qf1, qf2, vf, **hyperparameters)
        if agent.recurrent:
            raise ValueError("the reference-style step supports the MLP context encoder only")
        if self.auto_alpha:
            raise ValueError("the reference-style step has no learned temperature (auto_alpha)")
        # torch 1.0's Adam: a Python loop over the parameters
        adam = partial(torch.optim.Adam, foreach=False, fused=False)
        self.policy_optimizer = adam(agent.policy.parameters(), lr=hyperparameters["policy_lr"])
        self.qf1_optimizer = adam(qf1.parameters(), lr=hyperparameters["qf_lr"])
        self.qf2_optimizer = adam(qf2.parameters(), lr=hyperparameters["qf_lr"])
        self.vf_optimizer = adam(vf.parameters(), lr=hyperparameters["vf_lr"])
        self.context_optimizer = adam(
            agent.context_encoder.parameters(), lr=hyperparameters["context_lr"]
        )

    def _posterior(self, context: torch.Tensor):
        """Per task: the product of the Gaussian factors (the reference's infer_posterior)."""
        agent = self.agent
        latent = agent.latent_dim
        params = agent.context_encoder(context)
        if not agent.use_ib:
            return params.mean(dim=1), None
        means, variances = [], []
        for task_params in torch.unbind(params):
            mu = task_params[:, :latent]
            var = torch.clamp(F.softplus(task_params[:, latent:]), min=MIN_VAR)
            v = 1.0 / torch.sum(1.0 / var, dim=0)
            means.append(v * torch.sum(mu / var, dim=0))
            variances.append(v)
        return torch.stack(means), torch.stack(variances)

    def take_step(self, context, batch: RLBatch, encoder_state=None, want_stats=False):
        with unfused_hidden_layers():
            return self._take_step(context, batch, want_stats)

    def _take_step(self, context, batch: RLBatch, want_stats: bool):
        agent, policy = self.agent, self.agent.policy
        tasks, b, _ = batch.obs.shape
        z_means, z_vars = self._posterior(context)
        if z_vars is None:
            z = z_means
        else:
            z = torch.stack(
                [Normal(m, v.sqrt()).rsample() for m, v in zip(z_means, z_vars, strict=True)]
            )
        task_z = torch.cat([zt.repeat(b, 1) for zt in z], dim=0)
        obs = batch.obs.reshape(tasks * b, -1)
        actions = batch.actions.reshape(tasks * b, -1)
        next_obs = batch.next_obs.reshape(tasks * b, -1)

        h = policy.hidden(torch.cat([obs, task_z.detach()], dim=1))
        mean = policy.last_fc(h)
        log_std = torch.clamp(policy.last_fc_log_std(h), networks.LOG_STD_MIN, networks.LOG_STD_MAX)
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        new_actions = torch.tanh(pre_tanh)
        log_pi = (
            Normal(mean, std).log_prob(pre_tanh) - torch.log(1 - new_actions**2 + networks.TANH_EPS)
        ).sum(dim=1, keepdim=True)

        q1_pred = self.qf1(torch.cat([obs, actions, task_z], dim=1))
        q2_pred = self.qf2(torch.cat([obs, actions, task_z], dim=1))
        v_pred = self.vf(torch.cat([obs, task_z.detach()], dim=1))
        with torch.no_grad():
            target_v = self.target_vf(torch.cat([next_obs, task_z], dim=1))

        self.context_optimizer.zero_grad()
        kl_div = torch.zeros(())
        if z_vars is not None:
            latent = agent.latent_dim
            prior = Normal(
                torch.zeros(latent, device=obs.device), torch.ones(latent, device=obs.device)
            )
            kl_div = torch.sum(
                torch.stack(
                    [
                        kl_divergence(Normal(m, v.sqrt()), prior).sum()
                        for m, v in zip(z_means, z_vars, strict=True)
                    ]
                )
            )
            (self.kl_lambda * kl_div).backward(retain_graph=True)
        self.qf1_optimizer.zero_grad()
        self.qf2_optimizer.zero_grad()
        rewards = batch.rewards.reshape(tasks * b, 1) * self.reward_scale
        terms = batch.terminals.reshape(tasks * b, 1)
        q_target = rewards + (1.0 - terms) * self.discount * target_v
        qf_loss = torch.mean((q1_pred - q_target) ** 2) + torch.mean((q2_pred - q_target) ** 2)
        qf_loss.backward()
        self.qf1_optimizer.step()
        self.qf2_optimizer.step()
        self.context_optimizer.step()

        q_in = torch.cat([obs, new_actions, task_z.detach()], dim=1)
        min_q = torch.min(self.qf1(q_in), self.qf2(q_in))
        vf_loss = F.mse_loss(v_pred, (min_q - log_pi).detach())
        self.vf_optimizer.zero_grad()
        vf_loss.backward()
        self.vf_optimizer.step()
        with torch.no_grad():
            for tp, p in zip(self.target_vf.parameters(), self.vf.parameters(), strict=True):
                tp.copy_(tp * (1.0 - self.soft_target_tau) + p * self.soft_target_tau)

        policy_loss = (log_pi - min_q).mean()
        policy_loss = (
            policy_loss
            + self.policy_mean_reg_weight * (mean**2).mean()
            + self.policy_std_reg_weight * (log_std**2).mean()
        )
        self.policy_optimizer.zero_grad()
        policy_loss.backward()
        self.policy_optimizer.step()

        if not want_stats:
            return None, None
        stats = OrderedDict()
        stats["KL Divergence"] = float(kl_div.detach())
        stats["KL Loss"] = float(self.kl_lambda * kl_div.detach())
        stats["QF Loss"] = float(qf_loss.detach())
        stats["VF Loss"] = float(vf_loss.detach())
        stats["Policy Loss"] = float(policy_loss.detach())
        return None, stats

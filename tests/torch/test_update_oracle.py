"""PEARL's meta-gradient step against an oracle written in this file from SPEC section 4.

The oracle shares nothing with the code under test but the initial weights, the data and the
noise. It copies the weight tensors into float64 tensors of its own and computes each step
with plain torch ops: its own MLP and LSTM forward from the weights, its own posterior (the
product of the Gaussian factors), KL, tanh-Gaussian sample and log-probability, its own losses,
the gradient of each loss taken explicitly with respect to the networks SPEC section 4 says it
trains, and Adam by its formula. For several consecutive steps the test compares the gradients
each of the trainer's five optimizers holds when it steps (read by a step pre-hook), the four
losses, and every network's parameters after the step, the target V included.

Sizes: a tiny one, and 256 transitions per task batch with 384 context rows, where the hidden
layers run oneDNN's fused linear + ReLU on CPU (the test checks that path ran). Both context
variants (information bottleneck, deterministic). And through the algorithm's own training
loop: the context consumed in chunks (embedding_mini_batch_size < embedding_batch_size), each
chunk a full step on a fresh RL batch, with the recurrent encoder's LSTM state carried from one
chunk to the next and detached (truncated backprop), and reset for each meta-gradient step.

Noise: a step draws z's noise (with the bottleneck), then the policy's, from torch's global
generator; the oracle draws the same after the same seed.

Each test also runs with the learned temperature (auto_alpha, SAC): the oracle steps log alpha
by its own Adam on -mean(log alpha (log pi + target entropy)) before the V loss, then weighs
the entropy of the V target and the policy loss by the updated alpha; the test compares the
alpha loss, the alpha used, log alpha's gradient and log alpha after every step. log alpha
starts at 0.5 and steps at a high rate, so that alpha is far from 1 and a misplaced or missing
alpha shows.
"""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from rlkit.torch import networks as networks_module
from rlkit.torch.agent import PEARLAgent
from rlkit.torch.networks import Mlp, MlpEncoder, TanhGaussianPolicy
from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch

HP = dict(
    policy_lr=1e-3,
    qf_lr=2e-3,
    vf_lr=3e-3,
    context_lr=4e-3,
    kl_lambda=0.7,
    reward_scale=5.0,
    discount=0.9,
    soft_target_tau=0.1,
)
# SPEC section 4: the policy's regularisers, Adam's torch defaults, the variance floor
POLICY_MEAN_REG, POLICY_STD_REG = 1e-3, 1e-3
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
MIN_VAR = 1e-7
# the networks with an optimizer, and the name of each one's learning rate
TRAINED = {
    "context_encoder": "context_lr",
    "qf1": "qf_lr",
    "qf2": "qf_lr",
    "vf": "vf_lr",
    "policy": "policy_lr",
}
# the learned temperature (auto_alpha): its learning rate, log alpha's start, a target entropy
ALPHA_LR, LOG_ALPHA_START, TARGET_ENTROPY = 0.05, 0.5, -0.7
STEPS = 4
# the trainer's dtype -> (relative tolerance, absolute tolerance as a fraction of the tensor's
# largest entry) against the float64 oracle
TOLERANCE = {torch.float64: (1e-9, 1e-10), torch.float32: (2e-4, 2e-5)}


# ------------------------------------------------------------------------------ the oracle
def hidden(w: dict, x: torch.Tensor) -> torch.Tensor:
    """ReLU layers fc0, fc1, ... of the weight dict `w` (rlkit's key names)."""
    i = 0
    while f"fc{i}.weight" in w:
        x = torch.clamp(x @ w[f"fc{i}.weight"].T + w[f"fc{i}.bias"], min=0.0)
        i += 1
    return x


def head(w: dict, x: torch.Tensor, name: str = "last_fc") -> torch.Tensor:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def mlp(w: dict, *inputs: torch.Tensor) -> torch.Tensor:
    return head(w, hidden(w, torch.cat(inputs, dim=-1)))


def lstm(w: dict, x: torch.Tensor, state: tuple | None) -> tuple:
    """One-layer LSTM over x (tasks, n, width) from (h, c) (zeros when None); gates i, f, g, o."""
    tasks, n, width = x.shape
    h, c = state if state is not None else (x.new_zeros(tasks, width),) * 2
    for t in range(n):
        gates = (
            x[:, t] @ w["lstm.weight_ih_l0"].T
            + w["lstm.bias_ih_l0"]
            + h @ w["lstm.weight_hh_l0"].T
            + w["lstm.bias_hh_l0"]
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


@dataclass
class OracleStep:
    grads: dict  # network (and "temperature") -> parameter name -> gradient
    losses: dict  # kl_loss, qf_loss, vf_loss, policy_loss; alpha_loss and alpha (auto_alpha)


class Oracle:
    """The six networks as float64 weight dicts, PEARL's step as equations, Adam by formula;
    with `log_alpha` (a start value) SAC's learned temperature towards `target_entropy`."""

    def __init__(
        self,
        networks: dict[str, nn.Module],
        latent: int,
        use_ib: bool,
        recurrent: bool,
        log_alpha: torch.Tensor | None = None,
        target_entropy: float | None = None,
    ):
        self.w = {
            name: {k: v.detach().double().clone() for k, v in net.state_dict().items()}
            for name, net in networks.items()
        }
        self.latent, self.use_ib, self.recurrent = latent, use_ib, recurrent
        self.adam = {
            name: {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in self.w[name].items()}
            for name in TRAINED
        }
        self.auto_alpha = log_alpha is not None
        if self.auto_alpha:
            self.temperature = {"log_alpha": log_alpha.detach().double().clone()}
            zero = torch.zeros((), dtype=torch.float64)
            self.adam["temperature"] = {"log_alpha": (zero, zero)}
            self.target_entropy = target_entropy
        self.t = 0

    def encode(self, w: dict, context: torch.Tensor, state: tuple | None):
        """Encoder outputs, one row per factor (tasks, factors, out), and the LSTM state."""
        x = hidden(w, context)
        if not self.recurrent:
            return head(w, x), None
        h, c = lstm(w, x, state)
        return head(w, h).unsqueeze(1), (h, c)

    def posterior(self, params: torch.Tensor, noise: torch.Tensor | None):
        """z (tasks, latent) and KL(q(z|c) || N(0, I)) summed over tasks and dimensions."""
        if not self.use_ib:
            return params.mean(dim=1), torch.zeros((), dtype=params.dtype)
        mu = params[..., : self.latent]
        var = torch.log1p(torch.exp(params[..., self.latent :])).clamp(min=MIN_VAR)
        z_var = 1.0 / (1.0 / var).sum(dim=1)
        z_mean = z_var * (mu / var).sum(dim=1)
        sigma = z_var.sqrt()
        kl = (-torch.log(sigma) + 0.5 * (sigma**2 + z_mean**2) - 0.5).sum()
        return z_mean + sigma * noise.double(), kl

    @staticmethod
    def policy(w: dict, x: torch.Tensor, noise: torch.Tensor):
        """tanh-Gaussian sample, its log-probability (rows, 1), mean and clamped log std."""
        h = hidden(w, x)
        mean = head(w, h)
        log_std = head(w, h, "last_fc_log_std").clamp(-20.0, 2.0)
        std = torch.exp(log_std)
        u = mean + std * noise
        action = torch.tanh(u)
        log_normal = -((u - mean) ** 2) / (2 * std**2) - log_std - 0.5 * math.log(2 * math.pi)
        log_pi = (log_normal - torch.log(1 - action**2 + 1e-6)).sum(dim=-1, keepdim=True)
        return action, log_pi, mean, log_std

    def grad(self, loss: torch.Tensor, leaves: dict) -> dict:
        flat = [(net, k) for net in leaves for k in leaves[net]]
        grads = torch.autograd.grad(loss, [leaves[net][k] for net, k in flat])
        out = {net: {} for net in leaves}
        for (net, k), g in zip(flat, grads, strict=True):
            out[net][k] = g
        return out

    def adam_step(self, grads: dict, applied: dict | None) -> None:
        t = self.t
        for net, net_grads in grads.items():
            weights = self.temperature if net == "temperature" else self.w[net]
            lr = ALPHA_LR if net == "temperature" else HP[TRAINED[net]]
            for k, g in net_grads.items():
                g = g if applied is None else applied[net][k].double()
                m, v = self.adam[net][k]
                m = BETA1 * m + (1 - BETA1) * g
                v = BETA2 * v + (1 - BETA2) * g**2
                self.adam[net][k] = (m, v)
                m_hat, v_hat = m / (1 - BETA1**t), v / (1 - BETA2**t)
                weights[k] = weights[k] - lr * m_hat / (v_hat.sqrt() + ADAM_EPS)

    def leaves(self, name: str) -> dict:
        return {k: v.clone().requires_grad_(True) for k, v in self.w[name].items()}

    def step(self, context, batch: RLBatch, state, z_noise, policy_noise, applied=None):
        """One meta-gradient step (SPEC section 4, steps 3-7); returns it and the LSTM state.

        Adam steps on the oracle's own gradients, or on `applied` (network -> name ->
        gradient) when given: the float32 trainer's, whose near-zero entries are rounding noise
        that Adam's normalisation would blow up to +-lr (g / (|g| + eps)).
        """
        self.t += 1
        tasks, b, _ = batch.obs.shape

        def rows(x):
            return x.double().reshape(tasks * b, -1)

        obs, actions, next_obs = rows(batch.obs), rows(batch.actions), rows(batch.next_obs)
        rewards, done = rows(batch.rewards), rows(batch.terminals)
        enc, q1, q2 = self.leaves("context_encoder"), self.leaves("qf1"), self.leaves("qf2")
        v, pi = self.leaves("vf"), self.leaves("policy")

        # 3. q(z|c) and one z per task, repeated for the task's transitions
        params, state = self.encode(enc, context.double(), state)
        z, kl = self.posterior(params, z_noise)
        z = z.repeat_interleave(b, dim=0)
        z_fixed = z.detach()

        # 4-5. Q on (o, a, z) into the encoder; the target V's output is a constant
        with torch.no_grad():
            y = HP["reward_scale"] * rewards + (1 - done) * HP["discount"] * mlp(
                self.w["target_vf"], next_obs, z
            )
        q1_pred, q2_pred = mlp(q1, obs, actions, z), mlp(q2, obs, actions, z)
        qf_loss = ((q1_pred - y) ** 2).mean() + ((q2_pred - y) ** 2).mean()
        kl_loss = HP["kl_lambda"] * kl
        grads = self.grad(kl_loss + qf_loss, {"context_encoder": enc, "qf1": q1, "qf2": q2})
        self.adam_step(grads, applied)

        # 6. V against min Q of the updated critics on the policy's new actions
        x = torch.cat([obs, z_fixed], dim=-1)
        new_actions, log_pi, mean, log_std = self.policy(pi, x, policy_noise.double())
        alpha, temperature = 1.0, {}
        if self.auto_alpha:
            # SAC's temperature: stepped first, its updated value weighs this step's entropy
            log_alpha = self.temperature["log_alpha"].clone().requires_grad_(True)
            alpha_loss = -(log_alpha * (log_pi + self.target_entropy).detach()).mean()
            temperature = self.grad(alpha_loss, {"temperature": {"log_alpha": log_alpha}})
            self.adam_step(temperature, applied)
            alpha = torch.exp(self.temperature["log_alpha"])
        min_q = torch.minimum(
            mlp(self.w["qf1"], obs, new_actions, z_fixed),
            mlp(self.w["qf2"], obs, new_actions, z_fixed),
        )
        v_target = (min_q - alpha * log_pi).detach()
        vf_loss = ((mlp(v, obs, z_fixed) - v_target) ** 2).mean()
        v_grads = self.grad(vf_loss, {"vf": v})
        self.adam_step(v_grads, applied)
        tau = HP["soft_target_tau"]
        self.w["target_vf"] = {
            k: tau * self.w["vf"][k] + (1 - tau) * self.w["target_vf"][k]
            for k in self.w["target_vf"]
        }

        # 7. policy
        policy_loss = (
            (alpha * log_pi - min_q).mean()
            + POLICY_MEAN_REG * (mean**2).mean()
            + POLICY_STD_REG * (log_std**2).mean()
        )
        pi_grads = self.grad(policy_loss, {"policy": pi})
        self.adam_step(pi_grads, applied)

        losses = dict(kl_loss=kl_loss, qf_loss=qf_loss, vf_loss=vf_loss, policy_loss=policy_loss)
        if self.auto_alpha:
            losses.update(alpha_loss=alpha_loss, alpha=alpha)
        state = None if state is None else tuple(s.detach() for s in state)
        return OracleStep({**grads, **temperature, **v_grads, **pi_grads}, losses), state

    def draw_noise(self, tasks: int, rows: int, action_dim: int, dtype: torch.dtype):
        """The step's draws from the global generator, in its order and the trainer's dtype:
        z's (tasks, latent), then the policy's (rows, action_dim)."""
        z_noise = torch.randn(tasks, self.latent, dtype=dtype) if self.use_ib else None
        return z_noise, torch.randn(rows, action_dim, dtype=dtype)


# ------------------------------------------------------------------------ the code under test
class Recorder:
    """What the trainer's optimizers see when they step, and the losses (with auto_alpha also
    the alpha used, and log alpha after the step) of each update."""

    def __init__(self, trainer: PEARLTrainer):
        self.grads: list[dict] = []
        self.losses: list[dict] = []
        self.params: list[dict] = []
        self.log_alpha: list[torch.Tensor] = []
        names = {}
        for net_name, net in trainer.networks.items():
            for k, p in net.named_parameters():
                names[id(p)] = (net_name, k)
        optimizers = (
            trainer.context_optimizer,
            trainer.qf1_optimizer,
            trainer.qf2_optimizer,
            trainer.vf_optimizer,
            trainer.policy_optimizer,
        )
        if trainer.auto_alpha:
            names[id(trainer.log_alpha)] = ("temperature", "log_alpha")
            optimizers += (trainer.alpha_optimizer,)
        self.names = names
        for optimizer in optimizers:
            optimizer.register_step_pre_hook(self._record_grads)
        update = trainer.update

        def recorded_update(*args, **kwargs):
            self.grads.append({})
            out = update(*args, **kwargs)
            self.losses.append(
                dict(
                    kl_loss=out.kl_loss,
                    qf_loss=out.qf_loss,
                    vf_loss=out.vf_loss,
                    policy_loss=out.policy_loss,
                )
            )
            if trainer.auto_alpha:
                self.losses[-1].update(alpha_loss=out.alpha_loss, alpha=out.alpha)
                self.log_alpha.append(trainer.log_alpha.detach().clone())
            self.params.append(
                {
                    name: {k: v.detach().clone() for k, v in net.state_dict().items()}
                    for name, net in trainer.networks.items()
                }
            )
            return out

        trainer.update = recorded_update

    def _record_grads(self, optimizer, _args, _kwargs) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                net, k = self.names[id(p)]
                grad = None if p.grad is None else p.grad.detach().clone()
                self.grads[-1].setdefault(net, {})[k] = grad


def close(ours: torch.Tensor | None, expected: torch.Tensor, dtype, what: str) -> None:
    """Elementwise, relative to the entry and to the tensor's largest entry."""
    assert ours is not None, f"{what}: no gradient"
    rtol, atol_of_max = TOLERANCE[dtype]
    expected = expected.detach()
    atol = atol_of_max * float(expected.abs().max()) + 1e-300
    torch.testing.assert_close(
        ours.double(), expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}"
    )


def compare_step(step: int, recorder: Recorder, expected: OracleStep, oracle: Oracle, dtype):
    """The losses, each optimizer's gradients and all parameters after `step` (0-based)."""
    assert set(recorder.losses[step]) == set(expected.losses)
    for name, value in expected.losses.items():
        close(recorder.losses[step][name], value, dtype, f"step {step} {name}")
    trained = set(TRAINED) | ({"temperature"} if oracle.auto_alpha else set())
    assert set(recorder.grads[step]) == set(expected.grads) == trained
    for net, grads in expected.grads.items():
        assert set(recorder.grads[step][net]) == set(grads), f"step {step}: {net} parameters"
        for k, g in grads.items():
            close(recorder.grads[step][net][k], g, dtype, f"step {step} gradient {net}.{k}")
    assert set(recorder.params[step]) == set(oracle.w)
    for net, params in recorder.params[step].items():
        assert set(params) == set(oracle.w[net]), f"{net} parameters"
        for k, p in params.items():
            close(p, oracle.w[net][k], dtype, f"after step {step}: {net}.{k}")
    if oracle.auto_alpha:
        expected_log_alpha = oracle.temperature["log_alpha"]
        close(recorder.log_alpha[step], expected_log_alpha, dtype, f"after step {step}: log alpha")


def prepare(trainer: PEARLTrainer, dtype: torch.dtype) -> None:
    """The networks (and log alpha) in `dtype` (in place: the optimizers keep their
    parameters), with output layers far from their +-3e-3 initialisation, a target V unlike V
    and alpha far from 1, so that every term of the losses weighs in the gradients."""
    g = torch.Generator().manual_seed(5)
    trainer.to(dtype)
    with torch.no_grad():
        if trainer.auto_alpha:
            trainer.log_alpha.fill_(LOG_ALPHA_START)
        for name, net in trainer.networks.items():
            heads = [net.last_fc] + ([net.last_fc_log_std] if name == "policy" else [])
            for w in (fc.weight for fc in heads):  # outputs of about unit size
                w.copy_(torch.randn(w.shape, generator=g) / w.shape[1] ** 0.5)
            if name == "target_vf":
                for p in net.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))


def step_data(g, tasks, n_context, batch, obs_dim, action_dim, context_dim, dtype):
    """A random context (tasks, n_context, context_dim) and RL batch (tasks, batch, ...)."""
    context = torch.randn(tasks, n_context, context_dim, generator=g)
    rl_batch = RLBatch(
        obs=torch.randn(tasks, batch, obs_dim, generator=g).to(dtype),
        actions=(torch.rand(tasks, batch, action_dim, generator=g) * 2 - 1).to(dtype),
        rewards=torch.randn(tasks, batch, generator=g).to(dtype),
        next_obs=torch.randn(tasks, batch, obs_dim, generator=g).to(dtype),
        terminals=(torch.rand(tasks, batch, generator=g) < 0.3).to(dtype),
    )
    return context.to(dtype), rl_batch


# ------------------------------------------------------------------------------------ tests
OBS, ACT, LATENT = 3, 2, 2
CASES = {
    # tasks, context transitions per task, RL batch per task, hidden widths, trainer dtype
    "tiny": (3, 4, 5, [6, 6], torch.float64),
    # the fused linear + ReLU runs on float32 only
    "fused": (3, 128, 256, [32, 32, 32], torch.float32),
}


@pytest.mark.parametrize("auto_alpha", [False, True], ids=["fixed-alpha", "learned-alpha"])
@pytest.mark.parametrize("use_ib", [True, False], ids=["bottleneck", "deterministic"])
@pytest.mark.parametrize("case", CASES)
def test_steps_match_the_oracle(case, use_ib, auto_alpha, monkeypatch):
    """The target entropy at its default, -|A|."""
    tasks, n_context, batch_size, widths, dtype = CASES[case]
    torch.manual_seed(0)
    encoder = MlpEncoder(widths, 2 * LATENT if use_ib else LATENT, OBS + ACT + 1)
    policy = TanhGaussianPolicy(widths, OBS + LATENT, ACT)
    qf1, qf2 = (Mlp(widths, 1, OBS + ACT + LATENT) for _ in range(2))
    vf = Mlp(widths, 1, OBS + LATENT)
    agent = PEARLAgent(LATENT, encoder, policy, use_information_bottleneck=use_ib)
    trainer = PEARLTrainer(agent, qf1, qf2, vf, **HP, auto_alpha=auto_alpha, alpha_lr=ALPHA_LR)
    prepare(trainer, dtype)
    log_alpha = trainer.log_alpha if auto_alpha else None
    oracle = Oracle(trainer.networks, LATENT, use_ib, False, log_alpha, target_entropy=-ACT)
    recorder = Recorder(trainer)

    fused_rows = []
    fused_apply = networks_module._FusedLinearReLU.apply

    def counting_apply(x, *args):
        fused_rows.append(x.shape[0])
        return fused_apply(x, *args)

    monkeypatch.setattr(networks_module._FusedLinearReLU, "apply", counting_apply)

    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        context, batch = step_data(g, tasks, n_context, batch_size, OBS, ACT, OBS + ACT + 1, dtype)
        torch.manual_seed(100 + step)
        trainer.take_step(context, batch)
        torch.manual_seed(100 + step)
        noise = oracle.draw_noise(tasks, tasks * batch_size, ACT, dtype)
        applied = recorder.grads[step] if dtype == torch.float32 else None
        expected, _ = oracle.step(context, batch, None, *noise, applied=applied)
        compare_step(step, recorder, expected, oracle, dtype)

    if case == "fused" and networks_module.FUSED_LINEAR_RELU:
        # the hidden layers of the encoder (384 rows) and of the other networks (768 rows)
        assert {tasks * n_context, tasks * batch_size} <= set(fused_rows)
    else:
        assert not fused_rows


CHUNKS = 3


@pytest.mark.parametrize("auto_alpha", [False, True], ids=["fixed-alpha", "learned-alpha"])
@pytest.mark.parametrize("use_ib", [True, False], ids=["bottleneck", "deterministic"])
@pytest.mark.parametrize("recurrent", [True, False], ids=["recurrent", "mlp"])
def test_context_chunks_match_the_oracle(recurrent, use_ib, auto_alpha, make_algorithm):
    """The algorithm's training loop: CHUNKS steps per meta-gradient step, one per chunk of
    the context, each on a fresh RL batch; the LSTM state carried across them, detached. The
    temperature's settings come from the config, a target entropy among them."""
    tasks, mini, batch_size, dtype = 3, 2, 5, torch.float64
    algorithm = make_algorithm(
        f"algo_params.recurrent={str(recurrent).lower()}",
        f"algo_params.use_information_bottleneck={str(use_ib).lower()}",
        f"algo_params.embedding_batch_size={CHUNKS * mini}",
        f"algo_params.embedding_mini_batch_size={mini}",
        f"algo_params.batch_size={batch_size}",
        *(f"algo_params.{k}={v}" for k, v in HP.items()),
        f"algo_params.auto_alpha={str(auto_alpha).lower()}",
        f"algo_params.target_entropy={TARGET_ENTROPY}",
        f"algo_params.alpha_lr={ALPHA_LR}",
    )
    trainer = algorithm.trainer
    assert trainer.agent.recurrent == recurrent
    prepare(trainer, dtype)
    latent = trainer.agent.latent_dim
    action_dim = trainer.agent.policy.output_size
    obs_dim = trainer.vf.input_size - latent
    context_dim = trainer.agent.context_encoder.input_size
    log_alpha = trainer.log_alpha if auto_alpha else None
    oracle = Oracle(trainer.networks, latent, use_ib, recurrent, log_alpha, TARGET_ENTROPY)
    recorder = Recorder(trainer)

    g = torch.Generator().manual_seed(2)
    dims = (obs_dim, action_dim, context_dim, dtype)
    contexts = [step_data(g, tasks, CHUNKS * mini, 1, *dims)[0] for _ in range(2)]
    rl_batches = [step_data(g, tasks, 1, batch_size, *dims)[1] for _ in range(2 * CHUNKS)]
    served_contexts, served_batches = iter(contexts), iter(rl_batches)
    algorithm.sample_context = lambda indices: next(served_contexts)
    algorithm.sample_rl_batch = lambda indices: next(served_batches)

    step = 0
    for meta_step in range(2):
        torch.manual_seed(200 + meta_step)
        algorithm._do_training(np.arange(tasks))
        torch.manual_seed(200 + meta_step)
        context, state = contexts[meta_step], None
        for chunk in range(CHUNKS):
            noise = oracle.draw_noise(tasks, tasks * batch_size, action_dim, dtype)
            expected, state = oracle.step(
                context[:, chunk * mini : (chunk + 1) * mini], rl_batches[step], state, *noise
            )
            compare_step(step, recorder, expected, oracle, dtype)
            step += 1
    assert len(recorder.losses) == step == 2 * CHUNKS

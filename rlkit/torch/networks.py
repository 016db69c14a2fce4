"""MLPs, the context encoders and the tanh-Gaussian policy, initialised as in rlkit.

Hidden layers: weights U(+-1/sqrt(n)) (`fanin_init`), biases 0.1; last layer U(+-init_w).

On CPU, a hidden layer over a large batch (training) is one oneDNN call with the bias and the
ReLU fused into the matmul (`linear_relu`): the same math (bit for bit on this project's CPU),
about 8% less time per meta-gradient step at cheetah-vel sizes, because the ReLU no longer
re-reads the activations from memory. Small batches (acting) and other devices use the plain
layer.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from rlkit.torch.pytorch_util import fanin_init

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
TANH_EPS = 1e-6
# the fused call costs ~15 us more to set up than addmm: below this many rows it loses
FUSED_MIN_ROWS = 256


def _fused_linear_relu_works() -> bool:
    """Whether this torch build has oneDNN's fused linear + ReLU for CPU tensors."""
    try:
        x, w, b = torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4)
        y = torch.ops.mkldnn._linear_pointwise(x, w, b, "relu", [None], "")
        return torch.equal(y, torch.full((2, 4), 3.0))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


FUSED_LINEAR_RELU = _fused_linear_relu_works()


class _FusedLinearReLU(torch.autograd.Function):
    """relu(x W^T + b) as one oneDNN call; the backward is autograd's: ReLU's mask from the
    output, then the two matmuls and the bias sum, each only when its input needs it.

    The mask is applied to the incoming gradient in place (no fresh 4096 x 300 buffer to write
    per layer: about 3 ms of a 120 ms cheetah-vel step). That gradient must be this node's
    alone: in the MLPs a hidden activation feeds only the next layer, the output heads or the
    LSTM, whose backward passes each make a new tensor. An expanded or otherwise non-contiguous
    gradient (say from a sum) is masked out of place.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
        ctx.save_for_backward(x, weight, y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        if grad_y.is_contiguous():
            grad = torch.ops.aten.threshold_backward.grad_input(grad_y, y, 0, grad_input=grad_y)
        else:
            grad = torch.ops.aten.threshold_backward(grad_y, y, 0)
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = grad @ weight if need_x else None
        grad_weight = grad.t() @ x if need_weight else None
        grad_bias = grad.sum(0) if need_bias else None
        return grad_x, grad_weight, grad_bias


def linear_relu(x: torch.Tensor, fc: nn.Linear) -> torch.Tensor:
    """relu(fc(x)) for x (..., in); fused on CPU for large batches of float32. Only for outputs
    whose consumers make their own gradients (layers, not additions): see _FusedLinearReLU."""
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if (
        FUSED_LINEAR_RELU
        and rows >= FUSED_MIN_ROWS
        and x.device.type == "cpu"
        and x.dtype == torch.float32 == fc.weight.dtype
    ):
        y = _FusedLinearReLU.apply(x.reshape(rows, x.shape[-1]), fc.weight, fc.bias)
        return y.reshape(*x.shape[:-1], y.shape[-1])
    return F.relu(fc(x))


def _rename_legacy_hidden_keys(module, state_dict, prefix, *_) -> None:
    """Load-state-dict pre-hook: this project's first releases kept the hidden layers in a
    ModuleList (keys `fcs.I.weight`); they are `fcI.weight` now, as in rlkit."""
    for key in [k for k in state_dict if k.startswith(prefix + "fcs.")]:
        index, rest = key[len(prefix) + 4 :].split(".", 1)
        state_dict[f"{prefix}fc{index}.{rest}"] = state_dict.pop(key)


class Mlp(nn.Module):
    """ReLU MLP: fc0..fc{k-1} hidden layers, then `last_fc`.

    The layers are attributes named as in rlkit (not a ModuleList), so that state dicts carry
    the reference's keys: weight files of either code load into the other's networks.
    """

    def __init__(
        self, hidden_sizes: list[int], output_size: int, input_size: int, init_w: float = 3e-3
    ):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_sizes = list(hidden_sizes)
        self.fcs: list[nn.Linear] = []
        in_size = input_size
        for i, size in enumerate(hidden_sizes):
            fc = nn.Linear(in_size, size)
            fanin_init(fc.weight)
            nn.init.constant_(fc.bias, 0.1)
            setattr(self, f"fc{i}", fc)
            self.fcs.append(fc)
            in_size = size
        self.last_fc = nn.Linear(in_size, output_size)
        nn.init.uniform_(self.last_fc.weight, -init_w, init_w)
        nn.init.uniform_(self.last_fc.bias, -init_w, init_w)
        self.register_load_state_dict_pre_hook(_rename_legacy_hidden_keys)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        for fc in self.fcs:
            x = linear_relu(x, fc)
        return x

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Concatenates the inputs along the last dimension (rlkit's FlattenMlp)."""
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
        return self.last_fc(self.hidden(x))


class MlpEncoder(Mlp):
    """Permutation-invariant encoder: one output row per context transition.

    (tasks, n, in) -> (tasks, n, out).
    """

    recurrent = False


def _drop_reference_hidden_buffer(module, state_dict, prefix, *_) -> None:
    """Load-state-dict pre-hook: the reference's recurrent encoder saved its carried LSTM state
    as a buffer `hidden`; ours keeps no state in the module (the caller carries it)."""
    state_dict.pop(prefix + "hidden", None)


class RecurrentEncoder(Mlp):
    """MLP embedding of each transition, an LSTM over the ordered context, `last_fc` on its state.

    (tasks, n, in) -> (tasks, 1, out): the output after the last valid transition of each task.
    The LSTM state `(h, c)` is per task and may be carried between consecutive context chunks.
    """

    recurrent = True

    def __init__(
        self, hidden_sizes: list[int], output_size: int, input_size: int, init_w: float = 3e-3
    ):
        super().__init__(hidden_sizes, output_size, input_size, init_w)
        width = self.hidden_sizes[-1]
        self.lstm = nn.LSTM(width, width, num_layers=1, batch_first=True)
        self.register_load_state_dict_pre_hook(_drop_reference_hidden_buffer)

    def forward(
        self,
        context: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Returns the output (tasks, 1, out) and the LSTM state `(h, c)` after the last transition.

        `lengths` (tasks,) marks right-padded contexts: each task's sequence is read up to its
        own length (packed), so the padding changes neither the output nor the state.
        """
        x = self.hidden(context)
        if lengths is not None:
            x = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
        _, (h, c) = self.lstm(x, state)
        # a one-layer LSTM's last output is its last hidden state h
        return self.last_fc(h[-1]).unsqueeze(1), (h, c)


class TanhGaussianPolicy(Mlp):
    """pi(a|s, z) = tanh(u), u ~ N(mu, sigma); log-std head `last_fc_log_std`, clamped to [-20, 2].

    log pi(a) = sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2 + 1e-6)].
    """

    def __init__(
        self, hidden_sizes: list[int], obs_dim: int, action_dim: int, init_w: float = 1e-3
    ):
        super().__init__(hidden_sizes, output_size=action_dim, input_size=obs_dim, init_w=init_w)
        self.last_fc_log_std = nn.Linear(self.hidden_sizes[-1], action_dim)
        nn.init.uniform_(self.last_fc_log_std.weight, -init_w, init_w)
        nn.init.uniform_(self.last_fc_log_std.bias, -init_w, init_w)

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, with_log_pi: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(batch, obs_dim) -> action, mean, log_std, log_pi (batch, 1); reparameterised sample.

        With `deterministic` the action is tanh(mean); log_pi is None then, and when
        `with_log_pi` is False (acting in an env needs only the action).
        """
        h = self.hidden(obs)
        mean = self.last_fc(h)
        log_std = self.last_fc_log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        if deterministic:
            return torch.tanh(mean), mean, log_std, None
        std = log_std.exp()
        noise = torch.randn_like(mean)
        pre_tanh = mean + std * noise
        action = torch.tanh(pre_tanh)
        if not with_log_pi:
            return action, mean, log_std, None
        normal_log_prob = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_pi = (normal_log_prob - torch.log(1.0 - action.pow(2) + TANH_EPS)).sum(
            dim=-1, keepdim=True
        )
        return action, mean, log_std, log_pi

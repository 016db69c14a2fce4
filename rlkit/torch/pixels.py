"""Learning from pixels: the convolutional trunk, DrQ's random shift, and the context of image
observations.

One trunk maps a stack of uint8 frames (channels = frame_stack x 3, or x 1 in grayscale) to a
feature vector, SAC-AE's encoder (Yarats et al. 2019): pixels scaled to [-0.5, 0.5], 3x3
convolutions with ReLU (the first of stride 2), then Linear -> LayerNorm -> tanh. The context
encoder, Q1, Q2, V and the policy all read its features; only the Q losses and the encoder's KL
train it (rlkit.torch.pearl_trainer), and the target V reads a Polyak-averaged copy.

`random_shift` is DrQ's augmentation (Kostrikov et al. 2020; DrQ-v2's form): each image
replicate-padded by `pad` pixels and cropped back at its own random offset, the frames of one
stack moved together. It works on the uint8 frames by clamping indices (the same pixels as
padding with the border's copies), so no padded copy is made.

`PixelContext` is the encoder's input for a pixel run: the transitions' observations and next
observations as frames, their actions and rewards as numbers; the agent turns it into context
rows (features of o, a, r[, features of o']) with the trunk.
"""

from dataclasses import dataclass

import torch
from torch import nn

KERNEL = 3


def conv_output_side(size: int, layers: int) -> int:
    """The side of the last convolution's output for a `size` x `size` input: the first
    convolution (stride 2) gives (size - 3) // 2 + 1, each other one (stride 1) 2 less."""
    return (size - KERNEL) // 2 + 1 - (KERNEL - 1) * (layers - 1)


class ConvTrunk(nn.Module):
    """uint8 frame stacks (..., channels, size, size) -> features (..., feature_dim) in
    (-1, 1)."""

    def __init__(
        self, channels: int, size: int, layers: int, filters: int, feature_dim: int
    ) -> None:
        super().__init__()
        side = conv_output_side(size, layers)
        if side < 1:
            raise ValueError(f"{size}x{size} images are too small for {layers} conv layers")
        convs: list[nn.Module] = []
        for i in range(layers):
            convs += [
                nn.Conv2d(channels if i == 0 else filters, filters, KERNEL, 2 if i == 0 else 1)
            ]
            convs += [nn.ReLU()]
        self.convs = nn.Sequential(*convs)
        self.head = nn.Linear(filters * side * side, feature_dim)
        self.norm = nn.LayerNorm(feature_dim)
        self.feature_dim = feature_dim
        for module in self.convs:
            if isinstance(module, nn.Conv2d):  # SAC-AE and DrQ: orthogonal, ReLU gain
                nn.init.orthogonal_(module.weight, nn.init.calculate_gain("relu"))
                nn.init.zeros_(module.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).float() / 255.0 - 0.5
        h = self.convs(x).flatten(1)
        return torch.tanh(self.norm(self.head(h))).reshape(*lead, self.feature_dim)


def random_shift(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None):
    """Each frame stack of `frames` (..., channels, H, W) moved by its own random offset in
    [-pad, pad]^2, the border's pixels repeated where the image comes in (replicate padding,
    then a crop back to H x W)."""
    if pad == 0:
        return frames
    lead, (c, h, w) = frames.shape[:-3], frames.shape[-3:]
    flat = frames.reshape(-1, c, h, w)
    n = flat.shape[0]
    shifts = torch.randint(
        -pad, pad + 1, (n, 2), device=frames.device, generator=generator
    )  # (n, 2): rows, columns
    rows = (torch.arange(h, device=frames.device) + shifts[:, :1]).clamp_(0, h - 1)  # (n, h)
    cols = (torch.arange(w, device=frames.device) + shifts[:, 1:]).clamp_(0, w - 1)  # (n, w)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    shifted = torch.gather(flat.reshape(n, c, h * w), 2, index)
    return shifted.reshape(*lead, c, h, w)


@dataclass
class PixelContext:
    """The context of a pixel run, per task and transition: `obs` (tasks, n, C, H, W) uint8,
    `numbers` (tasks, n, action_dim + 1) the actions and rewards, `next_obs` like `obs` when
    the context holds o' (use_next_obs_in_context), else None."""

    obs: torch.Tensor
    numbers: torch.Tensor
    next_obs: torch.Tensor | None = None

    @property
    def shape(self) -> torch.Size:
        """(tasks, n), as a context tensor's first two dimensions."""
        return self.numbers.shape[:2]

    def __getitem__(self, index) -> "PixelContext":
        """The same index on every part's (tasks, n) dimensions."""
        return PixelContext(
            self.obs[index],
            self.numbers[index],
            None if self.next_obs is None else self.next_obs[index],
        )

    def map_frames(self, fn) -> "PixelContext":
        """A context whose frames are fn(frames) (augmentation)."""
        return PixelContext(
            fn(self.obs), self.numbers, None if self.next_obs is None else fn(self.next_obs)
        )

    def rows(self, trunk: ConvTrunk) -> torch.Tensor:
        """The encoder's input rows (tasks, n, features + action_dim + 1 [+ features])."""
        parts = [trunk(self.obs), self.numbers]
        if self.next_obs is not None:
            parts.append(trunk(self.next_obs))
        return torch.cat(parts, dim=-1)

"""The pixel meta-gradient step's time, frames rendered per second, and bytes per stored
transition against the reference's image branch.

- Step: one rlkit.torch.pearl_trainer step of a pixel run on synthetic uint8 frames at the
  sizes of a config (trunk, augmentation, the encoder on the context's features, twin Q, V,
  policy), the median of `--steps` steps after warm-up, with its FLOPs (torch's
  FlopCounterMode: convolutions and matmuls, forward and backward).
- Rendering: frames per second of PixelObservations.frame() for the point robot (numpy) and
  for half-cheetah at the config's size with each offscreen backend that works here (EGL,
  OSMesa), each in its own process.
- Storage: bytes per stored transition of our FrameReplayBuffer (uint8 frames, each stored
  once, plus one pad position per trajectory of max_path_length) against the image branch of
  the reference (katerakelly/oyster e6b59e4: 64x64x3 images flattened into float64 obs and
  next_obs in each buffer, as its simple_replay_buffer stores them).

    python benchmarks/pixel_update.py [--configs A.json B.json] [--steps 10] [--device cpu]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import print_machine  # noqa: E402

from rlkit.data_management.multitask_replay_buffer import FrameReplayBuffer  # noqa: E402
from rlkit.launchers.config import load_config  # noqa: E402
from rlkit.launchers.launcher import build_trainer  # noqa: E402
from rlkit.torch.pearl_trainer import RLBatch  # noqa: E402
from rlkit.torch.pixels import PixelContext  # noqa: E402

CONFIGS = ["configs/point-robot-pixels-quick.json", "configs/cheetah-vel-pixels.json"]
ACTION_DIMS = {"point-robot": 2, "sparse-point-robot": 2, "cheetah-vel": 6, "cheetah-dir": 6}
REFERENCE_IMAGE = 64 * 64 * 3  # the image branch's observation, float64 numbers

RENDER_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from rlkit.launchers.config import load_config, apply_override
from rlkit.launchers.launcher import make_env
variant = load_config({config!r})
apply_override(variant, "pixels.enabled=true")
env = make_env(variant)
env.reset()
for _ in range(20):
    env.frame()
start = time.perf_counter()
n = 0
while time.perf_counter() - start < 3.0:
    env.step(env.action_space.sample())
    n += 1
print(n / (time.perf_counter() - start))
"""


def channels(variant: dict) -> int:
    pixels = variant["pixels"]
    return pixels["frame_stack"] * (1 if pixels["grayscale"] else 3)


def synthetic_inputs(variant: dict, device: torch.device) -> tuple[PixelContext, RLBatch]:
    algo, size = variant["algo_params"], variant["pixels"]["size"]
    tasks, b, n = algo["meta_batch"], algo["batch_size"], algo["embedding_mini_batch_size"]
    action_dim = ACTION_DIMS[variant["env_name"]]
    g = torch.Generator().manual_seed(0)

    def frames(*lead):
        shape = (*lead, channels(variant), size, size)
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).to(device)

    context = PixelContext(
        frames(tasks, n),
        torch.randn(tasks, n, action_dim + 1, generator=g).to(device),
        frames(tasks, n) if algo["use_next_obs_in_context"] else None,
    )
    batch = RLBatch(
        obs=frames(tasks, b),
        actions=(torch.rand(tasks, b, action_dim, generator=g) * 2 - 1).to(device),
        rewards=torch.randn(tasks, b, generator=g).to(device),
        next_obs=frames(tasks, b),
        terminals=torch.zeros(tasks, b, device=device),
    )
    return context, batch


def time_step(variant: dict, steps: int, device: torch.device) -> tuple[float, float]:
    """(median ms per step, GFLOP per step)."""
    size = variant["pixels"]["size"]
    action_dim = ACTION_DIMS[variant["env_name"]]
    trainer = build_trainer(variant, channels(variant) * size * size, action_dim)
    for net in trainer.networks.values():
        net.to(device)
    context, batch = synthetic_inputs(variant, device)
    with FlopCounterMode(display=False) as counter:
        trainer.update(context, batch)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        trainer.update(context, batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[2:]), counter.get_total_flops() / 1e9


def render_rate(config: str, backend: str | None) -> str:
    env = dict(os.environ)
    if backend is not None:
        env["MUJOCO_GL"] = backend
    child = RENDER_CHILD.format(root=str(ROOT), config=config)
    result = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=300
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"fails ({lines[-1][:80] if lines else result.returncode})"
    return f"{float(result.stdout):.0f} frames/s"


def stored_bytes(variant: dict) -> tuple[float, int]:
    """Ours per transition (the pad of each max_path_length trajectory shared out), and the
    reference branch's."""
    pixels, algo = variant["pixels"], variant["algo_params"]
    frame_channels = 1 if pixels["grayscale"] else 3
    buffer = FrameReplayBuffer(
        1,
        (frame_channels, pixels["size"], pixels["size"]),
        pixels["frame_stack"],
        ACTION_DIMS[variant["env_name"]],
        [0],
    )
    n = algo["max_path_length"]
    ours = buffer.bytes_per_transition * (n + 1) / n
    action_dim = ACTION_DIMS[variant["env_name"]]
    # obs and next_obs (float64 images) + action, reward, terminal, sparse reward (float64)
    reference = 8 * (2 * REFERENCE_IMAGE + action_dim + 3)
    return ours, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print_machine()
    print(f"threads: {torch.get_num_threads()}, device: {device}")
    rows = []
    for config in args.configs:
        variant = load_config(config)
        variant["pixels"]["enabled"] = True
        ms, gflop = time_step(variant, args.steps, device)
        ours, reference = stored_bytes(variant)
        rows.append(
            {
                "config": config,
                "step_ms": round(ms, 1),
                "gflop_per_step": round(gflop, 2),
                "gflop_per_s": round(gflop / ms * 1000, 1),
                "bytes_per_transition": round(ours),
                "reference_branch_bytes": reference,
                "ratio": round(reference / ours, 1),
            }
        )
        print(json.dumps(rows[-1]))
    for config, backend in [
        ("configs/point-robot-pixels-quick.json", None),
        ("configs/cheetah-vel-pixels.json", "egl"),
        ("configs/cheetah-vel-pixels.json", "osmesa"),
    ]:
        size = load_config(config)["pixels"]["size"]
        what = f"{load_config(config)['env_name']} {size}x{size}" + (
            f", MUJOCO_GL={backend}" if backend else ", numpy"
        )
        print(f"render {what}: {render_rate(config, backend)}")


if __name__ == "__main__":
    main()

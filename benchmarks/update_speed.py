"""Meta-gradient steps per second at cheetah-vel sizes, against this machine's matmul throughput.

One step of rlkit.torch.pearl_trainer on synthetic data of the cheetah-vel config's sizes
(meta_batch 16, batch_size 256, embedding_batch_size 100, net_size 300, obs 20, action 6,
latent 5). Its FLOPs are counted by torch's FlopCounterMode (the matmuls of the forward and
backward passes); the achieved GFLOP/s is compared with dense fp32 matmul throughput measured
in the same run with the same thread count, for the update's own layer shape
(4096 x 300 @ 300 x 300) and for a large square matmul.

    python benchmarks/update_speed.py [--steps 20] [--device cpu|cuda]
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlkit.core.logger import library_versions  # noqa: E402
from rlkit.launchers.config import load_config  # noqa: E402
from rlkit.launchers.launcher import build_trainer  # noqa: E402
from rlkit.torch.pearl_trainer import RLBatch  # noqa: E402

OBS_DIM, ACTION_DIM = 20, 6  # cheetah-vel


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_inputs(variant: dict, device: torch.device) -> tuple[torch.Tensor, RLBatch]:
    algo = variant["algo_params"]
    tasks, batch = algo["meta_batch"], algo["batch_size"]
    context_dim = OBS_DIM + ACTION_DIM + 1
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    context = randn(tasks, algo["embedding_batch_size"], context_dim)
    rl_batch = RLBatch(
        obs=randn(tasks, batch, OBS_DIM),
        actions=randn(tasks, batch, ACTION_DIM).clamp(-1, 1),
        rewards=randn(tasks, batch),
        next_obs=randn(tasks, batch, OBS_DIM),
        terminals=torch.zeros(tasks, batch, device=device),
    )
    return context, rl_batch


def seconds_per_call(fn, device: torch.device, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def matmul_gflops(m: int, k: int, n: int, device: torch.device, calls: int) -> float:
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    seconds = seconds_per_call(lambda: torch.mm(a, b), device, calls)
    return 2 * m * k * n / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed meta-gradient steps")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}")
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"torch threads: {torch.get_num_threads()}, versions: {json.dumps(library_versions())}")

    variant = load_config("configs/cheetah-vel.json")
    torch.manual_seed(0)
    trainer = build_trainer(variant, OBS_DIM, ACTION_DIM)
    for net in trainer.networks.values():
        net.to(device)
    context, batch = synthetic_inputs(variant, device)

    def step():
        trainer.take_step(context, batch)

    step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    seconds = seconds_per_call(step, device, args.steps)
    achieved = flops / seconds / 1e9

    rows = variant["algo_params"]["meta_batch"] * variant["algo_params"]["batch_size"]
    width = variant["net_size"]
    calls = 20 if device.type == "cpu" else 200
    layer = matmul_gflops(rows, width, width, device, calls)
    square = matmul_gflops(2048, 2048, 2048, device, max(3, calls // 10))

    print(f"\nmeta-gradient step at cheetah-vel sizes ({rows} rows, net_size {width}):")
    print(f"  {seconds * 1e3:.1f} ms per step, {1 / seconds:.2f} steps/s")
    print(f"  {flops / 1e9:.1f} GFLOP per step (matmuls, forward + backward)")
    print(f"  {achieved:.1f} GFLOP/s achieved")
    print(f"dense fp32 matmul on this machine, {torch.get_num_threads()} threads:")
    print(f"  {rows} x {width} @ {width} x {width}: {layer:.1f} GFLOP/s")
    print(f"  2048 x 2048 @ 2048 x 2048: {square:.1f} GFLOP/s")
    print(f"update at {achieved / layer:.0%} of the layer-shaped matmul throughput")
    print(f"update at {achieved / square:.0%} of the large square matmul throughput")


if __name__ == "__main__":
    main()

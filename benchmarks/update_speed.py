"""Meta-gradient steps per second at cheetah-vel sizes, against this machine's matmul throughput.

One step of rlkit.torch.pearl_trainer on synthetic data of the cheetah-vel config's sizes
(meta_batch 16, batch_size 256, embedding_batch_size 100, net_size 300, obs 20, action 6,
latent 5). Its FLOPs are counted by torch's FlopCounterMode (the matmuls of the forward and
backward passes); the achieved GFLOP/s is compared with dense fp32 matmul throughput measured
in the same run with the same thread count:
  - the step's own matmuls (every mm/addmm of one step recorded with its shapes and memory
    layout, then replayed back to back: the time the step would take if it were only them);
  - the update's layer shape (4096 x 300 @ 300 x 300) and a large square matmul.
The same step written the reference's way (rlkit.torch.reference_trainer: per-task loops, full
critic gradients for min Q, per-parameter Adam) is timed beside it, and on CUDA also the step
replayed from a CUDA graph (rlkit.torch.cuda_graph, util_params.cuda_graph). The step, the
reference-style step and the matmul replay take turns in rounds (medians reported; the
fraction of the matmuls' throughput is taken within each round, then the median and range).

    python benchmarks/update_speed.py [--steps 40] [--rounds 10] [--device cpu|cuda]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_machine  # noqa: E402

from rlkit.launchers.config import load_config  # noqa: E402
from rlkit.launchers.launcher import build_trainer  # noqa: E402
from rlkit.torch.cuda_graph import GraphedPEARLTrainer  # noqa: E402
from rlkit.torch.pearl_trainer import RLBatch  # noqa: E402
from rlkit.torch.reference_trainer import (  # noqa: E402
    ReferenceStepTrainer,
    unfused_hidden_layers,
)

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


def interleaved_rounds(fns: dict, device: torch.device, calls: int, rounds: int = 5) -> dict:
    """Seconds per call of each function in each of `rounds` rounds of calls / rounds calls,
    the functions taking turns, so that this shared machine's drift (5-10% over minutes) weighs
    on all of them alike and their ratios within a round hold."""
    per_round = max(1, calls // rounds)
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / per_round)
    return times


def matmul_gflops(m: int, k: int, n: int, device: torch.device, calls: int) -> float:
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    seconds = seconds_per_call(lambda: torch.mm(a, b), device, calls)
    return 2 * m * k * n / seconds / 1e9


GEMMS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


class GemmRecorder(TorchDispatchMode):
    """Records every call of `ops` (the matmuls unless told): the op and each tensor
    argument's shape and strides."""

    def __init__(self, ops=GEMMS):
        super().__init__()
        self.ops = ops
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.ops:
            layouts = [(a.shape, a.stride()) for a in args if isinstance(a, torch.Tensor)]
            self.calls.append((func, layouts))
        return func(*args, **(kwargs or {}))


def gemm_replay(calls, device: torch.device):
    """A function running the recorded matmuls on random data of the same shapes and layouts."""
    g = torch.Generator().manual_seed(0)
    work = []
    for func, layouts in calls:
        tensors = []
        for shape, stride in layouts:
            t = torch.empty_strided(shape, stride).normal_(generator=g)
            tensors.append(t.to(device).as_strided(shape, stride))
        work.append((func, tensors))

    def replay():
        for func, tensors in work:
            func(*tensors)

    return replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed meta-gradient steps")
    parser.add_argument(
        "--rounds", type=int, default=10, help="rounds in which the timed calls take turns"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    print_machine(device)

    variant = load_config("configs/cheetah-vel.json")
    context, batch = synthetic_inputs(variant, device)

    def make_trainer(trainer_class=None):
        torch.manual_seed(0)
        trainer = build_trainer(variant, OBS_DIM, ACTION_DIM, trainer_class)
        for net in trainer.networks.values():
            net.to(device)
        return trainer

    trainer, reference = make_trainer(), make_trainer(ReferenceStepTrainer)

    def step():
        trainer.take_step(context, batch)

    step()
    # counted on the unfused layers: the fused linear + ReLU is the same matmul with the bias
    # and the ReLU applied in its epilogue, an op neither the counter nor the recorder knows
    with unfused_hidden_layers(), FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    with unfused_hidden_layers(), GemmRecorder() as recorder:
        step()
    replay = gemm_replay(recorder.calls, device)
    rounds = interleaved_rounds(
        {"step": step, "reference": lambda: reference.take_step(context, batch), "gemms": replay},
        device,
        args.steps,
        args.rounds,
    )
    timed = {name: statistics.median(values) for name, values in rounds.items()}
    seconds, reference_seconds, gemm_seconds = timed["step"], timed["reference"], timed["gemms"]
    achieved = flops / seconds / 1e9
    own = flops / gemm_seconds / 1e9
    # the fraction within each round (step and replay measured a second apart), then the median
    fractions = sorted(g / s for g, s in zip(rounds["gemms"], rounds["step"], strict=True))

    rows = variant["algo_params"]["meta_batch"] * variant["algo_params"]["batch_size"]
    width = variant["net_size"]
    calls = 20 if device.type == "cpu" else 200
    layer = matmul_gflops(rows, width, width, device, calls)
    square = matmul_gflops(2048, 2048, 2048, device, max(3, calls // 10))

    print(f"\nmeta-gradient step at cheetah-vel sizes ({rows} rows, net_size {width}):")
    print(f"  {seconds * 1e3:.1f} ms per step, {1 / seconds:.2f} steps/s")
    print(f"  {flops / 1e9:.1f} GFLOP per step (matmuls, forward + backward)")
    print(f"  {achieved:.1f} GFLOP/s achieved")
    print(
        f"the same step written the reference's way: {reference_seconds * 1e3:.1f} ms per step,"
        f" this one is {reference_seconds / seconds:.2f}x faster"
    )
    print(f"dense fp32 matmul on this machine, {torch.get_num_threads()} threads:")
    print(
        f"  the step's own {len(recorder.calls)} matmuls replayed alone: "
        f"{gemm_seconds * 1e3:.1f} ms, {own:.1f} GFLOP/s"
    )
    print(f"  {rows} x {width} @ {width} x {width}: {layer:.1f} GFLOP/s")
    print(f"  2048 x 2048 @ 2048 x 2048: {square:.1f} GFLOP/s")
    print(
        f"update at {statistics.median(fractions):.0%} of its own matmuls' throughput "
        f"(median of {len(fractions)} rounds, {fractions[0]:.0%}-{fractions[-1]:.0%})"
    )
    print(f"update at {achieved / layer:.0%} of the layer-shaped matmul throughput")
    print(f"update at {achieved / square:.0%} of the large square matmul throughput")
    if device.type != "cuda":
        return
    graphed = make_trainer(GraphedPEARLTrainer)
    graph_seconds = seconds_per_call(
        lambda: graphed.take_step(context, batch), device, args.steps, warmup=5
    )
    print(
        f"the step replayed from a CUDA graph (util_params.cuda_graph): "
        f"{graph_seconds * 1e3:.2f} ms per step, {1 / graph_seconds:.1f} steps/s, "
        f"{flops / graph_seconds / 1e9:.1f} GFLOP/s; {seconds / graph_seconds:.2f}x the eager "
        f"step, {reference_seconds / graph_seconds:.2f}x the reference-style step"
    )


if __name__ == "__main__":
    main()

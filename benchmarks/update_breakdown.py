"""Where a CPU meta-gradient step's time goes beyond its matmuls, at cheetah-vel sizes.

update_speed.py compares the step with its own matmuls replayed back to back. This script
measures, in one run, what separates the two:
  - the step with the fused hidden layers' bias-gradient sums skipped, then with their ReLU
    masks skipped too (timing only, these are not the update: the passes over the 4096 x 300
    gradients that no matmul does);
  - the fixed cost of a step at tiny sizes (Python, dispatch, autograd, optimizer calls);
  - the fused forward layers writing their outputs to memory not used for a while, as the step
    must (it keeps every activation for the backward pass), against memory just freed, as the
    back-to-back replay does.

    python benchmarks/update_breakdown.py [--steps 40] [--rounds 10]
"""

import argparse
import collections
import copy
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_machine  # noqa: E402
from update_speed import (  # noqa: E402
    ACTION_DIM,
    OBS_DIM,
    GemmRecorder,
    gemm_replay,
    interleaved_rounds,
    seconds_per_call,
    synthetic_inputs,
)

from rlkit.launchers.config import load_config  # noqa: E402
from rlkit.launchers.launcher import build_trainer  # noqa: E402
from rlkit.torch import networks  # noqa: E402
from rlkit.torch.reference_trainer import unfused_hidden_layers  # noqa: E402

FUSED = torch.ops.mkldnn._linear_pointwise.default
# activations a step holds at once (policy, twin Q, V, then min Q): outputs kept this long
# are written to memory that has left the caches
KEPT_OUTPUTS = 24


def _backward_without_sums(masks: bool):
    """_FusedLinearReLU's backward with zeros for the bias gradient instead of its sum and, if
    `masks` is false, without ReLU's mask. For timing only."""

    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        grad = grad_y
        if masks:
            grad = torch.ops.aten.threshold_backward.grad_input(grad_y, y, 0, grad_input=grad_y)
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = grad @ weight if need_x else None
        grad_weight = grad.t() @ x if need_weight else None
        grad_bias = grad.new_zeros(grad.shape[1]) if need_bias else None
        return grad_x, grad_weight, grad_bias

    return backward


@contextmanager
def fused_backward(backward):
    original = vars(networks._FusedLinearReLU)["backward"]
    networks._FusedLinearReLU.backward = staticmethod(backward)
    try:
        yield
    finally:
        networks._FusedLinearReLU.backward = original


def fresh_memory_cost(x_shape, w_shape, calls: int = 60) -> tuple[float, float]:
    """Seconds per fused call writing to just-freed memory, and to memory last used
    KEPT_OUTPUTS calls ago (its outputs kept alive, as the step keeps its activations)."""
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    b = torch.randn(w_shape[0])

    def timed(keep: int) -> float:
        kept = collections.deque(maxlen=keep)  # maxlen 0: each output freed at once
        for _ in range(keep + 5):
            kept.append(FUSED(x, w, b, "relu", [None], ""))
        start = time.perf_counter()
        for _ in range(calls):
            kept.append(FUSED(x, w, b, "relu", [None], ""))
        return (time.perf_counter() - start) / calls

    return timed(0), timed(KEPT_OUTPUTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed meta-gradient steps")
    parser.add_argument("--rounds", type=int, default=10, help="rounds the timed calls share")
    args = parser.parse_args()
    if not networks.FUSED_LINEAR_RELU:
        sys.exit("this torch build has no oneDNN fused linear + ReLU: nothing to break down")
    device = torch.device("cpu")
    print_machine(device)

    variant = load_config("configs/cheetah-vel.json")
    context, batch = synthetic_inputs(variant, device)

    def trainer_for(config):
        torch.manual_seed(0)
        return build_trainer(config, OBS_DIM, ACTION_DIM)

    trainers = {name: trainer_for(variant) for name in ("step", "no sums", "no sums or masks")}
    backwards = {
        "step": vars(networks._FusedLinearReLU)["backward"].__func__,
        "no sums": _backward_without_sums(masks=True),
        "no sums or masks": _backward_without_sums(masks=False),
    }

    def stepper(name):
        def step():
            with fused_backward(backwards[name]):
                trainers[name].take_step(context, batch)

        return step

    fns = {name: stepper(name) for name in trainers}
    with GemmRecorder(ops={FUSED}) as fused_calls:
        fns["step"]()
    fused_shapes = collections.Counter(
        (tuple(layouts[0][0]), tuple(layouts[1][0])) for _, layouts in fused_calls.calls
    )
    with unfused_hidden_layers(), GemmRecorder() as recorder:
        fns["step"]()
    fns["gemms"] = gemm_replay(recorder.calls, device)
    rounds = interleaved_rounds(fns, device, args.steps, args.rounds)
    ms = {name: statistics.median(values) * 1e3 for name, values in rounds.items()}

    tiny = copy.deepcopy(variant)
    tiny["net_size"] = 8
    tiny["algo_params"].update(batch_size=2, embedding_batch_size=2)
    tiny_context, tiny_batch = synthetic_inputs(tiny, device)
    tiny_trainer = trainer_for(tiny)

    def tiny_step():
        tiny_trainer.take_step(tiny_context, tiny_batch)

    fixed_ms = seconds_per_call(tiny_step, device, 100) * 1e3

    print("\nmeta-gradient step at cheetah-vel sizes, medians of the rounds:")
    print(f"  the step: {ms['step']:.1f} ms; its own matmuls replayed: {ms['gemms']:.1f} ms")
    print(
        f"  without the hidden layers' bias-gradient sums: {ms['no sums']:.1f} ms "
        f"({ms['step'] - ms['no sums']:.1f} ms)"
    )
    print(
        f"  without their sums and ReLU masks: {ms['no sums or masks']:.1f} ms "
        f"({ms['step'] - ms['no sums or masks']:.1f} ms); "
        f"the replay would be {ms['gemms'] / ms['no sums or masks']:.0%} of it"
    )
    print(f"  a step at tiny sizes (net_size 8, 2 rows per task): {fixed_ms:.1f} ms")
    print(
        f"fused forward layers, just-freed memory vs memory last used {KEPT_OUTPUTS} outputs ago:"
    )
    extra = 0.0
    for (x_shape, w_shape), count in sorted(fused_shapes.items()):
        warm, cold = fresh_memory_cost(x_shape, w_shape)
        extra += count * (cold - warm)
        print(
            f"  {x_shape} x {w_shape[::-1]}, {count} per step: {warm * 1e6:.0f} vs "
            f"{cold * 1e6:.0f} us"
        )
    print(f"  {extra * 1e3:.1f} ms per step for writing activations to memory out of the caches")


if __name__ == "__main__":
    main()

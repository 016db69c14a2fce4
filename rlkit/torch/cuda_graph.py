"""The meta-gradient step recorded once as a CUDA graph and replayed (`util_params.cuda_graph`).

At cheetah-vel sizes a step launches several hundred small kernels, and on a GPU launching them
costs more than their arithmetic. `GraphedPEARLTrainer` records the whole step (the five losses,
the three backward passes, the five Adam steps, the target update) once per input shape and
then replays it: the same kernels on the same memory, launched by one call.

Every step is a real step, on its own batch:
  - the first `warmup_steps` steps of an input shape run eagerly on a side stream (CUDA graph
    capture needs cuBLAS handles, optimizer state and the caching allocator warmed up);
  - the next step records the graph over fixed input tensors (recording runs nothing), copies
    its batch into those inputs and replays the graph;
  - later steps copy their batch in and replay.
Host-side values are frozen into the graph when it is recorded: the step reads nothing from the
host (no `.item()`, no Python numbers that change between steps), and the optimizers are fused
Adam, whose step counters live on the device. With auto_alpha the temperature's step is part of
the graph like the others: log alpha is a device tensor that its fused Adam updates in place,
and the target entropy a constant.

The returned outputs (statistics, the recurrent encoder's state) are the graph's fixed output
tensors: valid until the next step.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import torch

from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch, StepOutputs

EncoderState = tuple[torch.Tensor, torch.Tensor] | None


def _flatten(context: torch.Tensor, batch: RLBatch, state: EncoderState) -> list[torch.Tensor]:
    tensors = [context, batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.terminals]
    return tensors + (list(state) if state is not None else [])


def _unflatten(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, RLBatch, EncoderState]:
    context, obs, actions, rewards, next_obs, terminals, *state = tensors
    batch = RLBatch(obs, actions, rewards, next_obs, terminals)
    return context, batch, (tuple(state) if state else None)


def _map_outputs(fn: Callable, *outputs: StepOutputs) -> StepOutputs:
    """StepOutputs from applying `fn` field by field (to each tensor of the encoder state)."""
    values = {}
    for field in fields(StepOutputs):
        items = [getattr(out, field.name) for out in outputs]
        if items[0] is None:
            values[field.name] = None
        elif isinstance(items[0], tuple):
            values[field.name] = tuple(fn(*parts) for parts in zip(*items, strict=True))
        else:
            values[field.name] = fn(*items)
    return StepOutputs(**values)


@dataclass
class _Recording:
    """One input shape's graph: its fixed inputs and outputs and the replay call."""

    warm_steps: int = 0
    inputs: list[torch.Tensor] | None = None
    outputs: StepOutputs | None = None
    replay: Callable[[], object] | None = None


class GraphedPEARLTrainer(PEARLTrainer):
    """PEARLTrainer whose step is replayed from a CUDA graph after a few eager warm-up steps;
    the same update, step for step (tests/torch/test_cuda_graph.py)."""

    def __init__(self, *args, warmup_steps: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self._recordings: dict[tuple, _Recording] = {}
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    def update(self, context, batch, encoder_state=None) -> StepOutputs:
        inputs = _flatten(context, batch, encoder_state)
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        rec = self._recordings.setdefault(key, _Recording())
        if rec.replay is None and rec.warm_steps < self.warmup_steps:
            rec.warm_steps += 1
            step = partial(PEARLTrainer.update, self, context, batch, encoder_state)
            out = self._run_warmup(step, context.device)
            if rec.warm_steps == self.warmup_steps:
                rec.inputs = [torch.empty_like(t) for t in inputs]
                rec.outputs = _map_outputs(torch.empty_like, out)
            return out
        if rec.replay is None:
            rec.replay = self._record(lambda: self._recorded_step(rec), context.device)
        for fixed, new in zip(rec.inputs, inputs, strict=True):
            fixed.copy_(new)
        rec.replay()
        return rec.outputs

    def _recorded_step(self, rec: _Recording) -> None:
        out = super().update(*_unflatten(rec.inputs))
        _map_outputs(lambda fixed, new: fixed.copy_(new), rec.outputs, out)

    @property
    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [
            self.policy_optimizer,
            self.qf1_optimizer,
            self.qf2_optimizer,
            self.vf_optimizer,
            self.context_optimizer,
        ]
        return optimizers + ([self.alpha_optimizer] if self.auto_alpha else [])

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        """One side stream per device for the warm-up steps and the recordings: libraries that
        keep handles per stream (cuBLAS workspaces) create them while warming up, not while
        recording."""
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device=device)
        return self._streams[device]

    def _run_warmup(self, step: Callable[[], StepOutputs], device: torch.device) -> StepOutputs:
        """An eager step on the side stream, as CUDA's graph capture asks of the steps before it."""
        with torch.cuda.device(device):
            side = self._side_stream(device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = step()
            torch.cuda.current_stream().wait_stream(side)
        return out

    def _record(self, step: Callable[[], None], device: torch.device) -> Callable[[], object]:
        """Records `step` into a CUDA graph (running nothing); returns its replay."""
        for optimizer in self._optimizers:
            for group in optimizer.param_groups:
                if not group.get("fused"):
                    raise RuntimeError(
                        "a CUDA graph needs the fused Adam optimizers (their step counters "
                        "live on the device); an optimizer state loaded from elsewhere "
                        "switched them off"
                    )
                # fused Adam computes the same either way; the flag only allows the capture
                group["capturable"] = True
        graph = torch.cuda.CUDAGraph()
        try:
            with (
                torch.cuda.device(device),
                torch.cuda.graph(graph, stream=self._side_stream(device)),
            ):
                step()
        finally:
            for optimizer in self._optimizers:
                for group in optimizer.param_groups:
                    group["capturable"] = False
        return graph.replay

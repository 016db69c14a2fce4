"""The graphed step (rlkit.torch.cuda_graph) against the plain step, step for step.

On the CPU the two CUDA primitives (the side-stream warm-up and the graph recording) are
replaced by plain calls: recording runs nothing and a replay runs the recorded step on the
fixed input tensors. That checks everything around the graph: warm-up counts, one recording per
input shape, inputs copied into the fixed tensors before each replay, outputs copied out of
the step. With a CUDA device the real graph is checked against eager steps too.
"""

import csv
from functools import partial

import pytest
import torch
from conftest import TIME_COLUMNS, random_step_data

from rlkit.launchers import launcher
from rlkit.launchers.config import load_config
from rlkit.launchers.launcher import build_trainer
from rlkit.torch.cuda_graph import GraphedPEARLTrainer
from rlkit.torch.pearl_trainer import PEARLTrainer, RLBatch

OBS, ACT, TASKS, BATCH, CONTEXT = 3, 2, 3, 5, 4
WARMUP = 2


class PlainRecording(GraphedPEARLTrainer):
    """GraphedPEARLTrainer with CUDA's side stream and graph replaced by plain calls."""

    recordings = 0

    def _run_warmup(self, step, device):
        return step()

    def _record(self, step, device):
        self.recordings += 1
        return step


def variant(recurrent: bool, auto_alpha: bool = False) -> dict:
    v = load_config(None)
    v["net_size"] = 16
    v["latent_size"] = 2
    v["algo_params"]["recurrent"] = recurrent
    v["algo_params"]["auto_alpha"] = auto_alpha
    v["algo_params"]["alpha_lr"] = 0.05  # log alpha moves far enough to show
    return v


def twins(trainer_class, recurrent=False, device="cpu", auto_alpha=False):
    """A PEARLTrainer and a `trainer_class` trainer with the same initial networks."""
    trainers = []
    for cls in (PEARLTrainer, partial(trainer_class, warmup_steps=WARMUP)):
        torch.manual_seed(0)
        trainer = build_trainer(variant(recurrent, auto_alpha), OBS, ACT, cls)
        trainers.append(trainer.to(device))
    return trainers


def batches(steps: int, device="cpu"):
    """A different context and RL batch for every step (a stale input would show)."""
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        context, batch = random_step_data(g, TASKS, CONTEXT, BATCH, OBS, ACT)
        yield context.to(device), RLBatch(*(t.to(device) for t in vars(batch).values()))


def chunked_step(trainer, context, batch, chunks):
    """The training loop's step: the context in `chunks` pieces, the encoder state carried."""
    state, all_stats = None, []
    size = context.shape[1] // chunks
    for i in range(chunks):
        state, stats = trainer.take_step(
            context[:, i * size : (i + 1) * size], batch, state, want_stats=True
        )
        all_stats.append(stats)
    return state, all_stats


def assert_same_networks(a, b, **tolerance):
    """The networks' parameters, and log alpha with auto_alpha."""
    pairs = [
        (f"{name}.{pname}", p, dict(b.networks[name].named_parameters())[pname])
        for name, net in a.networks.items()
        for pname, p in net.named_parameters()
    ]
    if a.auto_alpha:
        assert abs(float(a.log_alpha.detach())) > 0.01  # it has moved from 0
        pairs.append(("log_alpha", a.log_alpha, b.log_alpha))
    for what, p, other in pairs:
        if tolerance:
            torch.testing.assert_close(p, other, **tolerance, msg=what)
        else:
            assert torch.equal(p, other), what


STEP_CASES = [(False, 1, False), (True, 2, False), (False, 1, True)]
STEP_IDS = ["mlp", "recurrent", "mlp-auto_alpha"]


@pytest.mark.parametrize(("recurrent", "chunks", "auto_alpha"), STEP_CASES, ids=STEP_IDS)
def test_replayed_steps_are_the_plain_steps(recurrent, chunks, auto_alpha):
    plain, graphed = twins(PlainRecording, recurrent, auto_alpha=auto_alpha)
    for step, (context, batch) in enumerate(batches(6)):
        torch.manual_seed(100 + step)
        state, stats = chunked_step(plain, context, batch, chunks)
        torch.manual_seed(100 + step)
        graphed_state, graphed_stats = chunked_step(graphed, context, batch, chunks)
        assert graphed_stats == stats, f"step {step}"
        if recurrent:
            assert all(torch.equal(g, s) for g, s in zip(graphed_state, state, strict=True))
        assert_same_networks(plain, graphed)
    # one recording per input shape: the first chunk starts from no encoder state
    assert graphed.recordings == chunks


def test_replays_reuse_the_fixed_tensors():
    _, graphed = twins(PlainRecording)
    outputs = [graphed.update(context, batch) for context, batch in batches(WARMUP + 3)]
    warm, replayed = outputs[:WARMUP], outputs[WARMUP:]
    assert warm[0].q1_pred is not warm[1].q1_pred
    assert all(out.q1_pred is replayed[0].q1_pred for out in replayed)
    assert graphed.recordings == 1


def test_at_least_one_warmup_step():
    with pytest.raises(ValueError, match="warmup_steps must be at least 1"):
        build_trainer(variant(False), OBS, ACT, partial(GraphedPEARLTrainer, warmup_steps=0))


def progress_rows(algorithm) -> list[dict]:
    with open(algorithm.logger.run_dir / "progress.csv", newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)
        ]


def test_a_run_of_replayed_steps_logs_what_a_plain_run_logs(make_algorithm, monkeypatch):
    """Through the training loop: statistics read from the fixed outputs, the divergence
    check's hooks inside the recorded step, evaluation between iterations."""
    settings = ("algo_params.num_iterations=2", "algo_params.num_train_steps_per_itr=4")
    plain = make_algorithm(*settings)
    assert plain.train()
    monkeypatch.setattr(launcher, "PEARLTrainer", partial(PlainRecording, warmup_steps=1))
    replayed = make_algorithm(*settings)
    assert type(replayed.trainer) is PlainRecording
    assert replayed.train()
    assert replayed.trainer.recordings == 1
    assert progress_rows(replayed) == progress_rows(plain)


def test_on_the_cpu_the_option_warns_and_steps_plainly(make_algorithm):
    with pytest.warns(UserWarning, match="cuda_graph is set but training runs on the CPU"):
        algo = make_algorithm("util_params.cuda_graph=true")
    assert type(algo.trainer) is PEARLTrainer


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("recurrent", "chunks", "auto_alpha"), STEP_CASES, ids=STEP_IDS)
def test_cuda_graph_matches_eager_steps(recurrent, chunks, auto_alpha):
    plain, graphed = twins(GraphedPEARLTrainer, recurrent, device="cuda", auto_alpha=auto_alpha)
    for step, (context, batch) in enumerate(batches(8, device="cuda")):
        torch.manual_seed(100 + step)
        chunked_step(plain, context, batch, chunks)
        torch.manual_seed(100 + step)
        chunked_step(graphed, context, batch, chunks)
    assert all(rec.replay is not None for rec in graphed._recordings.values())
    assert_same_networks(plain, graphed, rtol=1e-4, atol=1e-5)

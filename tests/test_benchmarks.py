"""The per-task-loop baseline of the speed benchmarks (benchmarks/baseline.py) is what it
claims: single env slots, per-task sampling, the reference-style step, and nothing left patched
afterwards; the step breakdown's timing variants (benchmarks/update_breakdown.py) skip only what
they name."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit.core import evaluation, pearl_algorithm
from rlkit.data_management.multitask_replay_buffer import MultiTaskReplayBuffer
from rlkit.data_management.path import Path as Trajectory
from rlkit.launchers import launcher
from rlkit.samplers import online_adaptation, rollout
from rlkit.torch import networks
from rlkit.torch.cuda_graph import GraphedPEARLTrainer
from rlkit.torch.pearl_trainer import PEARLTrainer
from rlkit.torch.reference_trainer import ReferenceStepTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import baseline  # noqa: E402
import update_breakdown  # noqa: E402


def test_baseline_runs_an_iteration_one_env_at_a_time(make_algorithm, monkeypatch):
    slots = []
    single = baseline._rollout

    def counting_rollout(envs, *args, **kwargs):
        slots.append(len(envs))
        return single(envs, *args, **kwargs)

    monkeypatch.setattr(baseline, "_rollout", counting_rollout)
    with baseline.per_task_loops():
        algo = make_algorithm("algo_params.num_iterations=1")
        assert type(algo.trainer) is ReferenceStepTrainer
        algo.train()
    assert slots and set(slots) == {1}
    # initial data, prior + extra data of 3 tasks, buffer-posterior eval of 3 tasks
    assert len(slots) >= 6 + 3 * 2 + 3
    assert algo.epoch == 1 and np.isfinite(algo._train_stats["QF Loss"])


def test_baseline_samples_task_by_task_in_the_order_asked():
    buffer = MultiTaskReplayBuffer(100, 2, 1, tasks=[0, 1, 2])
    for task in (0, 1, 2):
        n = 10 + task
        buffer.add_path(
            task,
            Trajectory(
                observations=np.full((n, 2), task, np.float32),
                actions=np.zeros((n, 1), np.float32),
                rewards=np.arange(n, dtype=np.float32),
                sparse_rewards=np.zeros(n, np.float32),
                next_observations=np.zeros((n, 2), np.float32),
                terminals=np.zeros(n, np.float32),
                successes=np.zeros(n, np.float32),
            ),
        )
    with baseline.per_task_loops():
        batch = buffer.random_batch([2, 0], 5, np.random.default_rng(0))
    assert batch["observations"].shape == (2, 5, 2)
    assert np.all(batch["observations"][0] == 2) and np.all(batch["observations"][1] == 0)


def test_baseline_patches_are_undone():
    def patched():
        return (
            pearl_algorithm.rollout,
            evaluation.rollout,
            evaluation.adapt_online,
            MultiTaskReplayBuffer.random_batch,
        )

    before = patched()
    with baseline.per_task_loops():
        assert pearl_algorithm.rollout is baseline.one_slot_rollout
        assert evaluation.rollout is baseline.one_slot_rollout
        assert evaluation.adapt_online is baseline.one_slot_adapt_online
        assert launcher.GraphedPEARLTrainer is ReferenceStepTrainer
    after = patched()
    assert after == before
    assert before[0] is rollout.rollout and before[1] is rollout.rollout
    assert before[2] is online_adaptation.adapt_online
    assert launcher.PEARLTrainer is PEARLTrainer
    assert launcher.GraphedPEARLTrainer is GraphedPEARLTrainer


def _fused_layer_grads(x, fc):
    x = x.clone().requires_grad_(True)
    fc.zero_grad(set_to_none=True)
    (networks.linear_relu(x, fc) * torch.arange(1.0, 4.0)).sum().backward()
    return x.grad, fc.weight.grad, fc.bias.grad


@pytest.mark.skipif(not networks.FUSED_LINEAR_RELU, reason="needs oneDNN's fused linear + ReLU")
def test_breakdown_variants_skip_only_what_they_name():
    torch.manual_seed(0)
    x, fc = torch.randn(networks.FUSED_MIN_ROWS, 4), torch.nn.Linear(4, 3)
    torch.nn.init.constant_(fc.bias, 1.0)  # every unit active on some rows, dead on others
    real = _fused_layer_grads(x, fc)
    original = vars(networks._FusedLinearReLU)["backward"]
    no_sums = update_breakdown._backward_without_sums(masks=True)
    with update_breakdown.fused_backward(no_sums):
        grad_x, grad_w, grad_b = _fused_layer_grads(x, fc)
    assert torch.equal(grad_x, real[0]) and torch.equal(grad_w, real[1])
    assert torch.count_nonzero(real[2]) == 3 and torch.count_nonzero(grad_b) == 0
    no_masks = update_breakdown._backward_without_sums(masks=False)
    with update_breakdown.fused_backward(no_masks):
        grad_x, _, _ = _fused_layer_grads(x, fc)
    assert not torch.equal(grad_x, real[0])  # ReLU's zeros let through
    assert vars(networks._FusedLinearReLU)["backward"] is original
    assert all(torch.equal(a, b) for a, b in zip(_fused_layer_grads(x, fc), real, strict=True))

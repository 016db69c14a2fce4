"""The per-task-loop baseline the speed benchmarks compare against.

`per_task_loops()` makes the training loop work the way the reference implementation does,
without changing what it computes:
  - collection and evaluation step one env at a time, one policy call per env step
    (every batched rollout and online adaptation is split into single-slot calls);
  - RL batches and context are sampled task by task and stacked;
  - the meta-gradient step is rlkit.torch.reference_trainer.ReferenceStepTrainer (per-task
    posterior/KL/z loops, full critic graph for min Q, per-parameter Adam), which the update's
    test checks against ours.
Only for benchmarks: it patches module attributes while the context is open.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from rlkit.core import evaluation, pearl_algorithm
from rlkit.data_management.multitask_replay_buffer import MultiTaskReplayBuffer
from rlkit.launchers import launcher
from rlkit.torch.reference_trainer import ReferenceStepTrainer

_rollout = pearl_algorithm.rollout
_adapt_online = evaluation.adapt_online
_random_batch = MultiTaskReplayBuffer.random_batch


def one_slot_rollout(envs, agent, z, max_path_length, deterministic=False, on_step=None):
    paths = []
    for s, env in enumerate(envs):
        hook = None if on_step is None else (lambda _k, e, s=s: on_step(s, e))
        paths += _rollout([env], agent, z[s : s + 1], max_path_length, deterministic, hook)
    return paths


def one_slot_adapt_online(envs, agent, *, on_step=None, **kwargs):
    slot_paths, means, variances = [], [], []
    for s, env in enumerate(envs):
        hook = None if on_step is None else (lambda _k, j, e, s=s: on_step(s, j, e))
        paths, mean, var = _adapt_online([env], agent, on_step=hook, **kwargs)
        slot_paths += paths
        means.append(mean)
        variances.append(var)
    return slot_paths, torch.cat(means), torch.cat(variances)


def _per_task(sample):
    def sample_each(self, tasks, n, rng):
        parts = [sample(self, [task], n, rng) for task in np.atleast_1d(tasks)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    return sample_each


@contextmanager
def per_task_loops() -> Iterator[None]:
    """Within the context, algorithms built by rlkit.launchers.launcher use the baseline."""
    patches = [
        (pearl_algorithm, "rollout", one_slot_rollout),  # collection
        (evaluation, "rollout", one_slot_rollout),  # the buffer-posterior evaluation
        (evaluation, "adapt_online", one_slot_adapt_online),
        (launcher, "PEARLTrainer", ReferenceStepTrainer),
        # the baseline steps eagerly even where util_params.cuda_graph is set
        (launcher, "GraphedPEARLTrainer", ReferenceStepTrainer),
        (MultiTaskReplayBuffer, "random_batch", _per_task(_random_batch)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)

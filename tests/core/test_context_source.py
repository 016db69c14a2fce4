"""algo_params.context_source: what the encoder is given in the meta-training step."""

import numpy as np
import pytest
import torch

from rlkit.data_management.path import Path
from rlkit.launchers.config import ConfigError, apply_override, load_config, validate

OBS_DIM, ACTION_DIM = 2, 2  # point-robot


def tagged_path(tag: float, n: int) -> Path:
    """A path whose every transition is told apart by its reward, tag + its index / 1000:
    the buffer it came from is the reward's integer part. Its sparse reward is the dense one
    negated (sparse_of): unlike the dense one, and never 0."""
    ids = tag + np.arange(n) / 1000.0
    obs = np.stack([ids, -ids], axis=1)
    return Path(
        observations=obs,
        actions=np.stack([ids / 10, ids / 20], axis=1),
        rewards=ids,
        sparse_rewards=sparse_of(ids),
        next_observations=obs + 0.5,
        terminals=np.zeros(n),
        successes=np.zeros(n),
    )


def sparse_of(dense):
    """The sparse reward tagged_path gives a transition of dense reward `dense` (>= 1)."""
    return -dense


def recorded_training_step(algorithm) -> list[tuple[torch.Tensor, object]]:
    """Fill the RL buffers with transitions tagged 1 and the encoder buffers with transitions
    tagged 2 (task t adds 10 * t), run one meta-training step and return the (context chunk,
    RL batch) of each trainer step."""
    for t in algorithm.train_tasks:
        algorithm.replay_buffer.add_path(t, tagged_path(1 + 10 * t, 200))
        algorithm.enc_replay_buffer.add_path(t, tagged_path(2 + 10 * t, 200))
    calls = []
    take_step = algorithm.trainer.take_step

    def record(context, batch, state, want_stats):
        calls.append((context.clone(), batch))
        return take_step(context, batch, state, want_stats=want_stats)

    algorithm.trainer.take_step = record
    indices = np.array(algorithm.train_tasks[:3])
    algorithm._do_training(indices)
    return calls, indices


def context_rewards(chunk: torch.Tensor) -> torch.Tensor:
    return chunk[..., OBS_DIM + ACTION_DIM]  # (o, a, r)


def task_and_buffer(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    whole = torch.floor(rewards).long()
    return whole // 10, whole % 10


@pytest.mark.parametrize("source, buffer_tag", [("encoder_buffer", 2), ("replay_buffer", 1)])
def test_context_from_a_buffer(make_algorithm, source, buffer_tag):
    algorithm = make_algorithm(
        f"algo_params.context_source={source}",
        "algo_params.embedding_batch_size=12",
        "algo_params.embedding_mini_batch_size=4",
    )
    calls, indices = recorded_training_step(algorithm)
    assert len(calls) == 3  # 12 // 4 chunks, each a trainer step
    contexts = torch.cat([chunk for chunk, _ in calls], dim=1)  # (tasks, 12, dim)
    assert contexts.shape == (3, 12, OBS_DIM + ACTION_DIM + 1)
    task, buffer = task_and_buffer(context_rewards(contexts))
    assert (buffer == buffer_tag).all()
    assert (task == torch.as_tensor(indices)[:, None]).all()  # each task's own context
    for _, batch in calls:  # the RL batch comes from the RL buffers, whatever the source
        task, buffer = task_and_buffer(batch.rewards)
        assert (buffer == 1).all() and batch.rewards.shape == (3, 8)
    if source == "replay_buffer":  # an independent sample, not the RL batch's rows
        for chunk, batch in calls:
            assert not torch.equal(context_rewards(chunk)[:, :4], batch.rewards[:, :4])


def test_context_is_the_rl_batch(make_algorithm):
    algorithm = make_algorithm(
        "algo_params.context_source=rl_batch",
        "algo_params.embedding_batch_size=12",
        "algo_params.embedding_mini_batch_size=4",
    )
    calls, indices = recorded_training_step(algorithm)
    assert len(calls) == 3
    batches = [batch for _, batch in calls]
    assert not torch.equal(batches[0].rewards, batches[1].rewards)  # a fresh batch per step
    for chunk, batch in calls:
        assert chunk.shape == (3, 8, OBS_DIM + ACTION_DIM + 1)  # batch_size rows
        assert torch.equal(chunk[..., :OBS_DIM], batch.obs)
        assert torch.equal(chunk[..., OBS_DIM : OBS_DIM + ACTION_DIM], batch.actions)
        assert torch.equal(context_rewards(chunk), batch.rewards)
        task, buffer = task_and_buffer(batch.rewards)
        assert (buffer == 1).all() and (task == torch.as_tensor(indices)[:, None]).all()


def test_rl_batch_context_with_next_obs_and_sparse_rewards(make_algorithm):
    algorithm = make_algorithm(
        "algo_params.context_source=rl_batch",
        "algo_params.use_next_obs_in_context=true",
        "algo_params.sparse_rewards=true",
        "env_params.n_tasks=9",
        config="configs/sparse-point-robot.json",
    )
    calls, _ = recorded_training_step(algorithm)
    for chunk, batch in calls:
        assert torch.equal(chunk[..., -OBS_DIM:], batch.next_obs)
        assert (batch.rewards >= 1).all()  # the RL batch keeps the dense reward
        # the context holds the same transitions' sparse rewards, as the other sources
        assert torch.equal(context_rewards(chunk), sparse_of(batch.rewards))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo_params.context_source=recent"], "context_source must be one of"),
        (
            ["algo_params.context_source=rl_batch", "algo_params.recurrent=true"],
            "needs the MLP encoder",
        ),
    ],
)
def test_bad_context_source(overrides, message):
    variant = load_config("configs/point-robot.json")
    for expression in overrides:
        apply_override(variant, expression)
    with pytest.raises(ConfigError, match=message):
        validate(variant, "configs/point-robot.json")


def test_default_is_the_encoder_buffer():
    assert load_config("configs/point-robot.json")["algo_params"]["context_source"] == (
        "encoder_buffer"
    )

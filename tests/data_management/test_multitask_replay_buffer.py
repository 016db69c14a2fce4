"""Per-task FIFO buffers: contents, wrap-around, growth, batched sampling, trajectories."""

import io

import numpy as np
import pytest
import torch

from rlkit.data_management.multitask_replay_buffer import MultiTaskReplayBuffer
from rlkit.data_management.path import Path


def make_path(n, start=0.0, obs_dim=2, action_dim=1):
    values = start + np.arange(n, dtype=np.float32)
    return Path(
        observations=np.repeat(values[:, None], obs_dim, 1),
        actions=np.repeat(values[:, None], action_dim, 1),
        rewards=values.copy(),
        sparse_rewards=-values,
        next_observations=np.repeat(values[:, None] + 0.5, obs_dim, 1),
        terminals=np.zeros(n, dtype=np.float32),
        successes=np.zeros(n, dtype=np.float32),
    )


def test_paths_are_stored_per_task_and_sampled_for_many_tasks_at_once():
    buffer = MultiTaskReplayBuffer(100, 2, 1, tasks=[4, 7])
    buffer.add_path(4, make_path(5, start=0))
    buffer.add_path(7, make_path(3, start=100))
    rng = np.random.default_rng(0)
    batch = buffer.random_batch([7, 4, 7], 50, rng)
    assert batch["observations"].shape == (3, 50, 2)
    assert batch["rewards"].shape == (3, 50)
    assert set(batch["rewards"][0]) == {100, 101, 102}
    assert set(batch["rewards"][1]) == {0, 1, 2, 3, 4}
    # fields stay aligned row by row
    np.testing.assert_array_equal(batch["sparse_rewards"], -batch["rewards"])
    np.testing.assert_array_equal(batch["next_observations"][..., 0], batch["rewards"] + 0.5)


def test_fifo_wraps_around_and_drops_overwritten_trajectories():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0])
    buffer.add_path(0, make_path(4, start=0))
    buffer.add_path(0, make_path(4, start=10))
    buffer.add_path(0, make_path(4, start=20))
    assert buffer.size(0) == 10
    assert buffer.num_trajectories(0) == 2
    rewards = set(buffer.random_batch([0], 500, np.random.default_rng(0))["rewards"][0])
    # the first trajectory's first two transitions were overwritten
    assert rewards == {2, 3, 10, 11, 12, 13, 20, 21, 22, 23}
    sequences = buffer.random_sequences([0], 8, np.random.default_rng(1))["rewards"][0]
    for k in range(0, 8, 4):  # whole surviving trajectories, in order
        assert list(sequences[k : k + 4]) in ([10, 11, 12, 13], [20, 21, 22, 23])


def test_capacity_grows_with_the_data_not_with_max_size():
    buffer = MultiTaskReplayBuffer(1_000_000, 2, 1, tasks=range(50), initial_capacity=16)
    assert buffer._data["observations"].nbytes == 50 * 16 * 2 * 4
    buffer.add_path(3, make_path(40))
    assert buffer._capacity == 64
    assert buffer.size(3) == 40
    # within the capacity nothing is reallocated (no copy of every task's data per path)
    arrays = dict(buffer._data)
    buffer.add_path(4, make_path(60))
    buffer.add_path(3, make_path(20))
    assert all(buffer._data[name] is arrays[name] for name in arrays)


def test_clear_empties_one_task_only():
    buffer = MultiTaskReplayBuffer(100, 2, 1, tasks=[0, 1])
    buffer.add_path(0, make_path(5))
    buffer.add_path(1, make_path(5))
    buffer.clear(0)
    assert buffer.size(0) == 0 and buffer.num_trajectories(0) == 0
    assert buffer.size(1) == 5
    with pytest.raises(ValueError, match="empty buffer of task 0"):
        buffer.random_batch([0], 4, np.random.default_rng(0))
    with pytest.raises(KeyError, match="task 9"):
        buffer.size(9)


def test_sequences_concatenate_whole_trajectories_and_cut_the_last():
    buffer = MultiTaskReplayBuffer(100, 2, 1, tasks=[0])
    buffer.add_path(0, make_path(3, start=0))
    buffer.add_path(0, make_path(3, start=10))
    seq = buffer.random_sequences([0], 7, np.random.default_rng(2))["rewards"][0]
    assert len(seq) == 7
    for k in (0, 3):
        assert list(seq[k : k + 3]) in ([0, 1, 2], [10, 11, 12])
    assert seq[6] in (0, 10)


def saved_size(buffer):
    data = io.BytesIO()
    torch.save(buffer.state_dict(), data)
    return len(data.getvalue())


def test_state_dict_round_trip_holds_only_the_stored_transitions():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5], initial_capacity=4)
    for start in (0, 10, 20):  # task 0 wraps around and drops its first trajectory
        buffer.add_path(0, make_path(4, start=start))
    buffer.add_path(5, make_path(3, start=100))
    buffer.add_path(5, make_path(2, start=200))
    buffer.clear(5)
    buffer.add_path(5, make_path(2, start=300))
    # through a file, as a checkpoint goes
    data = io.BytesIO()
    torch.save(buffer.state_dict(), data)
    data.seek(0)
    restored = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5])
    restored.load_state_dict(torch.load(data, weights_only=True))
    for task in (0, 5):
        assert restored.size(task) == buffer.size(task)
        assert restored.num_trajectories(task) == buffer.num_trajectories(task)
    for method in ("random_batch", "random_sequences"):
        expected = getattr(buffer, method)([0, 5, 0], 9, np.random.default_rng(3))
        got = getattr(restored, method)([0, 5, 0], 9, np.random.default_rng(3))
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
    # both go on alike: the FIFO position and the trajectory bookkeeping came back too
    for b in (buffer, restored):
        b.add_path(0, make_path(4, start=30))
    assert restored.num_trajectories(0) == buffer.num_trajectories(0) == 2
    expected = buffer.random_sequences([0], 12, np.random.default_rng(4))["rewards"]
    np.testing.assert_array_equal(
        restored.random_sequences([0], 12, np.random.default_rng(4))["rewards"], expected
    )
    with pytest.raises(ValueError, match="other tasks"):
        MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 6]).load_state_dict(buffer.state_dict())


def test_saved_size_grows_with_the_data_not_with_max_size():
    buffer = MultiTaskReplayBuffer(1_000_000, 2, 1, tasks=range(20))
    empty = saved_size(buffer)
    buffer.add_path(0, make_path(1000))
    one = saved_size(buffer)
    buffer.add_path(1, make_path(1000))
    two = saved_size(buffer)
    per_transition = (2 + 1 + 1 + 1 + 2 + 1) * 4  # float32 fields
    assert one - empty == pytest.approx(1000 * per_transition, rel=0.05)
    assert two - one == pytest.approx(1000 * per_transition, rel=0.05)
    assert empty < 50_000

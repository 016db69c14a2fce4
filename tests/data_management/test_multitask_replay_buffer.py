"""Per-task FIFO buffers: contents, wrap-around, chunks, batched sampling, trajectories, and
saving them incrementally (data files named by segments)."""

import io

import numpy as np
import pytest
import torch
from checkpoint_cost import single_file_state

from rlkit.data_management.multitask_replay_buffer import CHUNK_BYTES, MultiTaskReplayBuffer
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


class FlatRings:
    """An independent model of the buffers: one flat ring of max_size positions per task."""

    def __init__(self, max_size, tasks, obs_dim=2):
        self.max_size = max_size
        self.rewards = {t: np.full(max_size, np.nan, np.float32) for t in tasks}
        self.obs = {t: np.full((max_size, obs_dim), np.nan, np.float32) for t in tasks}
        self.top = dict.fromkeys(tasks, 0)
        self.size = dict.fromkeys(tasks, 0)

    def add(self, task, path):
        for i in range(len(path)):
            self.rewards[task][self.top[task]] = path.rewards[i]
            self.obs[task][self.top[task]] = path.observations[i]
            self.top[task] = (self.top[task] + 1) % self.max_size
        self.size[task] = min(self.max_size, self.size[task] + len(path))

    def clear(self, task):
        self.top[task] = self.size[task] = 0


def fill_at_random(buffer, model, rng, steps, clear_every=0):
    """Paths of random lengths into random tasks (some cleared), into both the buffer and the
    flat model; the values count up, so every stored transition is distinct."""
    for step in range(steps):
        task = int(rng.choice(buffer.tasks))
        if clear_every and step % clear_every == clear_every - 1:
            buffer.clear(task)
            model.clear(task)
            continue
        path = make_path(int(rng.integers(1, 9)), start=1000.0 * step)
        buffer.add_path(task, path)
        model.add(task, path)


def test_chunked_storage_gathers_what_a_flat_array_holds_at_the_same_indices():
    tasks = [3, 8, 9]
    buffer = MultiTaskReplayBuffer(40, 2, 1, tasks=tasks, chunk_len=7)  # 6 chunks, last 5 long
    model = FlatRings(40, tasks)
    rng = np.random.default_rng(0)
    fill_at_random(buffer, model, rng, 60, clear_every=9)
    # then every task past the last chunk's start (position 35), so that each row's stride
    # counts in every chunk, the short last one included
    for step, task in enumerate(tasks):
        while model.size[task] <= 35:
            path = make_path(8, start=1e5 + 1000.0 * step + model.size[task])
            buffer.add_path(task, path)
            model.add(task, path)
    assert len(buffer._chunks) == 6 and buffer._chunks[-1]["rewards"].shape == (3, 5)
    order = np.array([9, 3, 8, 8, 9, 3])  # every task twice: chunk rows 2, 0, 1, 1, 2, 0
    rows = buffer._rows(order)
    sizes = np.array([model.size[t] for t in order])
    idx = (rng.random((len(order), 300)) * sizes[:, None]).astype(np.int64)
    got = buffer._gather(rows, idx)
    expected_rewards = np.stack([model.rewards[t][i] for t, i in zip(order, idx, strict=True)])
    expected_obs = np.stack([model.obs[t][i] for t, i in zip(order, idx, strict=True)])
    np.testing.assert_array_equal(got["rewards"], expected_rewards)
    np.testing.assert_array_equal(got["observations"], expected_obs)
    # every task's row was sampled from every chunk: the gather crossed chunk boundaries
    for task_idx in idx:
        assert len(np.unique(task_idx // 7)) == 6


def test_growing_never_moves_stored_data():
    buffer = MultiTaskReplayBuffer(1_000_000, 2, 1, tasks=range(50), chunk_len=64)
    assert buffer._chunks == []  # nothing is allocated before data comes
    buffer.add_path(3, make_path(40))
    first = buffer._chunks[0]["observations"]
    assert len(buffer._chunks) == 1 and first.shape == (50, 64, 2)
    buffer.add_path(3, make_path(100, start=40))
    buffer.add_path(4, make_path(10))
    # two more chunks for task 3's positions 64..139; the first is the same array, unmoved
    assert len(buffer._chunks) == 3
    assert buffer._chunks[0]["observations"] is first
    np.testing.assert_array_equal(first[3, :, 0], np.arange(64))


def test_default_chunk_spans_a_fixed_address_space():
    small = MultiTaskReplayBuffer(1_000_000, 2, 1, tasks=range(10))
    assert small.chunk_len == 1_000_000  # all of max_size: one chunk, one gather per field
    humanoid = MultiTaskReplayBuffer(1_000_000, 376, 17, tasks=range(100))
    assert humanoid.bytes_per_transition == (376 * 2 + 17 + 3) * 4
    chunk_bytes = humanoid.chunk_len * 100 * humanoid.bytes_per_transition
    assert CHUNK_BYTES - 100 * humanoid.bytes_per_transition < chunk_bytes <= CHUNK_BYTES


def test_chunks_shrink_where_the_address_space_is_refused(monkeypatch):
    buffer = MultiTaskReplayBuffer(1000, 2, 1, tasks=[0, 1])
    assert buffer.chunk_len == 1000
    refusals = []
    original = buffer._new_chunk

    def new_chunk():
        if len(refusals) < 2:
            refusals.append(buffer.chunk_len)
            raise OSError(12, "Cannot allocate memory")
        return original()

    monkeypatch.setattr(buffer, "_new_chunk", new_chunk)
    buffer.add_path(1, make_path(40))
    assert refusals == [1000, 125] and buffer.chunk_len == 15
    assert len(buffer._chunks) == 3  # positions 0..39 in chunks of 15
    batch = buffer.random_batch([1], 2000, np.random.default_rng(0))
    assert set(batch["rewards"][0]) == set(range(40))
    # once data is stored the chunk length is fixed: a refusal then is an error
    refusals.clear()
    with pytest.raises(OSError):
        buffer.add_path(1, make_path(20))


def save(buffer, files, limit=None):
    """What a checkpoint does with a buffer: its pending transitions into new files (through
    bytes, as on disk), then its bookkeeping through bytes too."""
    while (content := buffer.pending(limit)) is not None:
        data = io.BytesIO()
        torch.save(content, data)
        files[len(files)] = data.getvalue()
        buffer.mark_saved(len(files) - 1)
    data = io.BytesIO()
    torch.save(buffer.state_dict(), data)
    return data.getvalue()


def restore(state_bytes, files, chunk_len=5, tasks=(0, 5, 6)):
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=list(tasks), chunk_len=chunk_len)
    state = torch.load(io.BytesIO(state_bytes), weights_only=True)
    buffer.load_state_dict(state, lambda f: torch.load(io.BytesIO(files[f]), weights_only=True))
    return buffer


def assert_same(a, b, tasks=(0, 5, 6)):
    for task in tasks:
        assert a.size(task) == b.size(task)
        assert a.num_trajectories(task) == b.num_trajectories(task)
    sampled = [t for t in tasks if a.size(t)]
    for method in ("random_batch", "random_sequences"):
        expected = getattr(a, method)(sampled * 2, 9, np.random.default_rng(3))
        got = getattr(b, method)(sampled * 2, 9, np.random.default_rng(3))
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])


def test_saves_write_only_new_transitions_and_restore_exactly():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5, 6], chunk_len=3)
    files = {}
    buffer.add_path(0, make_path(4, start=0))
    buffer.add_path(5, make_path(3, start=100))
    save(buffer, files)
    assert len(files) == 1
    assert save(buffer, files) and len(files) == 1  # nothing new: no file
    for start in (10, 20):  # task 0 wraps around and drops its first trajectory
        buffer.add_path(0, make_path(4, start=start))
    buffer.clear(5)
    buffer.add_path(5, make_path(2, start=300))
    buffer.add_path(6, make_path(6, start=600))
    state = save(buffer, files)
    second = torch.load(io.BytesIO(files[1]), weights_only=True)
    # the second file holds the 8 + 2 + 6 transitions added since the first, nothing else
    assert sorted(second["rewards"].tolist()) == sorted(
        [*range(10, 14), *range(20, 24), 300, 301, *range(600, 606)]
    )
    # file 0 still holds task 0's positions 2 and 3 (rewards 2, 3); task 5's part is cleared
    assert buffer.files() == {0, 1}
    # restored with any chunking: the same contents, positions and trajectories
    copies = [restore(state, files, chunk_len) for chunk_len in (1, 4, 10)]
    for restored in copies:
        assert_same(buffer, restored)
    for b in (buffer, *copies):  # all go on alike
        b.add_path(0, make_path(4, start=30))
        b.add_path(6, make_path(7, start=700))
    for restored in copies:
        assert_same(buffer, restored)
    # task 0's last positions from file 0 are overwritten now and task 5's are cleared: file 0
    # is no longer needed
    assert 0 not in buffer.files()
    with pytest.raises(ValueError, match="other tasks"):
        restore(state, files, tasks=(0, 5, 7))


def test_limited_saves_split_the_pending_transitions_across_files():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5, 6], chunk_len=4)
    model = FlatRings(10, [0, 5, 6])
    rng = np.random.default_rng(5)
    files = {}
    for _ in range(4):
        fill_at_random(buffer, model, rng, 7, clear_every=5)
        state = save(buffer, files, limit=3)
    sizes = [len(torch.load(io.BytesIO(f), weights_only=True)["rewards"]) for f in files.values()]
    assert max(sizes) == 3 and len(files) > 4
    restored = restore(state, files, chunk_len=3)
    assert_same(buffer, restored)
    for task in (0, 5, 6):  # against the flat model, position by position
        (row,) = restored._rows(task)
        positions = np.arange(model.size[task])[None]
        got = restored._gather(np.array([row]), positions)["rewards"][0]
        np.testing.assert_array_equal(got, model.rewards[task][: model.size[task]])


def test_state_dict_needs_every_transition_saved():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0])
    buffer.add_path(0, make_path(3))
    with pytest.raises(RuntimeError, match="not saved"):
        buffer.state_dict()


def test_a_single_file_checkpoint_buffer_is_read_and_saved_to_data_files():
    buffer = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5, 6], chunk_len=4)
    for start in (0, 10, 20):  # task 0 full and wrapped
        buffer.add_path(0, make_path(4, start=start))
    buffer.add_path(6, make_path(3, start=600))
    old = single_file_state(buffer)
    restored = MultiTaskReplayBuffer(10, 2, 1, tasks=[0, 5, 6], chunk_len=3)
    restored.load_state_dict(old, lambda f: pytest.fail("no data file to read"))
    assert_same(buffer, restored)
    files = {}
    state = save(restored, files)  # all of it pending: saved by the next checkpoint
    assert_same(buffer, restore(state, files))

"""The pixel replay buffer: frames stored once as uint8, the env's frame stacks rebuilt at
sample time across trajectory ends and the FIFO's wrap, stacks that lost their start never
sampled, and saving and restoring it through data files."""

import io

import numpy as np
import torch
from test_multitask_replay_buffer import save as save_buffer

from rlkit.data_management.multitask_replay_buffer import FrameReplayBuffer
from rlkit.data_management.path import Path
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import make_env

SIZE, STACK, CHANNELS, ACTION_DIM = 16, 3, 3, 2
MAX_SIZE, CHUNK_LEN = 40, 7  # six chunks, the last one 5 long
TASKS = [0, 3]
STACKS = ("observations", "next_observations")


def point_robot_paths(seed, lengths):
    """Trajectories of the launcher's pixel point robot under random actions, as the sampler
    stores them: the env's own observations and next observations."""
    variant = load_config("configs/point-robot.json")
    for expression in (
        "pixels.enabled=true",
        f"pixels.size={SIZE}",
        f"pixels.frame_stack={STACK}",
    ):
        apply_override(variant, expression)
    env = make_env(variant)
    rng = np.random.default_rng(seed)
    paths = []
    for n in lengths:
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        observations, actions, rewards, next_observations, terminals = [], [], [], [], []
        for _ in range(n):
            action = rng.uniform(-1.0, 1.0, ACTION_DIM).astype(np.float32)
            next_obs, reward, terminated, _, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            next_observations.append(next_obs)
            terminals.append(float(terminated))
            obs = next_obs
        rewards = np.array(rewards, dtype=np.float32)
        path = Path(
            observations=np.stack(observations),
            actions=np.stack(actions),
            rewards=rewards,
            sparse_rewards=-rewards,  # any values of their own, to check alignment
            next_observations=np.stack(next_observations),
            terminals=np.array(terminals, dtype=np.float32),
            successes=np.zeros(n, np.float32),
        )
        paths.append(path)
    env.close()
    return paths


def frame_buffer(chunk_len=CHUNK_LEN):
    return FrameReplayBuffer(
        MAX_SIZE, (CHANNELS, SIZE, SIZE), STACK, ACTION_DIM, TASKS, chunk_len=chunk_len
    )


class StoredPositions:
    """An independent model of one task's ring: every position ever written, in order, a
    trajectory of n transitions taking n + 1 of them; the last MAX_SIZE are stored."""

    def __init__(self):
        self.written = 0
        # (path, t, index of its position, index of its stack's oldest frame's position)
        self.transitions = []

    def add(self, path):
        for t in range(len(path)):
            position = self.written + t
            self.transitions.append((path, t, position, position - min(t, STACK - 1)))
        self.written += len(path) + 1

    def sampleable(self):
        """The transitions whose frame stack is wholly stored, by their action (their tag)."""
        oldest = self.written - MAX_SIZE
        return {
            path.actions[t].tobytes(): (path, t)
            for path, t, _, first in self.transitions
            if first >= oldest
        }

    def stored_but_cut(self):
        """The transitions still stored whose stack reaches past the oldest stored frame."""
        oldest = self.written - MAX_SIZE
        return [(path, t) for path, t, at, first in self.transitions if first < oldest <= at]


def test_stacks_rebuilt_from_the_buffer_are_the_envs_across_ends_and_wraps():
    rng = np.random.default_rng(0)
    lengths = {task: rng.integers(1, 10, size=28).tolist() for task in TASKS}
    lengths[0][:4] = [1, 2, 1, 3]  # shorter than the stack, and as long
    paths = {task: point_robot_paths(seed, lengths[task]) for seed, task in enumerate(TASKS)}
    tags = [p.actions[t].tobytes() for ps in paths.values() for p in ps for t in range(len(p))]
    assert len(set(tags)) == len(tags)  # each transition found again by its action
    for path in paths[0] + paths[3]:  # the robot moves in every picture: no two frames alike
        newest = np.concatenate([path.observations, path.next_observations[-1:]])[:, -CHANNELS:]
        assert len({frame.tobytes() for frame in newest}) == len(path) + 1

    buffer = frame_buffer()
    models = {task: StoredPositions() for task in TASKS}
    sample_rng = np.random.default_rng(1)
    order = [3, 0, 0, 3]  # several tasks at once, each twice
    cut = 0
    for step in range(len(lengths[0])):
        for task in TASKS:
            buffer.add_path(task, paths[task][step])
            models[task].add(paths[task][step])
        batch = buffer.random_batch(order, 400, sample_rng)
        for name in STACKS:
            assert batch[name].shape == (4, 400, STACK * CHANNELS, SIZE, SIZE)
            assert batch[name].dtype == np.uint8
        cut += sum(len(models[task].stored_but_cut()) for task in TASKS)
        for row, task in enumerate(order):
            expected = models[task].sampleable()
            keys = [action.tobytes() for action in batch["actions"][row]]
            # neither a pad (its action is zero) nor a transition whose stack lost its start
            assert set(keys) <= set(expected), (step, task)
            assert set(keys) == set(expected), (step, task)  # every whole one is sampled
            sampled = [expected[key] for key in keys]
            for name in (*STACKS, "rewards", "sparse_rewards", "terminals"):
                envs = np.stack([getattr(path, name)[t] for path, t in sampled])
                np.testing.assert_array_equal(batch[name][row], envs, err_msg=f"{step} {name}")
    # the rings wrapped several times, over chunk boundaries, with stacks cut at their start
    assert all(model.written > 3 * MAX_SIZE for model in models.values())
    assert len(buffer._chunks) == 6
    assert cut > 10  # stored transitions whose stacks were cut were there to reject


def save(buffer, files, limit):
    """A checkpoint (the buffer tests' save), its new data files' frames checked: uint8, one
    frame (not a stack) per position."""
    first_new = len(files)
    state = save_buffer(buffer, files, limit)
    for file in range(first_new, len(files)):
        frames = torch.load(io.BytesIO(files[file]), weights_only=True)["frames"]
        assert frames.dtype == torch.uint8
        assert frames.shape[1:] == (CHANNELS, SIZE, SIZE)
    return state


def restore(state_bytes, files, chunk_len):
    buffer = frame_buffer(chunk_len)
    state = torch.load(io.BytesIO(state_bytes), weights_only=True)
    buffer.load_state_dict(state, lambda f: torch.load(io.BytesIO(files[f]), weights_only=True))
    return buffer


def assert_same_samples(a, b):
    expected = a.random_batch(TASKS * 2, 64, np.random.default_rng(3))
    got = b.random_batch(TASKS * 2, 64, np.random.default_rng(3))
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(got[name], expected[name])


def test_frames_are_uint8_in_memory_and_in_data_files_and_restore_exactly():
    rng = np.random.default_rng(4)
    paths = point_robot_paths(5, rng.integers(1, 10, size=24).tolist())
    buffer = frame_buffer()
    files = {}
    for i, path in enumerate(paths[:16]):  # task 0 wraps, task 3 does not
        buffer.add_path(3 if i % 4 == 3 else 0, path)
        if i % 5 == 4:  # checkpoints along the way: files of older transitions
            save(buffer, files, limit=9)
    state = save(buffer, files, limit=9)
    assert len(files) > 3
    assert buffer.size(0) == MAX_SIZE and buffer.size(3) < MAX_SIZE  # task 0 wrapped
    for chunk in buffer._chunks:
        assert chunk["frames"].dtype == np.uint8
        assert chunk["frames"].shape[2:] == (CHANNELS, SIZE, SIZE)
    saved = torch.load(io.BytesIO(files[0]), weights_only=True)
    assert saved["frames"].dtype == torch.uint8
    copies = [restore(state, files, chunk_len) for chunk_len in (3, MAX_SIZE)]
    for restored in copies:
        assert_same_samples(buffer, restored)
    for b in (buffer, *copies):  # all go on alike, wrapping again
        for path in paths[16:]:
            b.add_path(0, path)
    for restored in copies:
        assert_same_samples(buffer, restored)


def test_bytes_per_transition_are_the_uint8_frame_and_the_float32_fields():
    tasks, chunk_len = 4, 10
    for channels in (3, 1):  # colour and grayscale
        buffer = FrameReplayBuffer(
            1000, (channels, 64, 64), 3, 6, tasks=range(tasks), chunk_len=chunk_len
        )
        # one newest frame, uint8; float32 action (6), reward, sparse reward, terminal, the
        # step in the trajectory and whether the position is a transition (not a pad)
        expected = channels * 64 * 64 + 4 * (6 + 5)
        assert buffer.bytes_per_transition == expected
        buffer.add_path(2, synthetic_path(channels))
        chunk = buffer._chunks[0]
        # what the chunk's arrays take, position by position
        assert sum(array.nbytes for array in chunk.values()) == tasks * chunk_len * expected


def synthetic_path(channels, n=5):
    """n transitions of constant frames 0, 1, ..., n."""
    frames = np.arange(n + 1, dtype=np.uint8)[:, None, None, None]
    stacks = np.broadcast_to(frames, (n + 1, 3 * channels, 64, 64))
    return Path(
        observations=stacks[:-1],
        actions=np.zeros((n, 6), np.float32),
        rewards=np.zeros(n, np.float32),
        sparse_rewards=np.zeros(n, np.float32),
        next_observations=stacks[1:],
        terminals=np.zeros(n, np.float32),
        successes=np.zeros(n, np.float32),
    )

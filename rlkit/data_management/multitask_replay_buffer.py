"""Per-task FIFO replay buffers stored in fixed-size chunks, sampled for many tasks at once,
saved incrementally.

Storage. Each task's buffer is a ring of `max_size` positions. The positions are cut into
chunks of `chunk_len`: chunk k holds positions [k * chunk_len, (k + 1) * chunk_len) of every
task, one array (tasks, chunk_len[, dim]) per field, made when a task first writes there.
The arrays are anonymous memory maps: the operating system backs only the pages written, so
memory follows the data stored (plus at most a page per task and field at a chunk's end)
while growing never copies what is stored. `chunk_len` is chosen so that one chunk of all
tasks spans CHUNK_BYTES of address space (64 GiB, reserved without memory): a run's buffer of
up to 20 million humanoid transitions (up to max_size per task in smaller envs) is one chunk,
sampled with one gather per field; larger ones gather chunk by chunk. Where the system gives
no such address space, chunks are made smaller.

Persistence. The stored positions of a task are also kept as segments (file, start, length)
in ring order, oldest first; file is PENDING for transitions added since the last save.
`pending()` gives those transitions as one data file's content and `mark_saved(file)` records
that they are now in that file; `state_dict()` holds only the bookkeeping (positions,
trajectories, segments), so a checkpoint stays small however much data the buffer holds.
A file no segment names any more (its transitions overwritten by the FIFO, or a cleared
task's) is no longer needed: `files()` lists the ones still needed. Whole trajectories are
remembered (start, length) for the recurrent encoder, which reads context as ordered
trajectories.
"""

import mmap
import sys
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rlkit.data_management.path import Path

FIELDS = ("observations", "actions", "rewards", "sparse_rewards", "next_observations", "terminals")
# Address space of one chunk across all tasks and fields: reserved, not memory (MAP_NORESERVE:
# the kernel backs only the pages written), so that nearly every run's buffer is one chunk,
# sampled with one gather per field.
CHUNK_BYTES = 1 << 36
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform == "linux" else 0)
MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
PENDING = -1  # the file of segments not saved yet


class MultiTaskReplayBuffer:
    """One FIFO buffer of at most `max_size` transitions for each task id in `tasks`."""

    def __init__(
        self,
        max_size: int,
        obs_dim: int,
        action_dim: int,
        tasks: Sequence[int],
        chunk_len: int | None = None,
    ):
        self.max_size = int(max_size)
        self.tasks = [int(t) for t in tasks]
        self._row = {task: i for i, task in enumerate(self.tasks)}
        self._fields = self._field_layout(obs_dim, action_dim)
        self.fields = tuple(self._fields)
        self.bytes_per_transition = sum(
            int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in self._fields.values()
        )
        if chunk_len is None:
            chunk_len = CHUNK_BYTES // (self.bytes_per_transition * max(len(self.tasks), 1))
        self.chunk_len = max(1, min(self.max_size, int(chunk_len)))
        self._chunks: list[dict[str, np.ndarray]] = []
        self._reset()

    def _field_layout(self, obs_dim, action_dim) -> dict[str, tuple[tuple, type]]:
        """Each stored field's shape per position and its dtype."""
        dims = {
            "observations": (obs_dim,),
            "actions": (action_dim,),
            "rewards": (),
            "sparse_rewards": (),
            "next_observations": (obs_dim,),
            "terminals": (),
        }
        return {name: (dims[name], np.float32) for name in FIELDS}

    def _reset(self) -> None:
        n = len(self.tasks)
        self._top = np.zeros(n, dtype=np.int64)
        self._size = np.zeros(n, dtype=np.int64)
        self._episodes: list[deque[tuple[int, int]]] = [deque() for _ in range(n)]
        self._stored_in_episodes = np.zeros(n, dtype=np.int64)
        self._segments: list[deque[list[int]]] = [deque() for _ in range(n)]
        self._staged: list[tuple[int, list[int]]] = []  # what the last pending() gave

    # ----------------------------------------------------------------- storage
    def _chunk(self, k: int) -> dict[str, np.ndarray]:
        """Chunk k, made (with every chunk before it) when first needed."""
        while len(self._chunks) <= k:
            try:
                self._chunks.append(self._new_chunk())
            except OSError:
                # no such address space (strict overcommit, ulimit -v): smaller chunks, while
                # no position is stored yet
                if self._chunks or self.chunk_len == 1:
                    raise
                self.chunk_len = max(1, self.chunk_len // 8)
        return self._chunks[k]

    def _new_chunk(self) -> dict[str, np.ndarray]:
        length = min(self.chunk_len, self.max_size - len(self._chunks) * self.chunk_len)
        chunk = {}
        for name, (field_shape, dtype) in self._fields.items():
            shape = (len(self.tasks), length, *field_shape)
            count = int(np.prod(shape))
            itemsize = np.dtype(dtype).itemsize
            # zero-filled, backed by memory only where written, no swap reserved up front
            memory = mmap.mmap(-1, max(itemsize * count, 1), flags=MAP_FLAGS)
            chunk[name] = np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)
        return chunk

    def _pieces(self, start: int, n: int):
        """(chunk, offset in chunk, offset in the n values, length) of positions start.. on
        the ring, cut where a chunk ends or the ring wraps."""
        done = 0
        while done < n:
            position = (start + done) % self.max_size
            k, offset = divmod(position, self.chunk_len)
            length = min(n - done, self.chunk_len - offset, self.max_size - position)
            yield k, offset, done, length
            done += length

    def _write(self, row: int, start: int, values: dict[str, np.ndarray]) -> None:
        """values[name] (n[, dim]) into positions start, start + 1, ... of task row's ring."""
        n = len(values["rewards"])
        self._chunk(0)  # the first chunk fixes chunk_len
        for k, offset, done, length in self._pieces(start, n):
            chunk = self._chunk(k)
            for name in self.fields:
                chunk[name][row, offset : offset + length] = values[name][done : done + length]

    def _gather(
        self, rows: np.ndarray, idx: np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Each field (or those `names`) at positions idx (tasks, batch[, ...]) of the tasks'
        rows (tasks,)."""
        names = self.fields if names is None else names
        k, offset = np.divmod(idx, self.chunk_len)
        rows = np.broadcast_to(rows.reshape(-1, *[1] * (idx.ndim - 1)), idx.shape)
        if len(self._chunks) == 1:
            return self._take(0, rows * self._chunks[0]["rewards"].shape[1] + offset, names)
        out = {
            name: np.empty(idx.shape + self._chunks[0][name].shape[2:], self._fields[name][1])
            for name in names
        }
        for chunk_index in np.unique(k):
            where = k == chunk_index
            length = self._chunks[chunk_index]["rewards"].shape[1]
            values = self._take(chunk_index, rows[where] * length + offset[where], names)
            for name in names:
                out[name][where] = values[name]
        return out

    def _take(self, k: int, flat_idx: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Each field of chunk k at flat indices task row * chunk length + offset (np.take on
        the (tasks * length, dim) view: a third faster than indexing with rows and offsets)."""
        chunk = self._chunks[k]
        return {
            name: np.take(chunk[name].reshape(-1, *chunk[name].shape[2:]), flat_idx, axis=0)
            for name in names
        }

    def _rows(self, tasks) -> np.ndarray:
        try:
            return np.array([self._row[int(t)] for t in np.atleast_1d(tasks)], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"task {err.args[0]} has no replay buffer") from None

    # ----------------------------------------------------------------- adding
    def add_path(self, task: int, path: Path) -> None:
        """Append every transition of `path`, its last one included."""
        if len(path) == 0:
            return
        self._add(task, self._positions_of(path))

    def _positions_of(self, path: Path) -> dict[str, np.ndarray]:
        """What `path` writes into consecutive positions: each field (n[, ...])."""
        return {name: getattr(path, name) for name in FIELDS}

    def _add(self, task: int, values: dict[str, np.ndarray]) -> None:
        (row,) = self._rows(task)
        n = len(values["rewards"])
        if n > self.max_size:
            raise ValueError(f"a path of {n} transitions does not fit a buffer of {self.max_size}")
        top = int(self._top[row])
        self._write(row, top, values)
        overwritten = max(0, int(self._size[row]) + n - self.max_size)
        self._top[row] = (top + n) % self.max_size
        self._size[row] = min(self.max_size, self._size[row] + n)
        # FIFO: the oldest trajectories are the ones overwritten
        episodes = self._episodes[row]
        while self._stored_in_episodes[row] + n > self.max_size:
            _, length = episodes.popleft()
            self._stored_in_episodes[row] -= length
        episodes.append((top, n))
        self._stored_in_episodes[row] += n
        self._add_segment(row, top, n, overwritten)

    def _add_segment(self, row: int, top: int, n: int, overwritten: int) -> None:
        """Positions top.. (n, pending) join the task's segments; the `overwritten` oldest
        positions leave them."""
        segments = self._segments[row]
        while overwritten:
            first = segments[0]
            cut = min(overwritten, first[2])
            first[1] = (first[1] + cut) % self.max_size
            first[2] -= cut
            overwritten -= cut
            if first[2] == 0:
                segments.popleft()
        for _, _, done, length in self._pieces(top, n):
            start = (top + done) % self.max_size
            last = segments[-1] if segments else None
            if last is not None and last[0] == PENDING and last[1] + last[2] == start:
                last[2] += length
            else:
                segments.append([PENDING, start, length])

    def clear(self, task: int) -> None:
        (row,) = self._rows(task)
        self._top[row] = 0
        self._size[row] = 0
        self._episodes[row].clear()
        self._stored_in_episodes[row] = 0
        self._segments[row].clear()

    def size(self, task: int) -> int:
        (row,) = self._rows(task)
        return int(self._size[row])

    def num_trajectories(self, task: int) -> int:
        (row,) = self._rows(task)
        return len(self._episodes[row])

    # ----------------------------------------------------------------- sampling
    def _check_nonempty(self, rows: np.ndarray) -> None:
        empty = rows[self._size[rows] == 0]
        if empty.size:
            raise ValueError(f"cannot sample from the empty buffer of task {self.tasks[empty[0]]}")

    def random_batch(
        self, tasks, batch_size: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Uniform transitions with replacement: each field (tasks, batch_size[, dim])."""
        rows = self._rows(tasks)
        self._check_nonempty(rows)
        idx = (rng.random((rows.size, batch_size)) * self._size[rows, None]).astype(np.int64)
        return self._gather(rows, idx)

    def random_sequences(
        self, tasks, batch_size: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Whole trajectories in their order, drawn at random and concatenated per task until
        `batch_size` transitions, the last one cut: each field (tasks, batch_size[, dim])."""
        rows = self._rows(tasks)
        self._check_nonempty(rows)
        idx = np.empty((rows.size, batch_size), dtype=np.int64)
        for i, row in enumerate(rows):
            episodes = self._episodes[row]
            chosen: list[np.ndarray] = []
            total = 0
            while total < batch_size:
                start, length = episodes[int(rng.integers(len(episodes)))]
                chosen.append((start + np.arange(length)) % self.max_size)
                total += length
            idx[i] = np.concatenate(chosen)[:batch_size]
        return self._gather(rows, idx)

    # ----------------------------------------------------------------- persistence
    def pending(self, limit: int | None = None) -> dict[str, torch.Tensor] | None:
        """At most `limit` (None: all) of the transitions not saved yet, oldest first per task,
        as one data file's content: "segments" (k, 3) rows of (task row, start, length) and
        each field's values of those segments concatenated (n[, dim]); None when there are
        none. mark_saved() then records the file they went to."""
        budget = self.max_size * len(self.tasks) if limit is None else int(limit)
        self._staged = []
        for row, segments in enumerate(self._segments):
            i = 0
            while i < len(segments) and budget > 0:
                segment = segments[i]
                if segment[0] == PENDING:
                    if segment[2] > budget:  # the rest waits for the next file
                        rest = [PENDING, (segment[1] + budget) % self.max_size, segment[2] - budget]
                        segment[2] = budget
                        segments.insert(i + 1, rest)
                    self._staged.append((row, segment))
                    budget -= segment[2]
                i += 1
        if not self._staged:
            return None
        table = [(row, start, length) for row, (_, start, length) in self._staged]
        rows = np.concatenate([np.full(length, row) for row, _, length in table])
        idx = np.concatenate(
            [(start + np.arange(length)) % self.max_size for _, start, length in table]
        )
        values = self._gather(rows, idx[:, None])
        content = {name: torch.from_numpy(values[name][:, 0]) for name in self.fields}
        content["segments"] = torch.tensor(table, dtype=torch.int64).reshape(-1, 3)
        return content

    def mark_saved(self, file: int) -> None:
        """The transitions the last pending() gave are now in data file `file`."""
        for _, segment in self._staged:
            segment[0] = file
        self._staged = []

    def files(self) -> set[int]:
        """The data files that hold the stored transitions."""
        return {file for segments in self._segments for file, _, _ in segments} - {PENDING}

    def state_dict(self) -> dict:
        """Positions, trajectories and segments of every task (no transitions: those are in
        the data files that files() names, all saved: nothing may be pending)."""
        if any(file == PENDING for segments in self._segments for file, _, _ in segments):
            raise RuntimeError("the buffer has transitions not saved to a data file")
        return {
            "max_size": self.max_size,
            "tasks": list(self.tasks),
            "top": torch.from_numpy(self._top.copy()),
            "size": torch.from_numpy(self._size.copy()),
            "episodes": [
                torch.tensor(list(e), dtype=torch.int64).reshape(-1, 2) for e in self._episodes
            ],
            "segments": [
                torch.tensor(list(s), dtype=torch.int64).reshape(-1, 3) for s in self._segments
            ],
        }

    def load_state_dict(self, state: dict, read_file: Callable[[int], dict]) -> None:
        """Restore what state_dict() returned, into a buffer built with the same tasks, reading
        the transitions of its segments from the data files (read_file(file) gives what
        pending() gave before mark_saved(file)). A state with the transitions in it (the
        single-file checkpoints before data files) is read as well; its transitions are then
        pending, saved by the next checkpoint."""
        if state["tasks"] != self.tasks or state["max_size"] != self.max_size:
            raise ValueError("the saved replay buffer has other tasks or another max_size")
        self._chunks = []
        self._reset()
        self._top = state["top"].numpy().copy()
        self._size = state["size"].numpy().copy()
        self._episodes = [deque(map(tuple, e.tolist())) for e in state["episodes"]]
        self._stored_in_episodes = np.array(
            [sum(length for _, length in e) for e in self._episodes], dtype=np.int64
        )
        if "data" in state:
            self._load_transitions(state["data"])
            return
        self._segments = [deque(map(list, s.tolist())) for s in state["segments"]]
        for file in sorted(self.files()):
            self._load_file(file, read_file(file))

    def _load_file(self, file: int, content: dict) -> None:
        """Copy from one data file the parts of its segments still stored."""
        offset = 0
        for row, start, length in content["segments"].tolist():
            for segment_file, seg_start, seg_length in self._segments[row]:
                if segment_file != file:
                    continue
                # both are ranges on the ring; a saved segment never wraps past itself
                skip = (seg_start - start) % self.max_size
                if skip >= length:
                    continue
                n = min(seg_length, length - skip)
                begin = offset + skip
                self._write(
                    row,
                    seg_start,
                    {name: content[name][begin : begin + n].numpy() for name in self.fields},
                )
            offset += length

    def _load_transitions(self, data: dict) -> None:
        """The single-file checkpoint's transitions: task by task, positions [0, size)."""
        for row, size in enumerate(self._size.tolist()):
            if size:
                self._write(row, 0, {name: data[name][row].numpy() for name in self.fields})
            full = size == self.max_size
            top = int(self._top[row]) if full else 0
            self._add_segment(row, top, size, 0)


class FrameReplayBuffer(MultiTaskReplayBuffer):
    """The replay buffer of a pixel run: each frame stored once, as uint8; observations, next
    observations and their frame stacks rebuilt at sample time.

    A trajectory of n transitions takes n + 1 positions: position t holds the newest frame of
    o_t with a_t, r_t and the rest of transition t, and the last one the newest frame of the
    final o_n (a pad: `valid` 0, never sampled). `steps` holds t, so that the stack of o_t is
    the frames at positions p - min(t, k - 1 - j), j = 0..k-1 (the first frame repeated
    before the trajectory's start, as the env stacks it at a reset) and o_{t+1}'s stack the
    same from p + 1. A transition whose stack reaches back past the oldest stored position
    (its trajectory's start overwritten by the FIFO) is not sampled either: at most k - 1 per
    task, all at the start of the oldest trajectory. Sampling draws positions uniformly and
    draws again in place of those that are not transitions; what it returns is what the env
    gave: observations and next_observations (tasks, batch, k * channels, size, size) uint8.
    Checkpoints save the positions' fields as for state runs, frames as uint8.
    """

    def __init__(
        self,
        max_size: int,
        frame_shape: tuple[int, int, int],
        frame_stack: int,
        action_dim: int,
        tasks: Sequence[int],
        chunk_len: int | None = None,
    ):
        self.frame_shape = tuple(int(d) for d in frame_shape)  # (channels, size, size)
        self.frame_stack = int(frame_stack)
        super().__init__(max_size, 0, action_dim, tasks, chunk_len)

    def _field_layout(self, obs_dim, action_dim) -> dict[str, tuple[tuple, type]]:
        return {
            "frames": (self.frame_shape, np.uint8),
            "actions": ((action_dim,), np.float32),
            "rewards": ((), np.float32),
            "sparse_rewards": ((), np.float32),
            "terminals": ((), np.float32),
            "steps": ((), np.float32),
            "valid": ((), np.float32),
        }

    def _positions_of(self, path: Path) -> dict[str, np.ndarray]:
        n, channels = len(path), self.frame_shape[0]
        newest = np.concatenate([path.observations, path.next_observations[-1:]])[:, -channels:]
        values = {"frames": newest.reshape(n + 1, *self.frame_shape)}
        for name in ("actions", "rewards", "sparse_rewards", "terminals"):
            array = getattr(path, name)
            values[name] = np.concatenate([array, np.zeros_like(array[:1])])
        values["steps"] = np.arange(n + 1, dtype=np.float32)
        values["valid"] = (np.arange(n + 1) < n).astype(np.float32)
        return values

    def random_batch(
        self, tasks, batch_size: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Uniform transitions with replacement: observations and next_observations (tasks,
        batch_size, k * channels, size, size) uint8, the other fields (tasks, batch_size[,
        dim])."""
        rows = self._rows(tasks)
        self._check_nonempty(rows)
        sizes = self._size[rows, None]
        idx = (rng.random((rows.size, batch_size)) * sizes).astype(np.int64)
        while True:
            bad = ~self._sampleable(rows, idx)
            if not bad.any():
                break
            redraw = rng.random(int(bad.sum())) * np.broadcast_to(sizes, idx.shape)[bad]
            idx[bad] = redraw.astype(np.int64)
        batch = self._gather(rows, idx, ("actions", "rewards", "sparse_rewards", "terminals"))
        steps = self._gather(rows, idx, ("steps",))["steps"].astype(np.int64)
        batch["observations"] = self._stacks(rows, idx, steps)
        batch["next_observations"] = self._stacks(rows, (idx + 1) % self.max_size, steps + 1)
        return batch

    def _oldest(self, rows: np.ndarray) -> np.ndarray:
        """The oldest stored position of each row: top once the ring is full, else 0."""
        return np.where(self._size[rows] == self.max_size, self._top[rows], 0)

    def _sampleable(self, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Whether each position idx (tasks, batch) is a transition whose frame stack is
        still stored."""
        fields = self._gather(rows, idx, ("valid", "steps"))
        age = (idx - self._oldest(rows)[:, None]) % self.max_size
        reach = np.minimum(fields["steps"].astype(np.int64), self.frame_stack - 1)
        return (fields["valid"] > 0) & (reach <= age)

    def _stacks(self, rows: np.ndarray, idx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The frame stacks ending at positions idx (tasks, batch) whose steps in their
        trajectory are `steps`: (tasks, batch, k * channels, size, size)."""
        back = np.arange(self.frame_stack - 1, -1, -1)  # oldest frame first
        positions = (idx[..., None] - np.minimum(steps[..., None], back)) % self.max_size
        frames = self._gather(rows, positions, ("frames",))["frames"]
        return frames.reshape(*idx.shape, -1, *self.frame_shape[1:])

    def random_sequences(self, tasks, batch_size: int, rng: np.random.Generator):
        raise NotImplementedError("pixel runs use the MLP encoder: no ordered trajectories")

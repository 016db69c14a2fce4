"""Per-task FIFO replay buffers stored as contiguous arrays, sampled for many tasks at once.

Every field is one array (tasks, capacity, dim). The allocated capacity starts small and
doubles up to `max_size` as data arrives, so memory follows the data stored rather than
max_size x tasks. Whole trajectories are remembered (start, length) for the recurrent
encoder, which reads context as ordered trajectories. `state_dict()` holds only the stored
transitions (for checkpoints), so its size grows with the data too.
"""

from collections import deque
from collections.abc import Sequence

import numpy as np
import torch

from rlkit.data_management.path import Path

FIELDS = ("observations", "actions", "rewards", "sparse_rewards", "next_observations", "terminals")


class MultiTaskReplayBuffer:
    """One FIFO buffer of at most `max_size` transitions for each task id in `tasks`."""

    def __init__(
        self,
        max_size: int,
        obs_dim: int,
        action_dim: int,
        tasks: Sequence[int],
        initial_capacity: int = 1024,
    ):
        self.max_size = int(max_size)
        self.tasks = [int(t) for t in tasks]
        self._row = {task: i for i, task in enumerate(self.tasks)}
        n = len(self.tasks)
        self._dims = {
            "observations": obs_dim,
            "actions": action_dim,
            "rewards": 0,
            "sparse_rewards": 0,
            "next_observations": obs_dim,
            "terminals": 0,
        }
        capacity = min(self.max_size, initial_capacity)
        self._data = {name: self._alloc(n, capacity, dim) for name, dim in self._dims.items()}
        self._capacity = capacity
        self._top = np.zeros(n, dtype=np.int64)
        self._size = np.zeros(n, dtype=np.int64)
        self._episodes: list[deque[tuple[int, int]]] = [deque() for _ in range(n)]
        self._stored_in_episodes = np.zeros(n, dtype=np.int64)

    @staticmethod
    def _alloc(n: int, capacity: int, dim: int) -> np.ndarray:
        shape = (n, capacity, dim) if dim else (n, capacity)
        return np.zeros(shape, dtype=np.float32)

    def _rows(self, tasks) -> np.ndarray:
        try:
            return np.array([self._row[int(t)] for t in np.atleast_1d(tasks)], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"task {err.args[0]} has no replay buffer") from None

    def _grow(self, needed: int) -> None:
        """Make room for `needed` transitions per task: double the capacity (to max_size)."""
        if needed <= self._capacity:
            return
        capacity = self._capacity
        while capacity < needed:
            capacity = min(self.max_size, capacity * 2)
        for name, old in self._data.items():
            new = self._alloc(len(self.tasks), capacity, self._dims[name])
            new[:, : self._capacity] = old
            self._data[name] = new
        self._capacity = capacity

    def add_path(self, task: int, path: Path) -> None:
        """Append every transition of `path`, its last one included."""
        (row,) = self._rows(task)
        n = len(path)
        if n == 0:
            return
        if n > self.max_size:
            raise ValueError(f"a path of {n} transitions does not fit a buffer of {self.max_size}")
        top = int(self._top[row])
        self._grow(min(self.max_size, top + n))
        idx = (top + np.arange(n)) % self.max_size
        for name in FIELDS:
            self._data[name][row, idx] = getattr(path, name)
        self._top[row] = (top + n) % self.max_size
        self._size[row] = min(self.max_size, self._size[row] + n)
        # FIFO: the oldest trajectories are the ones overwritten
        episodes = self._episodes[row]
        while self._stored_in_episodes[row] + n > self.max_size:
            _, length = episodes.popleft()
            self._stored_in_episodes[row] -= length
        episodes.append((top, n))
        self._stored_in_episodes[row] += n

    def clear(self, task: int) -> None:
        (row,) = self._rows(task)
        self._top[row] = 0
        self._size[row] = 0
        self._episodes[row].clear()
        self._stored_in_episodes[row] = 0

    def size(self, task: int) -> int:
        (row,) = self._rows(task)
        return int(self._size[row])

    def num_trajectories(self, task: int) -> int:
        (row,) = self._rows(task)
        return len(self._episodes[row])

    def state_dict(self) -> dict:
        """Every task's stored transitions and bookkeeping, as tensors that share memory with the
        buffer: a task's transitions always occupy positions [0, size) (filled from 0 after a
        clear, wrapping only once full)."""
        return {
            "max_size": self.max_size,
            "tasks": list(self.tasks),
            "capacity": self._capacity,
            "top": torch.from_numpy(self._top.copy()),
            "size": torch.from_numpy(self._size.copy()),
            "data": {
                name: [
                    torch.from_numpy(self._data[name][row, :size])
                    for row, size in enumerate(self._size)
                ]
                for name in FIELDS
            },
            "episodes": [
                torch.tensor(list(e), dtype=torch.int64).reshape(-1, 2) for e in self._episodes
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() returned, into a buffer built with the same tasks."""
        if state["tasks"] != self.tasks or state["max_size"] != self.max_size:
            raise ValueError("the saved replay buffer has other tasks or another max_size")
        n, capacity = len(self.tasks), int(state["capacity"])
        self._data = {name: self._alloc(n, capacity, dim) for name, dim in self._dims.items()}
        self._capacity = capacity
        self._top = state["top"].numpy().copy()
        self._size = state["size"].numpy().copy()
        for name in FIELDS:
            for row, values in enumerate(state["data"][name]):
                self._data[name][row, : len(values)] = values.numpy()
        self._episodes = [deque(map(tuple, e.tolist())) for e in state["episodes"]]
        self._stored_in_episodes = np.array(
            [sum(length for _, length in e) for e in self._episodes], dtype=np.int64
        )

    def _check_nonempty(self, rows: np.ndarray) -> None:
        empty = rows[self._size[rows] == 0]
        if empty.size:
            raise ValueError(f"cannot sample from the empty buffer of task {self.tasks[empty[0]]}")

    def _gather(self, rows: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {name: self._data[name][rows[:, None], idx] for name in FIELDS}

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

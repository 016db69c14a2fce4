"""Meta-World's meta-learning benchmarks as PEARL task families: `metaworld-ml1` (one class,
env_params `env_name`, e.g. reach-v3), `metaworld-ml10` and `metaworld-ml45`.

Tasks come from the benchmark classes (`metaworld.ML1(name, seed)`, `ML10(seed)`,
`ML45(seed)`) with our fixed seed TASK_SEED, so every process (training, evaluation,
sim_policy) holds the same tasks. Not from the package's gymnasium entry points: in 3.1.1
`Meta-World/ML1-train` returns the test tasks.

Task order: the benchmark's train tasks first, interleaved over their classes (one goal of
each class in turn), then its test tasks interleaved the same way and reversed. PEARL trains on
`tasks[:n_train_tasks]` and evaluates on `tasks[-n_eval_tasks:]`, so the two never mix as long
as each count fits its part (`task_split`, checked by the launcher), and any smaller count
still covers the classes evenly.

Each family object is one task slot: it drives one Meta-World env of the current task's class,
taken from a process-wide pool of idle envs per class, and gives it back when the slot's task
moves to another class; a switch costs no model compilation once a class has an env.

Episodes never terminate: Meta-World ends them only by truncation at 500 steps, its limit
(`max_episode_steps`), and the Q target keeps bootstrapping there. `info["success"]` is
passed on; the episode succeeded when it is 1 at any step.
"""

import contextlib
import functools
import hashlib
import os
import pickle
import tempfile
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlkit.envs import TASK_SEED, register_env

# the metaworld package, imported at its first use (`_metaworld`): every launch imports this
# module to register the families, and the import takes 0.3 s that other families need not pay
metaworld = None

MAX_EPISODE_STEPS = 500  # SawyerXYZEnv.max_path_length: stepping further raises
CACHE_FORMAT = 1

# idle Meta-World envs by class name, shared by every slot of the process
_IDLE: dict[str, list] = defaultdict(list)


def _metaworld():
    global metaworld
    if metaworld is None:
        import metaworld
    return metaworld


def env_classes() -> dict[str, type]:
    """Meta-World's v3 env classes by name (`metaworld.env_dict.ALL_V3_ENVIRONMENTS`)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return ALL_V3_ENVIRONMENTS


def _cache_folder() -> Path | None:
    """PEARL_METAWORLD_CACHE (a folder, or 0 for no cache), else $XDG_CACHE_HOME/pearl-rlkit
    or ~/.cache/pearl-rlkit."""
    setting = os.environ.get("PEARL_METAWORLD_CACHE", "").strip()
    if setting == "0":
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pearl-rlkit"


def _interleave(tasks: list) -> list:
    """Tasks ordered round-robin over their classes (each class's own order kept)."""
    by_class: dict[str, list] = {}
    for task in tasks:
        by_class.setdefault(task.env_name, []).append(task)
    columns = list(by_class.values())
    longest = max(len(c) for c in columns)
    return [c[i] for i in range(longest) for c in columns if i < len(c)]


def _build(benchmark: str, env_name: str | None) -> tuple[list, list]:
    if benchmark == "ML1":
        bench = _metaworld().ML1(env_name, seed=TASK_SEED)
    else:
        bench = getattr(_metaworld(), benchmark)(seed=TASK_SEED)
    return _interleave(bench.train_tasks), _interleave(bench.test_tasks)


@functools.cache
def benchmark_tasks(benchmark: str, env_name: str | None = None) -> tuple[list, list]:
    """The (train, test) Meta-World Task lists of ML1(env_name) / ML10 / ML45 with seed
    TASK_SEED, each interleaved over its classes. Building them resets every class's env 50
    times (ML45: about a minute), so they are kept once built, in memory and in a file of the
    cache folder (_cache_folder) named after the Meta-World version, benchmark, class and
    seed."""
    folder = _cache_folder()
    key = f"{CACHE_FORMAT}-{version('metaworld')}-{benchmark}-{env_name}-{TASK_SEED}"
    path = None
    if folder is not None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        path = folder / f"metaworld-{benchmark}-{env_name or 'all'}-{digest}.pkl"
        try:
            with open(path, "rb") as f:
                cached = pickle.load(f)
            if cached["key"] == key:
                return cached["train"], cached["test"]
        except Exception:  # absent, torn or foreign: build it again
            pass
    train, test = _build(benchmark, env_name)
    if path is not None:
        try:
            _write_cache(path, dict(key=key, train=train, test=test))
        except OSError:  # a read-only cache folder: go on without
            pass
    return train, test


def _write_cache(path: Path, content: dict) -> None:
    """`content` pickled into `path` through a temporary file of its own (processes building
    at once do not write one file), which is removed whenever it is not renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(content, f)
        os.replace(tmp, path)
    except BaseException:
        # the error that stopped the write is the one raised, not a failure to remove
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@functools.cache
def _task_list(benchmark: str, env_name: str | None) -> tuple[list, list, tuple, tuple]:
    """What every slot of a family holds, made once per process (ML45: 2,500 tasks): the
    Meta-World tasks in our order (train, then test reversed), their records for `tasks`,
    the (train, test) counts and the sorted (train, test) class names."""
    train, test = benchmark_tasks(benchmark, env_name)
    ordered = train + test[::-1]
    records = [
        dict(
            env_name=t.env_name,
            split="train" if i < len(train) else "test",
            rand_vec=np.asarray(pickle.loads(t.data)["rand_vec"]).tolist(),
        )
        for i, t in enumerate(ordered)
    ]
    classes = tuple(sorted({t.env_name for t in part}) for part in (train, test))
    return ordered, records, (len(train), len(test)), classes


def _take_env(class_name: str):
    idle = _IDLE[class_name]
    return idle.pop() if idle else env_classes()[class_name]()


class MetaWorldTaskEnv(gym.Env):
    """One task slot of a Meta-World benchmark (see the module's docstring)."""

    metadata = {"render_modes": []}
    benchmark = ""
    max_episode_steps = MAX_EPISODE_STEPS
    reports_success = True
    # videos (rlkit.render): the arm, the goal and the object from a corner of the table; the
    # camera's up axis points down in Meta-World's models, so its frames are turned upright
    camera_name = "corner"
    camera_upside_down = True

    def __init__(self, env_name: str | None = None):
        self._mw_tasks, self.tasks, self.task_split, classes = _task_list(self.benchmark, env_name)
        self.train_classes, self.test_classes = classes
        self._env = None
        self._class = None
        self.reset_task(0)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        obs_shape = self._env.observation_space.shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, obs_shape, dtype=np.float32)

    def class_of(self, idx: int) -> str:
        """The Meta-World class (env name, e.g. 'reach-v3') of task `idx`."""
        return self._mw_tasks[idx].env_name

    def get_all_task_idx(self) -> range:
        return range(len(self._mw_tasks))

    def metaworld_task(self, idx: int):
        """Task `idx` as Meta-World's own Task (for the benchmark's evaluator)."""
        return self._mw_tasks[idx]

    def reset_task(self, idx: int) -> None:
        """Make task `idx` the slot's task (its class's env, its goal), then reset."""
        task = self._mw_tasks[idx]
        if task.env_name != self._class:
            self.close()
            self._env = _take_env(task.env_name)
            self._class = task.env_name
        self._env.set_task(task)
        self.reset()

    # the current class's simulation, for rendering
    @property
    def model(self):
        return self._env.model

    @property
    def data(self):
        return self._env.data

    @property
    def dt(self) -> float:
        return self._env.dt

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self._env.reset()
        return obs.astype(np.float32), {}

    def step(self, action):
        obs, reward, _terminated, truncated, info = self._env.step(np.asarray(action))
        return obs.astype(np.float32), float(reward), False, bool(truncated), info

    def close(self) -> None:
        """Give the slot's env back to the pool."""
        if self._env is not None:
            _IDLE[self._class].append(self._env)
            self._env, self._class = None, None


@register_env("metaworld-ml1")
class MetaWorldML1Env(MetaWorldTaskEnv):
    """ML1: 50 train and 50 test goals of one class (`env_name`, e.g. reach-v3)."""

    benchmark = "ML1"

    def __init__(self, env_name: str = "reach-v3"):
        if env_name not in env_classes():
            known = ", ".join(sorted(env_classes()))
            raise ValueError(f"env_name: {env_name!r} is not a Meta-World v3 env (known: {known})")
        super().__init__(env_name)


@register_env("metaworld-ml10")
class MetaWorldML10Env(MetaWorldTaskEnv):
    """ML10: 10 train classes (500 tasks), 5 held-out test classes (250 tasks)."""

    benchmark = "ML10"

    def __init__(self):
        super().__init__()


@register_env("metaworld-ml45")
class MetaWorldML45Env(MetaWorldTaskEnv):
    """ML45: 45 train classes (2,250 tasks), 5 held-out test classes (250 tasks)."""

    benchmark = "ML45"

    def __init__(self):
        super().__init__()

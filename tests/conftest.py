"""Shared fixtures: a tiny point-robot PEARL experiment built from the real config path, and
the launcher for the tests' child processes."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

# One thread per process for torch (OpenMP, MKL) and numpy's BLAS, set before they load, and
# inherited by the child processes: `make test` runs the suite as two processes on two cores,
# and a process with two OpenMP threads beside any other load spin-waits for its descheduled
# thread (10-30x slower). Results then do not depend on the core count either.
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
# the benchmarks' helpers (benchmarks/ is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from rlkit.core.logger import RunLogger
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import build_algorithm
from rlkit.torch.pearl_trainer import RLBatch

TINY = [
    "n_train_tasks=6",
    "n_eval_tasks=3",
    "net_size=16",
    "env_params.n_tasks=9",
    "algo_params.meta_batch=4",
    "algo_params.num_initial_steps=50",
    "algo_params.num_tasks_sample=3",
    "algo_params.num_steps_prior=30",
    "algo_params.num_steps_posterior=0",
    "algo_params.num_extra_rl_steps_posterior=30",
    "algo_params.num_train_steps_per_itr=2",
    "algo_params.num_steps_per_eval=60",
    "algo_params.batch_size=8",
    "algo_params.embedding_batch_size=8",
    "algo_params.embedding_mini_batch_size=8",
    "algo_params.max_path_length=20",
    "util_params.seed=0",
    "util_params.use_gpu=false",
]


@pytest.fixture
def make_algorithm(tmp_path):
    """Build a PEARLAlgorithm for configs/point-robot.json with TINY and extra overrides."""
    loggers = []

    def build(*overrides, config="configs/point-robot.json"):
        variant = load_config(config)
        for expression in [*TINY, *overrides]:
            apply_override(variant, expression)
        run_dir = tmp_path / f"run{len(loggers)}"
        run_dir.mkdir()
        logger = RunLogger(run_dir, echo=False)
        loggers.append(logger)
        return build_algorithm(variant, logger, torch.device("cpu"))

    yield build
    for logger in loggers:
        logger.close()


# measured durations differ between runs of the same seed; every other column must not
TIME_COLUMNS = {
    "Train Time (s)",
    "(Previous) Eval Time (s)",
    "Sample Time (s)",
    "Epoch Time (s)",
    "Total Train Time (s)",
}


ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `learning` train for minutes: they start first, so that under `make test`
    (two workers, one file each at a time) the rest of the suite runs and reports beside them."""
    items.sort(key=lambda item: item.get_closest_marker("learning") is None)


# The suite starts 161 child processes (tiny training runs, sim_policy, probes); the longest
# took 17 s on an AMD EPYC beside the suite's other work and two busy processes, so about 45 s
# on a machine 2.5 times slower: the limit catches a hang, not a slow machine.
CHILD_LIMIT_S = 900


def run_child(
    args: list, limit_s: float = CHILD_LIMIT_S, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python ARGS...` from the repo root (one thread, as this process), its output captured,
    with `env` added to this process's environment variables; a child still running after
    `limit_s` fails the test with the command and its stderr's end."""
    command = [sys.executable, *map(str, args)]
    variables = {**os.environ, **(env or {})}
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=limit_s, env=variables
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr or b""
        tail = (stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr)[-3000:]
        pytest.fail(
            f"{' '.join(command)} still ran after {limit_s} s; its stderr ended with:\n{tail}",
            pytrace=False,
        )


# A reference config shrunk to seconds on a CPU, for end-to-end launches: --set expressions.
TRAIN_STEPS_PER_ITR = 3
N_TRAIN_TASKS, N_EVAL_TASKS = 6, 4


def tiny_overrides(base_dir, iterations):
    """--set expressions that shrink a reference config to seconds on a CPU."""
    return [
        "net_size=16",
        f"n_train_tasks={N_TRAIN_TASKS}",
        f"n_eval_tasks={N_EVAL_TASKS}",
        f"algo_params.num_iterations={iterations}",
        f"algo_params.num_train_steps_per_itr={TRAIN_STEPS_PER_ITR}",
        "algo_params.num_initial_steps=20",
        "algo_params.num_steps_prior=20",
        "algo_params.num_tasks_sample=2",
        "algo_params.meta_batch=4",
        "algo_params.batch_size=16",
        "algo_params.embedding_batch_size=8",
        "algo_params.embedding_mini_batch_size=8",
        "algo_params.num_steps_per_eval=40",
        "util_params.use_gpu=false",
        f"util_params.base_log_dir={base_dir}",
    ]


def random_step_data(
    g: torch.Generator, tasks: int, n_context: int, batch: int, obs_dim: int, action_dim: int
) -> tuple[torch.Tensor, RLBatch]:
    """A random context (tasks, n_context, obs + action + 1) and RL batch for one update."""
    context = torch.randn(tasks, n_context, obs_dim + action_dim + 1, generator=g)
    rl_batch = RLBatch(
        obs=torch.randn(tasks, batch, obs_dim, generator=g),
        actions=torch.rand(tasks, batch, action_dim, generator=g) * 2 - 1,
        rewards=torch.randn(tasks, batch, generator=g),
        next_obs=torch.randn(tasks, batch, obs_dim, generator=g),
        terminals=(torch.rand(tasks, batch, generator=g) < 0.3).float(),
    )
    return context, rl_batch


def online_return_pickles(run_dir: Path) -> dict[str, bytes]:
    """Checks the reference's online-{train,test}-epoch{N}.pkl of a run folder against its
    online_returns.jsonl: a pair for every record (epochs 0, 1, ...), nothing else, each a plain
    pickle of the record's list as a 1-D float64 numpy array (as oyster 44e20fd saved it).
    Returns the files' bytes by name."""
    lines = (run_dir / "online_returns.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == list(range(len(records)))
    expected = {
        f"online-{split}-epoch{r['epoch']}.pkl": r[split]
        for r in records
        for split in ("train", "test")
    }
    found = {p.name for p in run_dir.iterdir() if p.name.startswith("online-") or ".pkl" in p.name}
    assert found == set(expected)
    contents = {}
    for name, values in expected.items():
        contents[name] = (run_dir / name).read_bytes()
        with open(run_dir / name, "rb") as f:
            array = pickle.load(f)
        assert type(array) is np.ndarray, name
        assert array.dtype == np.float64 and array.shape == (len(values),), name
        assert array.tolist() == values, name  # the same floats, exactly
    return contents


def band_edges(band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The x values of a fill_between band and its lower and upper y at each, sorted by x.

    fill_between's polygon runs along one edge and back along the other, with extra vertices
    at the ends and a closing one; grouping its vertices by x and taking the least and the
    greatest y of each group gives the two edges whatever those extras are.
    """
    vertices = band.get_paths()[0].vertices
    xs = np.unique(vertices[:, 0])
    at_x = [vertices[vertices[:, 0] == x, 1] for x in xs]
    return xs, np.array([ys.min() for ys in at_x]), np.array([ys.max() for ys in at_x])

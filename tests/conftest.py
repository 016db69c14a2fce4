"""Shared fixtures: a tiny point-robot PEARL experiment built from the real config path."""

import pytest
import torch

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


@pytest.fixture
def one_torch_thread():
    """Tiny networks run fastest on one thread, and a busy machine does not slow them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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

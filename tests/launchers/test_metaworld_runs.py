"""End to end: each Meta-World config runs one tiny iteration through launch_experiment.py and
writes the success columns (and, for ML10/ML45, one per held-out class)."""

import csv
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_child

from rlkit.envs import ENVS

CONFIGS = {
    "ml1-reach": "configs/metaworld-ml1-reach.json",
    "ml1-push": "configs/metaworld-ml1-push.json",
    "ml1-pick-place": "configs/metaworld-ml1-pick-place.json",
    "ml1-reach-quick": "configs/metaworld-ml1-reach-quick.json",
    "ml10": "configs/metaworld-ml10.json",
    "ml45": "configs/metaworld-ml45.json",
}
N_TRAIN, N_EVAL = 10, 5  # ML10's 10 train classes and 5 held-out classes, once each
TINY = [
    "net_size=16",
    f"n_train_tasks={N_TRAIN}",
    f"n_eval_tasks={N_EVAL}",
    "algo_params.num_iterations=1",
    "algo_params.num_train_steps_per_itr=2",
    "algo_params.num_initial_steps=20",
    "algo_params.num_tasks_sample=2",
    "algo_params.num_steps_prior=20",
    "algo_params.num_steps_posterior=20",
    "algo_params.num_extra_rl_steps_posterior=20",
    "algo_params.meta_batch=4",
    "algo_params.batch_size=16",
    "algo_params.embedding_batch_size=8",
    "algo_params.embedding_mini_batch_size=8",
    "algo_params.max_path_length=20",
    "algo_params.num_evals=2",
    "algo_params.num_steps_per_eval=40",
    "util_params.use_gpu=false",
]
SUCCESS_COLUMNS = [
    "TrainSuccessRate_all_train_tasks",
    "SuccessRate_all_train_tasks",
    "SuccessRate_all_test_tasks",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny iteration of every config, two at a time; name -> (result, run folder)."""

    def launch(name):
        base = tmp_path_factory.mktemp(name)
        args = ["launch_experiment.py", CONFIGS[name], "--seed", "0"]
        for expression in [*TINY, f"util_params.base_log_dir={base}"]:
            args += ["--set", expression]
        result = run_child(args)
        folders = list(base.glob("*/*/"))
        return result, folders[0] if folders else None

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CONFIGS, pool.map(launch, CONFIGS), strict=True))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_one_iteration_with_success_columns(runs, name):
    result, run_dir = runs[name]
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "progress.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    returns = row["AverageReturn_all_test_tasks"]
    columns = list(row)
    # the success columns come right after the return columns
    at = columns.index("AverageReturn_all_test_tasks")
    assert columns[at + 1 : at + 4] == SUCCESS_COLUMNS
    for key in SUCCESS_COLUMNS:
        assert 0.0 <= float(row[key]) <= 1.0
    assert float(returns) > 0  # Meta-World rewards are in [0, 10]
    held_out = [c.removeprefix("SuccessRate_test_tasks_") for c in columns if "_test_tasks_" in c]
    variant = json.loads((run_dir / "variant.json").read_text())
    if variant["env_name"] == "metaworld-ml1":
        assert held_out == []  # its test goals are of the class it trains on
    else:
        env = ENVS[variant["env_name"]]()
        assert sorted(held_out) == env.test_classes  # 5 eval tasks: one per held-out class
        assert not set(held_out) & set(env.train_classes)
    (record,) = [json.loads(line) for line in (run_dir / "online_returns.jsonl").open()]
    for split in ("train", "test"):
        curve = record[f"{split}_success"]
        assert len(curve) == len(record[split]) == 2  # 40 steps: 2 trajectories of 20
        assert all(0.0 <= v <= 1.0 for v in curve)
    # the final success rate is that of the last trajectory, as the curve's last point
    assert float(row["SuccessRate_all_test_tasks"]) == pytest.approx(record["test_success"][-1])

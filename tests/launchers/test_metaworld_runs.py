"""End to end: each Meta-World config runs one tiny iteration through launch_experiment.py and
writes the success columns (and, for ML10/ML45, one per held-out class); with Meta-World's
scripted policy in place of the learned one, those columns count its successes."""

import csv
import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import ROOT, TIME_COLUMNS, run_child
from metaworld.policies import SawyerReachV3Policy

from rlkit.envs import ENVS
from rlkit.launchers import launcher
from rlkit.launchers.config import apply_override, load_config, validate

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
    # Meta-World's evaluator after every iteration, on 20-step episodes
    "algo_params.metaworld_eval_every=1",
    "algo_params.metaworld_eval_num_evals=1",
    "algo_params.metaworld_eval_adaptation_episodes=1",
    "algo_params.metaworld_eval_evaluation_episodes=1",
    "algo_params.metaworld_eval_max_episode_steps=20",
    "util_params.use_gpu=false",
]
SUCCESS_COLUMNS = [
    "TrainSuccessRate_all_train_tasks",
    "SuccessRate_all_train_tasks",
    "SuccessRate_all_test_tasks",
]


def launch(base, config, *extra, env=None):
    """A tiny run of `config` (TINY, then `extra` --set expressions) in the folder `base`, with
    `env` added to the child's environment variables."""
    args = ["launch_experiment.py", config, "--seed", "0"]
    for expression in [*TINY, f"util_params.base_log_dir={base}", *extra]:
        args += ["--set", expression]
    result = run_child(args, env=env)
    folders = list(base.glob("*/*/"))
    return result, folders[0] if folders else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny iteration of every config, two at a time; name -> (result, run folder)."""

    # the folders first: tmp_path_factory is not safe to call from two threads at once
    bases = {name: tmp_path_factory.mktemp(name) for name in CONFIGS}

    def one(name):
        return launch(bases[name], CONFIGS[name])

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CONFIGS, pool.map(one, CONFIGS), strict=True))


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
    held_out = [
        c.removeprefix("SuccessRate_test_tasks_")
        for c in columns
        if c.startswith("SuccessRate_test_tasks_")
    ]
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
    # Meta-World's own evaluator: its headline, and a success rate per held-out class
    assert 0.0 <= float(row["MetaWorldSuccessRate_test_tasks"]) <= 1.0
    assert float(row["MetaWorldReturn_test_tasks"]) > 0
    prefix = "MetaWorldSuccessRate_test_tasks_"
    per_class = [c.removeprefix(prefix) for c in columns if c.startswith(prefix)]
    assert per_class == held_out
    for name in per_class:
        assert 0.0 <= float(row[prefix + name]) <= 1.0


def reaches(goal: np.ndarray) -> bool:
    """The goals ScriptedReach goes to: those right of the table's middle."""
    return bool(goal[0] > 0)


class ScriptedReach:
    """Meta-World's scripted reach policy in place of the learned one, for the goals that
    `reaches`; at the others the arm stays still, never within reach of them. Slot s of the
    algorithm acts on row s of the observations (no Meta-World episode ends before 500
    steps, so every slot of a wave is live); the policy sees the slot's observation with the
    goal it hides put back."""

    def __init__(self, envs: list):
        self.envs = envs  # the algorithm's slot envs, made as it needs them
        self.policy = SawyerReachV3Policy()

    def __call__(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False):
        actions = np.zeros((len(obs), 4))
        for s, o in enumerate(obs.numpy().astype(np.float64)):
            sawyer = self.envs[s].unwrapped._env
            assert np.allclose(o[:3], sawyer.get_endeff_pos()), "the row of another slot"
            o[-3:] = sawyer._get_pos_goal()
            if reaches(o[-3:]):
                with warnings.catch_warnings():  # its gain saturates far from the goal
                    warnings.simplefilter("ignore")
                    actions[s] = np.clip(self.policy.get_action(o), -1, 1)
        return torch.tensor(actions, dtype=torch.float32)


def test_the_success_columns_report_the_episodes_that_reached_the_goal(tmp_path, monkeypatch):
    """A run whose policy reaches the goal within 100 steps on some tasks and never on the
    others: every success rate is the fraction of its tasks of the first kind (each run of a
    task goes alike)."""
    variant = load_config(str(ROOT / CONFIGS["ml1-reach"]))
    for expression in [
        *TINY,
        "algo_params.max_path_length=100",
        "algo_params.num_steps_per_eval=200",
        "algo_params.metaworld_eval_num_evals=0",  # the scripted policy reads the slot envs
        "util_params.seed=0",
        f"util_params.base_log_dir={tmp_path}",
    ]:
        apply_override(variant, expression)
    validate(variant, "test")
    build = launcher.build_algorithm
    evaluated = []  # the tasks of each online evaluation: a train subset, then the test tasks

    def build_with_the_scripted_policy(*args):
        algorithm = build(*args)
        monkeypatch.setattr(algorithm.agent, "act", ScriptedReach(algorithm._envs))
        online_eval = algorithm._online_eval

        def spy(tasks, epoch):
            evaluated.append([int(t) for t in tasks])
            return online_eval(tasks, epoch)

        monkeypatch.setattr(algorithm, "_online_eval", spy)
        return algorithm

    monkeypatch.setattr(launcher, "build_algorithm", build_with_the_scripted_policy)
    monkeypatch.setenv("DEBUG", "0")  # run_experiment sets it
    run_dir = launcher.run_experiment(launcher.prepare(variant, "test"))

    env = ENVS["metaworld-ml1"](env_name="reach-v3")

    def reached(tasks):
        """The fraction of `tasks` whose goal ScriptedReach goes to."""
        goals = []
        for task in tasks:
            env.reset_task(task)
            goals.append(env._env._get_pos_goal())
        return np.mean([reaches(goal) for goal in goals])

    train_tasks, test_tasks = evaluated
    assert test_tasks == list(range(100 - N_EVAL, 100))
    train_rate, test_rate = reached(train_tasks), reached(test_tasks)
    env.close()
    assert 0 < test_rate < 1  # tasks of both kinds: neither a rate of 0 nor 1 passes
    with open(run_dir / "progress.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    # the buffer-posterior trajectories are on the online evaluation's train tasks
    assert float(row["TrainSuccessRate_all_train_tasks"]) == pytest.approx(train_rate)
    assert float(row["SuccessRate_all_train_tasks"]) == pytest.approx(train_rate)
    assert float(row["SuccessRate_all_test_tasks"]) == pytest.approx(test_rate)
    (record,) = [json.loads(line) for line in (run_dir / "online_returns.jsonl").open()]
    # 200 steps: 2 trajectories of 100, alike
    assert record["train_success"] == pytest.approx([train_rate] * 2)
    assert record["test_success"] == pytest.approx([test_rate] * 2)


def without_time(run_dir):
    with open(run_dir / "progress.csv", newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)
        ]


def test_resumed_ml10_run_equals_the_uninterrupted_one(tmp_path):
    # slots switch classes in every phase; the envs a resumed process takes from its pool are
    # other instances than the first process's, and must not change a number. Each process
    # has its own string-hash seed, as Python gives by default: Meta-World's evaluator sums
    # its classes in the order of a set of their names (rlkit.core.evaluation.ClassName)
    two = "algo_params.num_iterations=2"
    straight, straight_dir = launch(
        tmp_path / "straight", CONFIGS["ml10"], two, env={"PYTHONHASHSEED": "1"}
    )
    first, resumed_dir = launch(tmp_path / "resumed", CONFIGS["ml10"], env={"PYTHONHASHSEED": "2"})
    assert straight.returncode == 0 and first.returncode == 0, straight.stderr + first.stderr
    resumed = run_child(
        ["launch_experiment.py", "--resume", resumed_dir, "--set", two],
        env={"PYTHONHASHSEED": "3"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = without_time(straight_dir)
    assert len(rows) == 2 and rows == without_time(resumed_dir)
    lines = [(d / "online_returns.jsonl").read_text() for d in (straight_dir, resumed_dir)]
    assert lines[0] == lines[1]

"""The Python API: rlkit.train runs what launch_experiment.py runs, rlkit.load_run gives what
sim_policy.py scores, and its posterior and actions are the protocol's own."""

import csv
import json
import re
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, TIME_COLUMNS, run_child, tiny_overrides

import rlkit
from rlkit.launchers.config import ConfigError, parse_value
from rlkit.samplers.online_adaptation import adapt_online
from rlkit.samplers.rollout import rollout

CONFIG = "configs/sparse-point-robot.json"
ITERATIONS = 2


def tiny_sets(base_dir) -> list[str]:
    return [*tiny_overrides(base_dir, ITERATIONS), "util_params.snapshot_mode=gap_and_last"]


def as_overrides(sets: list[str]) -> dict:
    """--set expressions as the API takes them: dotted keys to values."""
    return {key: parse_value(value) for key, _, value in (s.partition("=") for s in sets)}


def rows(run_dir, with_time=False):
    with open(run_dir / "progress.csv", newline="") as f:
        found = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if with_time or k not in TIME_COLUMNS} for row in found]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained through rlkit.train, and its base folder."""
    base = tmp_path_factory.mktemp("api")
    return rlkit.train(str(ROOT / CONFIG), as_overrides(tiny_sets(base)), seed=3), base


def test_train_runs_what_launch_experiment_runs(trained, tmp_path):
    run_dir, base = trained
    assert run_dir.parent.parent == base
    assert len(rows(run_dir)) == ITERATIONS
    sets = tiny_sets(tmp_path)
    proc = run_child(
        ["launch_experiment.py", CONFIG, "--seed", "3", *(a for s in sets for a in ("--set", s))]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cli_dir,) = tmp_path.glob("*/*")
    assert rows(run_dir) == rows(cli_dir)
    api_variant = json.loads((run_dir / "variant.json").read_text())
    cli_variant = json.loads((cli_dir / "variant.json").read_text())
    for variant in (api_variant, cli_variant):
        variant["util_params"].pop("base_log_dir")
    assert api_variant == cli_variant
    assert api_variant["util_params"]["seed"] == 3


def test_train_takes_a_dict_as_a_config_file(trained, tmp_path):
    run_dir = trained[0]
    content = json.loads((ROOT / CONFIG).read_text())
    again = rlkit.train(content, as_overrides(tiny_sets(tmp_path)), seed=3)
    assert rows(again) == rows(run_dir)


def test_bad_settings_are_config_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'algo_params\.num_iteration'"):
        rlkit.train(CONFIG, {"algo_params.num_iteration": 3})
    with pytest.raises(ValueError, match="net_size must be at least 1"):
        rlkit.train({"env_name": "point-robot", "net_size": 0})
    with pytest.raises(ConfigError, match="no such run folder"):
        rlkit.load_run(tmp_path / "missing")


def averages(stdout) -> list[float]:
    return [float(v) for v in re.findall(r"trajectory \d+, average return: (-?[\d.]+)", stdout)]


@pytest.mark.parametrize("itr", [None, 0])
def test_load_run_scores_what_sim_policy_scores(trained, itr):
    run_dir = trained[0]
    run = rlkit.load_run(run_dir, itr, seed=5)
    returns = run.returns(run.run(run.eval_tasks, num_trajs=3)).mean(axis=0)
    args = ["sim_policy.py", run_dir, "--num_trajs", "3", "--seed", "5"]
    proc = run_child(args + ([] if itr is None else ["--itr", str(itr)]))
    assert proc.returncode == 0, proc.stderr
    assert averages(proc.stdout) == [round(float(r), 2) for r in returns]


def test_the_snapshots_differ(trained):
    """(so that the itr test above tells snapshots apart)"""
    run_dir = trained[0]
    last = rlkit.load_run(run_dir).agent.policy.state_dict()
    first = rlkit.load_run(run_dir, 0).agent.policy.state_dict()
    assert any(not torch.equal(last[k], first[k]) for k in last)


def test_posterior_is_the_online_protocols(trained):
    run_dir = trained[0]
    run = rlkit.load_run(run_dir)
    algo = run.variant["algo_params"]
    assert algo["sparse_rewards"]  # the context reads the sparse rewards
    envs = [run.env]
    run.env.reset(seed=0)
    run.env.reset_task(run.eval_tasks[0])
    paths, mean, var = adapt_online(
        envs,
        run.agent,
        max_path_length=algo["max_path_length"],
        num_exp_traj=1,
        sparse_rewards=True,
        use_next_obs=False,
        max_trajs=2,
    )
    got_mean, got_var = run.posterior(paths[0])
    np.testing.assert_array_equal(got_mean, mean[0].numpy())
    np.testing.assert_array_equal(got_var, var[0].numpy())
    prior_mean, prior_var = run.prior()
    assert not np.allclose(got_var, prior_var)
    one_path_mean, _ = run.posterior(paths[0][0])
    assert not np.array_equal(one_path_mean, got_mean)


def test_act_takes_the_actions_a_rollout_takes(trained):
    run_dir = trained[0]
    run = rlkit.load_run(run_dir)
    mean, var = run.prior()
    z = run.sample_z(mean, var)
    assert not np.array_equal(z, run.sample_z(mean, var, deterministic=True))
    run.env.reset(seed=1)
    run.env.reset_task(run.eval_tasks[0])
    (path,) = rollout([run.env], run.agent, torch.from_numpy(z)[None], 20, deterministic=True)
    acted = np.stack([run.act(obs, z, deterministic=True) for obs in path.observations])
    np.testing.assert_array_equal(acted, path.actions)
    other = run.act(path.observations[0], z + 1.0, deterministic=True)
    assert not np.array_equal(other, path.actions[0])


def test_the_context_size_tool_narrows_the_posterior_and_scores_subsets(
    trained, monkeypatch, capsys
):
    sys.path.insert(0, str(ROOT / "tools"))
    import context_size

    run_dir = trained[0]
    argv = ["context_size.py", str(run_dir), "--trajectories", "3", "--sizes", "5"]
    monkeypatch.setattr(sys, "argv", [*argv, "--subsets", "2", "--episodes", "1"])
    context_size.main()
    out = capsys.readouterr().out
    # a product of Gaussian factors: every transition added narrows it
    widths = [float(w) for w in re.findall(r"trajectories \(\d+ transitions\): std ([\d.]+)", out)]
    assert len(widths) == 2 and 0 < widths[1] < widths[0] < 1.0
    scored = re.findall(r"  (.+) \(std ([\d.]+)\): (-?[\d.]+)", out)
    names = ["all 3 trajectories", "all 3 trajectories of the next task"]
    assert [name for name, _, _ in scored] == [*names, "random 5-transition subsets"]
    assert all(np.isfinite(float(value)) for _, _, value in scored)
    assert scored[1][1] == scored[0][1]  # the same posteriors, given to other tasks
    # 5 transitions are far fewer factors than 3 trajectories' (60)
    assert float(scored[2][1]) > float(scored[0][1]) == pytest.approx(widths[1], abs=1e-4)
    episodes = len(rlkit.load_run(run_dir).eval_tasks) * 2
    assert f"({episodes} episodes each)" in out

    monkeypatch.setattr(sys, "argv", [*argv[:-1], "100000"])
    with pytest.raises(SystemExit) as exited:
        context_size.main()
    assert exited.value.code == 2
    assert "--sizes: at most" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["context_size.py", str(run_dir / "missing")])
    with pytest.raises(SystemExit) as exited:
        context_size.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().endswith("missing: no such run folder")

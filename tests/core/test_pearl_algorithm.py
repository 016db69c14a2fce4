"""The data-collection schedule and the evaluation protocol of the meta-training loop."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from rlkit.core import evaluation, pearl_algorithm
from rlkit.core.pearl_algorithm import duplicate_rounds
from rlkit.envs import ENVS
from rlkit.envs.point_robot import PointEnv


def test_initial_collection_fills_both_buffers_with_whole_trajectories(make_algorithm):
    algo = make_algorithm()
    algo.collect_data(algo.train_tasks, 50, np.inf)
    for task in algo.train_tasks:
        # whole trajectories of 20 until >= 50 transitions: 3 of them, all stored
        assert algo.replay_buffer.size(task) == 60
        assert algo.enc_replay_buffer.size(task) == 60
        assert algo.replay_buffer.num_trajectories(task) == 3
    assert algo.n_env_steps_total == 60 * len(algo.train_tasks)
    assert algo.n_rollouts_total == 3 * len(algo.train_tasks)


def test_last_transition_of_every_trajectory_is_kept(make_algorithm):
    algo = make_algorithm()
    algo.collect_data([0], 40, np.inf)
    data = algo.replay_buffer._chunks[0]  # one chunk holds these small buffers
    row = algo.replay_buffer._row[0]
    obs, next_obs = data["observations"][row, :40], data["next_observations"][row, :40]
    # within a trajectory o'_t = o_{t+1}; the 20th transition of each is stored
    np.testing.assert_array_equal(next_obs[:19], obs[1:20])
    np.testing.assert_array_equal(next_obs[20:39], obs[21:40])
    env = algo._env(0)
    env.reset_task(0)
    # the last transition's reward is the reward at its next observation
    goal = env.tasks[0]
    reward = data["rewards"][row, 19]
    assert reward == pytest.approx(-np.linalg.norm(next_obs[19] - goal), abs=1e-5)


def test_iteration_collection_clears_the_encoder_buffer_of_sampled_tasks(make_algorithm):
    algo = make_algorithm("algo_params.num_steps_posterior=20")
    algo.collect_data(algo.train_tasks, 50, np.inf)
    algo.rng = np.random.default_rng(5)
    draws = np.random.default_rng(5).integers(len(algo.train_tasks), size=3)
    algo._collect_iteration_data()
    sampled = {algo.train_tasks[i] for i in draws}
    counts = {t: list(draws).count(i) for i, t in enumerate(algo.train_tasks)}
    for task in algo.train_tasks:
        if task in sampled:
            # prior (30 -> 40) and posterior (20) since the last clear; extra goes to RL only
            assert algo.enc_replay_buffer.size(task) == 40 + 20
            rl = 60 + counts[task] * (40 + 20 + 40)
            assert algo.replay_buffer.size(task) == rl
        else:
            assert algo.enc_replay_buffer.size(task) == 60
            assert algo.replay_buffer.size(task) == 60


def test_duplicate_draws_are_collected_in_rounds():
    assert duplicate_rounds([3, 1, 3, 3, 2, 1]) == [[3, 1, 2], [3, 1], [3]]
    assert duplicate_rounds([]) == []


def test_posterior_collection_infers_from_the_encoder_buffer(make_algorithm, monkeypatch):
    algo = make_algorithm("algo_params.update_post_train=2")
    algo.collect_data(algo.train_tasks, 50, np.inf)
    enc, rl = algo.enc_replay_buffer, algo.replay_buffer
    # the encoder buffer's rewards (stored and to come) get a per-task mark no env reward has
    # (dense rewards are <= 0), so a context row tells which buffer and task it came from
    marks = {task: 100.0 + task for task in algo.train_tasks}
    for task, mark in marks.items():
        enc._chunks[0]["rewards"][enc._row[task], : enc.size(task)] = mark
    add_to_enc = enc.add_path

    def add_marked(task, path):
        add_to_enc(task, dataclasses.replace(path, rewards=np.full_like(path.rewards, marks[task])))

    monkeypatch.setattr(enc, "add_path", add_marked)

    def rows(buffer, task):
        row, n = buffer._row[task], buffer.size(task)
        data = {name: buffer._chunks[0][name][row, :n] for name in ("observations", "actions")}
        return np.concatenate(
            [data["observations"], data["actions"], buffer._chunks[0]["rewards"][row, :n, None]], -1
        )

    calls = []
    original = algo._posterior

    def spy(context, lengths=None):
        # the buffers as they stand when the posterior is inferred
        stored = [(rows(enc, task), rows(rl, task)) for task in (0, 1)]
        calls.append((context.numpy().copy(), lengths, stored))
        return original(context, lengths)

    monkeypatch.setattr(algo, "_posterior", spy)
    algo.collect_data([0, 1], 100, 2)
    # 5 trajectories of 20 per task; posterior after trajectories 2 and 4 from buffer context
    assert len(calls) == 2
    assert all(context.shape == (2, 8, 5) and lengths is None for context, lengths, _ in calls)
    for context, _, stored in calls:
        for j, task in enumerate((0, 1)):  # the tasks' beliefs in task order
            enc_rows, rl_rows = stored[j]
            matches = (context[j, :, None] == enc_rows[None]).all(-1)
            assert matches.any(-1).all(), f"context of task {task} not from its encoder buffer"
            assert np.all(context[j, :, 4] == marks[task])
            assert not (context[j, :, None] == rl_rows[None]).all(-1).any()


def test_independent_trajectories_of_a_task_run_side_by_side(make_algorithm, monkeypatch):
    algo = make_algorithm()
    algo.collect_data(algo.train_tasks, 50, np.inf)
    enc_before = [algo.enc_replay_buffer.size(t) for t in algo.train_tasks]
    waves, posteriors, beliefs = [], [], []
    original_rollout, original_posterior = pearl_algorithm.rollout, algo._posterior
    original_sample_z = algo.agent.sample_z

    def rollout_spy(envs, *args, **kwargs):
        waves.append([env.unwrapped._goal.copy() for env in envs])
        return original_rollout(envs, *args, **kwargs)

    def posterior_spy(context, lengths=None):
        posteriors.append(context.shape)
        return original_posterior(context, lengths)

    def sample_z_spy(mean, var):
        beliefs.append((mean.clone(), var.clone()))
        return original_sample_z(mean, var)

    monkeypatch.setattr(pearl_algorithm, "rollout", rollout_spy)
    monkeypatch.setattr(algo, "_posterior", posterior_spy)
    monkeypatch.setattr(algo.agent, "sample_z", sample_z_spy)
    # extra RL data (not for the encoder): 5 trajectories of 20 per task, posterior every 2
    algo.collect_data([0, 1], 100, 2, add_to_enc_buffer=False)
    assert len(waves) == 1 and len(waves[0]) == 10
    goals = [algo._env(0).tasks[t] for t in (0, 1)]
    for slot, goal in enumerate(waves[0]):
        np.testing.assert_array_equal(goal, goals[slot // 5])
    # beliefs 1 and 2 of both tasks in one call, each from its own context sample
    assert posteriors == [(4, 8, 5)]
    ((mean, var),) = beliefs
    for task in range(2):
        m, v = mean[5 * task : 5 * task + 5], var[5 * task : 5 * task + 5]
        assert torch.all(m[:2] == 0) and torch.all(v[:2] == 1)  # trajectories 0, 1: prior
        assert torch.equal(m[2], m[3]) and torch.equal(v[2], v[3])  # 2, 3: one posterior
        assert not torch.equal(m[3], m[4]) and torch.all(v[2:] < 1)  # 4: the next one
    for task, before in zip(algo.train_tasks, enc_before, strict=True):
        assert algo.enc_replay_buffer.size(task) == before
        assert algo.replay_buffer.size(task) == before + 100 * (task in (0, 1))
        assert algo.replay_buffer.num_trajectories(task) == 3 + 5 * (task in (0, 1))


def test_online_evaluation_waits_num_exp_traj_eval_trajectories(make_algorithm, monkeypatch):
    algo = make_algorithm("algo_params.num_exp_traj_eval=2", "algo_params.num_evals=2")
    algo.collect_data(algo.train_tasks, 50, np.inf)
    lengths_seen = []
    original = algo.agent.posterior

    def spy(context, lengths=None, **kwargs):
        lengths_seen.append(lengths.tolist())
        return original(context, lengths=lengths, **kwargs)

    monkeypatch.setattr(algo.agent, "posterior", spy)
    result = algo._online_eval(algo.eval_tasks, epoch=0)
    # 60 steps = 3 trajectories per run; the posterior first after 2, on all 40 transitions,
    # then after the 3rd on 60; 3 tasks x 2 runs = 6 slots each time
    assert lengths_seen == [[40] * 6, [60] * 6]
    assert len(result.final_returns) == 3 and result.online_returns.shape == (3,)


def test_sparse_rewards_feed_the_context_and_the_returns_but_not_sac(make_algorithm):
    # a goal radius no trajectory leaves: every sparse reward is 1 - the distance to the goal,
    # neither 0 nor the dense reward (-distance)
    algo = make_algorithm("env_params.goal_radius=10", config="configs/sparse-point-robot.json")
    assert algo.sparse_rewards
    algo.collect_data(algo.train_tasks, 40, np.inf)
    context = algo.sample_context([0]).numpy()
    rl = algo.sample_rl_batch([0])
    # each context row (o, a, r) is a stored transition; r is its sparse reward
    buffer = algo.enc_replay_buffer
    row, n = buffer._row[0], buffer.size(0)
    stored = {name: buffer._chunks[0][name][row, :n] for name in ("observations", "actions")}
    stored_obs_actions = np.concatenate([stored["observations"], stored["actions"]], axis=1)
    next_obs = buffer._chunks[0]["next_observations"][row, :n]
    goal = algo._env(0).tasks[0]
    for o_a, reward in zip(context[0, :, :4], context[0, :, 4], strict=True):
        (i,) = np.flatnonzero((stored_obs_actions == o_a).all(axis=1))
        distance = np.linalg.norm(next_obs[i].astype(np.float64) - goal)
        assert reward == pytest.approx(1 - distance, abs=1e-5)
    assert np.all(np.abs(context[0, :, 4]) > 1e-3)  # none of them 0
    # SAC trains on the dense rewards, negative distances
    assert torch.all(rl.rewards < 0)
    envs = algo._slot_envs([0])
    from rlkit.samplers.rollout import rollout

    (path,) = rollout(envs, algo.agent, torch.zeros(1, 5), 20)
    returns = evaluation.returns_of([path], algo.sparse_rewards)
    assert returns == [pytest.approx(float(path.sparse_rewards.sum()))]


def spy_evaluation(monkeypatch):
    """Record evaluate()'s buffer-posterior waves (goals, paths) and its online runs (goals,
    trajectories per slot, final posterior mean and var)."""
    buffer_waves, online_runs = [], []
    original_rollout, original_adapt = evaluation.rollout, evaluation.adapt_online

    def goals(envs):
        return [tuple(env.unwrapped._goal) for env in envs]

    def rollout_spy(envs, *args, **kwargs):
        paths = original_rollout(envs, *args, **kwargs)
        buffer_waves.append((goals(envs), paths))
        return paths

    def adapt_spy(envs, *args, **kwargs):
        slot_paths, mean, var = original_adapt(envs, *args, **kwargs)
        online_runs.append((goals(envs), slot_paths, mean.clone(), var.clone()))
        return slot_paths, mean, var

    # the buffer-posterior trajectories are the protocol's own rollouts; the online runs
    # adapt_online's
    monkeypatch.setattr(evaluation, "rollout", rollout_spy)
    monkeypatch.setattr(evaluation, "adapt_online", adapt_spy)
    return buffer_waves, online_runs


def test_evaluate_reports_the_reference_statistics(make_algorithm, monkeypatch):
    algo = make_algorithm("algo_params.num_evals=2")
    algo.collect_data(algo.train_tasks, 50, np.inf)
    buffer_waves, online_runs = spy_evaluation(monkeypatch)
    stats = algo.evaluate(epoch=0)
    assert list(stats) == [
        "Z mean eval",
        "Z variance eval",
        "AverageTrainReturn_all_train_tasks",
        "AverageReturn_all_train_tasks",
        "AverageReturn_all_test_tasks",
    ]
    # 20 steps of at most 0.1 * sqrt(2) from a start in [-1, 1]^2 to a goal in [-1, 1]^2
    for key in list(stats)[2:]:
        assert -20 * 2 * np.sqrt(2) < stats[key] < 0

    def ret(path):
        return math.fsum(path.rewards.tolist())

    all_goals = algo._env(0).tasks
    train_goals = {tuple(all_goals[t]) for t in algo.train_tasks}
    n_eval, runs = len(algo.eval_tasks), algo.num_evals
    # AverageTrainReturn: num_steps_per_eval // max_path_length waves on len(eval_tasks) train
    # tasks, z from the buffer posterior; the mean return over all those trajectories
    assert len(buffer_waves) == 60 // 20
    train_subset = buffer_waves[0][0]
    assert len(train_subset) == n_eval and set(train_subset) <= train_goals
    assert all(wave_goals == train_subset for wave_goals, _ in buffer_waves)
    returns = [ret(p) for _, paths in buffer_waves for p in paths]
    assert stats["AverageTrainReturn_all_train_tasks"] == pytest.approx(np.mean(returns), rel=1e-6)
    # AverageReturn: num_evals online runs per task, first the same train tasks, then the test
    # tasks; per task the mean over runs of the last trajectory's return, then over tasks
    test_goals = [tuple(all_goals[t]) for t in algo.eval_tasks]
    assert len(online_runs) == 2
    expected_goals = (train_subset, test_goals)
    keys = ("AverageReturn_all_train_tasks", "AverageReturn_all_test_tasks")
    for (run_goals, slot_paths, _, _), task_goals, key in zip(
        online_runs, expected_goals, keys, strict=True
    ):
        assert run_goals == [g for g in task_goals for _ in range(runs)]
        for paths in slot_paths:  # trajectories until 60 steps: 3 of 20
            assert [len(p) for p in paths] == [20, 20, 20]
        finals = [
            np.mean([ret(slot_paths[i * runs + r][-1]) for r in range(runs)])
            for i in range(len(task_goals))
        ]
        assert stats[key] == pytest.approx(np.mean(finals), rel=1e-6)
    # the Z statistics: the last test run's final posterior
    _, _, mean, var = online_runs[1]
    assert stats["Z mean eval"] == pytest.approx(float(mean[-1].abs().mean()), rel=1e-6)
    assert stats["Z variance eval"] == pytest.approx(float(var[-1].mean()), rel=1e-6)


class SucceedingPointEnv(PointEnv):
    """A point robot that reports success like Meta-World, within 0.8 of the goal on the
    first six tasks, within 1.2 on the last three, which are in two classes of their own (held
    out, as ML10's test classes)."""

    reports_success = True

    def class_of(self, idx):
        return "trained" if idx < 6 else f"held-out-{idx % 2}"

    def reset_task(self, idx):
        self._radius = 0.8 if idx < 6 else 1.2
        super().reset_task(idx)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["success"] = float(reward > -self._radius)
        return obs, reward, terminated, truncated, info


def test_evaluate_reports_success_rates(make_algorithm, monkeypatch):
    monkeypatch.setitem(ENVS, "succeeding-point-robot", SucceedingPointEnv)
    algo = make_algorithm("env_name=succeeding-point-robot", "algo_params.num_evals=2")
    assert algo.eval_tasks == [6, 7, 8]
    algo.collect_data(algo.train_tasks, 50, np.inf)
    buffer_waves, online_runs = spy_evaluation(monkeypatch)
    stats = algo.evaluate(epoch=0)
    assert list(stats)[5:] == [
        "TrainSuccessRate_all_train_tasks",
        "SuccessRate_all_train_tasks",
        "SuccessRate_all_test_tasks",
        "SuccessRate_test_tasks_held-out-0",
        "SuccessRate_test_tasks_held-out-1",
    ]

    def success(path):  # at any step
        return float(max(path.successes) == 1.0)

    buffer_paths = [p for _, paths in buffer_waves for p in paths]
    expected = np.mean([success(p) for p in buffer_paths])
    assert stats["TrainSuccessRate_all_train_tasks"] == pytest.approx(expected, rel=1e-12)
    runs = algo.num_evals
    finals = []
    for _, slot_paths, _, _ in online_runs:
        n_tasks = len(slot_paths) // runs
        per_task = [
            np.mean([success(slot_paths[i * runs + r][-1]) for r in range(runs)])
            for i in range(n_tasks)
        ]
        finals.append(per_task)
    assert stats["SuccessRate_all_train_tasks"] == pytest.approx(np.mean(finals[0]), rel=1e-12)
    assert stats["SuccessRate_all_test_tasks"] == pytest.approx(np.mean(finals[1]), rel=1e-12)
    # eval tasks 6, 7, 8: classes held-out-0, held-out-1, held-out-0
    held_out_0 = np.mean([finals[1][0], finals[1][2]])
    assert stats["SuccessRate_test_tasks_held-out-0"] == pytest.approx(held_out_0, rel=1e-12)
    assert stats["SuccessRate_test_tasks_held-out-1"] == pytest.approx(finals[1][1], rel=1e-12)
    # the checks above tell the three rates apart: they differ here
    rates = [stats[k] for k in list(stats)[5:8]]
    assert len(set(rates)) == 3, rates
    # online_returns.jsonl: the success rate of each trajectory index, over tasks and runs
    record = json.loads((algo.logger.run_dir / "online_returns.jsonl").read_text())
    for key, (_, slot_paths, _, _) in zip(
        ("train_success", "test_success"), online_runs, strict=True
    ):
        by_index = np.array([[success(p) for p in paths] for paths in slot_paths]).mean(axis=0)
        np.testing.assert_allclose(record[key], by_index, rtol=1e-12)


def test_families_without_success_have_no_success_columns(make_algorithm):
    algo = make_algorithm()
    algo.collect_data(algo.train_tasks, 50, np.inf)
    stats = algo.evaluate(epoch=0)
    assert not [key for key in stats if "Success" in key]
    record = json.loads((algo.logger.run_dir / "online_returns.jsonl").read_text())
    assert set(record) == {"epoch", "train", "test"}

"""Point-robot task families: the reference's seeded task lists, dynamics, rewards, resets,
the launcher's action wrapper and the registry."""

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs import ENVS
from rlkit.envs.point_robot import PointEnv, SparsePointEnv
from rlkit.envs.wrappers import NormalizedBoxEnv

FIXED_GOALS = [[10, -10], [10, 10], [-10, 10], [-10, -10], [0, 0], [7, 2], [0, 4], [-6, 9]]


def reference_point_goals(n_tasks):
    """What the reference got from np.random.seed(1337): x then y, uniform(-1, 1), per task."""
    rng = np.random.RandomState(1337)
    return np.array([[rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)] for _ in range(n_tasks)])


def reference_sparse_goals(n_tasks):
    angles = np.linspace(0, np.pi, num=n_tasks)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.random.RandomState(1337).shuffle(goals)
    return goals


@pytest.fixture
def global_rng_guard():
    """Tests that seed numpy's global generator give it back as they found it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


# ------------------------------------------------------------------ task lists


@pytest.mark.parametrize("n_tasks", [1, 2, 100])
def test_point_robot_tasks_match_reference_seed(n_tasks):
    env = PointEnv(randomize_tasks=True, n_tasks=n_tasks)
    assert len(env.tasks) == n_tasks
    assert list(env.get_all_task_idx()) == list(range(n_tasks))
    np.testing.assert_array_equal(np.array(env.tasks), reference_point_goals(n_tasks))


@pytest.mark.parametrize("n_tasks", [2, 7, 100])
def test_sparse_point_robot_tasks_match_reference_seed(n_tasks):
    env = SparsePointEnv(randomize_tasks=True, n_tasks=n_tasks)
    assert len(env.tasks) == n_tasks
    assert list(env.get_all_task_idx()) == list(range(n_tasks))
    goals = np.array(env.tasks)
    np.testing.assert_array_equal(goals, reference_sparse_goals(n_tasks))
    # on the unit upper half-circle, including both ends of [0, pi]
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0)
    assert (goals[:, 1] >= -1e-12).all()
    assert np.isclose(goals[:, 0].max(), 1.0) and np.isclose(goals[:, 0].min(), -1.0)


def test_literal_values_of_the_reference_task_lists(global_rng_guard):
    """Values computed once with numpy's legacy global generator seeded with 1337."""
    point = np.array(PointEnv(randomize_tasks=True, n_tasks=100).tasks)
    np.testing.assert_allclose(point[0], [-0.47595065, -0.6826320557], atol=1e-9)
    np.testing.assert_allclose(point[1], [-0.443746961, -0.0813662256], atol=1e-9)
    np.testing.assert_allclose(point[99], [0.704232866, 0.0948723942], atol=1e-9)
    sparse = np.array(SparsePointEnv(randomize_tasks=True, n_tasks=100).tasks)
    np.testing.assert_allclose(sparse[0], [0.9979866765, 0.0634239197], atol=1e-9)
    np.testing.assert_allclose(sparse[1], [0.0475819158, 0.9988673392], atol=1e-9)
    np.testing.assert_allclose(sparse[99], [0.7452644497, 0.6667690005], atol=1e-9)

    # and exactly what the reference's global-generator calls give
    np.random.seed(1337)
    expected = [[np.random.uniform(-1.0, 1.0), np.random.uniform(-1.0, 1.0)] for _ in range(100)]
    np.testing.assert_array_equal(point, np.array(expected))


@pytest.mark.parametrize("env_class", [PointEnv, SparsePointEnv])
def test_global_random_state_is_neither_used_nor_changed(env_class, global_rng_guard):
    np.random.seed(4321)
    before = np.random.get_state()
    env = env_class(randomize_tasks=True, n_tasks=10)
    env.reset()
    env.step(np.zeros(2))
    env.reset_task(3)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    # the task list does not depend on the global seed
    np.random.seed(99)
    again = env_class(randomize_tasks=True, n_tasks=10)
    np.testing.assert_array_equal(np.array(env.tasks), np.array(again.tasks))


def test_fixed_goals_without_randomize_tasks():
    env = PointEnv(randomize_tasks=False)
    assert len(env.tasks) == 8
    np.testing.assert_allclose(np.array(env.tasks), np.array(FIXED_GOALS) / 10.0)


# ------------------------------------------------------------------ spaces, dynamics, rewards


@pytest.mark.parametrize("env_class", [PointEnv, SparsePointEnv])
def test_spaces(env_class):
    env = env_class(randomize_tasks=True, n_tasks=4)
    assert isinstance(env, gym.Env)
    assert env.observation_space.shape == (2,)
    np.testing.assert_allclose(env.action_space.low, [-0.1, -0.1])
    np.testing.assert_allclose(env.action_space.high, [0.1, 0.1])


@pytest.mark.parametrize("env_class", [PointEnv, SparsePointEnv])
def test_step_moves_by_the_action_and_rewards_minus_distance(env_class):
    env = env_class(randomize_tasks=True, n_tasks=5)
    rng = np.random.default_rng(0)
    for task in range(5):
        env.reset_task(task)
        goal = np.asarray(env.tasks[task], dtype=np.float64)
        obs, _ = env.reset()
        state = np.asarray(obs, dtype=np.float64)
        for _ in range(15):
            action = rng.uniform(-0.1, 0.1, size=2)
            obs, reward, terminated, truncated, _ = env.step(action)
            state = state + action
            np.testing.assert_allclose(obs, state, atol=1e-5)
            assert reward == pytest.approx(-np.linalg.norm(state - goal), abs=1e-5)
            assert terminated is False and truncated is False


@pytest.mark.parametrize("env_class", [PointEnv, SparsePointEnv])
def test_never_terminated_even_far_away(env_class):
    env = env_class(randomize_tasks=True, n_tasks=3)
    env.reset()
    for _ in range(300):
        _, reward, terminated, truncated, _ = env.step(np.array([0.1, 0.1]))
        assert not terminated and not truncated
    assert reward < -25  # it did walk away from the goal


def test_never_terminated_at_the_goal():
    env = PointEnv(randomize_tasks=True, n_tasks=3)
    env.reset_task(1)
    obs, _ = env.reset()
    goal = np.asarray(env.tasks[1])
    for _ in range(40):
        obs, reward, terminated, truncated, _ = env.step(np.clip(goal - obs, -0.1, 0.1))
        assert not terminated and not truncated
    assert reward == pytest.approx(0.0, abs=1e-6)


def test_point_robot_reset_is_uniform_in_the_square():
    env = PointEnv(randomize_tasks=True, n_tasks=2)
    env.reset(seed=0)
    starts = np.array([env.reset()[0] for _ in range(500)])
    assert starts.shape == (500, 2)
    assert (starts >= -1).all() and (starts <= 1).all()
    assert (starts.min(axis=0) < -0.9).all() and (starts.max(axis=0) > 0.9).all()
    assert abs(starts.mean()) < 0.1
    assert len(np.unique(starts[:, 0])) == 500
    # reset(seed=...) makes it reproducible
    np.testing.assert_array_equal(env.reset(seed=3)[0], env.reset(seed=3)[0])


def test_sparse_point_robot_resets_at_the_origin():
    env = SparsePointEnv(randomize_tasks=True, n_tasks=4)
    for task in range(4):
        env.reset_task(task)
        env.step(np.array([0.05, -0.02]))
        obs, _ = env.reset()
        np.testing.assert_array_equal(obs, [0.0, 0.0])


def walk_towards(env, goal, distance_left):
    """From the origin, steps of at most 0.1 along the goal direction, stopping
    `distance_left` short of the (unit-norm) goal; returns the last step's output."""
    direction = np.asarray(goal) / np.linalg.norm(goal)
    travel = 1.0 - distance_left
    n_steps = int(np.ceil(travel / 0.1))
    for _ in range(n_steps):
        out = env.step(direction * travel / n_steps)
    return out


@pytest.mark.parametrize(
    ("distance", "sparse"), [(0.05, 0.95), (0.1, 0.9), (0.15, 0.85), (0.25, 0.0), (0.5, 0.0)]
)
def test_sparse_reward_inside_radius_dense_reward_returned(distance, sparse):
    env = SparsePointEnv(randomize_tasks=True, n_tasks=6)
    assert env.goal_radius == 0.2
    env.reset_task(2)
    obs, reward, terminated, truncated, info = walk_towards(env, env.tasks[2], distance)
    assert not terminated and not truncated  # not even near the goal
    assert np.linalg.norm(obs - env.tasks[2]) == pytest.approx(distance, abs=1e-6)
    assert reward == pytest.approx(-distance, abs=1e-6)
    assert info["sparse_reward"] == pytest.approx(sparse, abs=1e-6)


def test_sparse_reward_is_zero_at_the_start():
    env = SparsePointEnv(randomize_tasks=True, n_tasks=6)
    env.reset()
    _, reward, _, _, info = env.step(np.zeros(2))
    assert reward == pytest.approx(-1.0)
    assert info["sparse_reward"] == 0.0


def test_reset_task_changes_the_goal_used_by_the_reward():
    env = PointEnv(randomize_tasks=True, n_tasks=10)
    goals = {task: np.asarray(env.tasks[task]) for task in (0, 7)}
    for task, other in ((0, 7), (7, 0)):
        env.reset_task(task)
        obs, _ = env.reset()
        _, reward, _, _, _ = env.step(np.zeros(2))
        assert reward == pytest.approx(-np.linalg.norm(obs - goals[task]), abs=1e-6)
        assert reward != pytest.approx(-np.linalg.norm(obs - goals[other]), abs=1e-3)


def test_reset_task_resets_the_robot():
    env = SparsePointEnv(randomize_tasks=True, n_tasks=4)
    env.reset_task(0)
    for _ in range(5):
        env.step(np.array([0.1, 0.1]))
    env.reset_task(1)
    obs, reward, _, _, _ = env.step(np.zeros(2))
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert reward == pytest.approx(-1.0)


# ------------------------------------------------------------------ wrapper and registry


class RecordingEnv(gym.Env):
    """Records the action the wrapper hands down; an asymmetric action box."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,))
    action_space = gym.spaces.Box(np.array([0.0, -3.0]), np.array([2.0, 1.0]), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.received = np.array(action)
        return np.zeros(2, dtype=np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ([-1.0, -1.0], [0.0, -3.0]),
        ([1.0, 1.0], [2.0, 1.0]),
        ([0.0, 0.0], [1.0, -1.0]),
        ([0.5, -0.5], [1.5, -2.0]),
        ([3.0, -7.0], [2.0, -3.0]),
        ([-1.5, 1.01], [0.0, 1.0]),
    ],
)
def test_normalized_box_env_rescales_and_clips(action, expected):
    env = NormalizedBoxEnv(RecordingEnv())
    np.testing.assert_array_equal(env.action_space.low, [-1, -1])
    np.testing.assert_array_equal(env.action_space.high, [1, 1])
    env.reset()
    env.step(np.array(action))
    np.testing.assert_allclose(env.unwrapped.received, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("action", "moved"),
    [([-1, -1], [-0.1, -0.1]), ([1, 1], [0.1, 0.1]), ([0, 0], [0, 0]), ([4, -9], [0.1, -0.1])],
)
def test_normalized_point_robot(action, moved):
    env = NormalizedBoxEnv(SparsePointEnv(randomize_tasks=True, n_tasks=4))
    env.reset()
    obs, _, _, _, _ = env.step(np.array(action, dtype=np.float64))
    np.testing.assert_allclose(obs, moved, atol=1e-6)


def test_wrapper_passes_the_task_protocol_through():
    env = NormalizedBoxEnv(PointEnv(randomize_tasks=True, n_tasks=5))
    np.testing.assert_array_equal(np.array(env.tasks), reference_point_goals(5))
    assert list(env.get_all_task_idx()) == list(range(5))
    env.reset_task(4)
    obs, _ = env.reset()
    _, reward, _, _, _ = env.step(np.zeros(2))
    assert reward == pytest.approx(-np.linalg.norm(obs - env.tasks[4]), abs=1e-6)


def test_registry_holds_both_point_robots():
    assert ENVS["point-robot"] is PointEnv
    assert ENVS["sparse-point-robot"] is SparsePointEnv
    env = ENVS["sparse-point-robot"](**{"n_tasks": 12, "randomize_tasks": True})
    np.testing.assert_array_equal(np.array(env.tasks), reference_sparse_goals(12))
    env = ENVS["point-robot"](**{"n_tasks": 3, "randomize_tasks": True})
    np.testing.assert_array_equal(np.array(env.tasks), reference_point_goals(3))

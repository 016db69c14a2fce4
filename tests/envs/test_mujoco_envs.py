"""MuJoCo task families (cheetah-dir, cheetah-vel, ant-dir, ant-goal, humanoid-dir) checked
against their specification. Expected values are recomputed from `env.model` / `env.data` with
the mujoco API, never with the env's own helpers (contact_cost, mass_center, body_position)."""

import copy

import mujoco
import numpy as np
import pytest

from rlkit.envs import ENVS

# constructor arguments (a config's env_params) of each family under test
PARAMS = {
    "cheetah-dir": {"n_tasks": 2},
    "cheetah-vel": {"n_tasks": 4},
    "ant-dir": {"n_tasks": 2, "forward_backward": True},
    "ant-goal": {"n_tasks": 4},
    "humanoid-dir": {"n_tasks": 4},
}
NAMES = list(PARAMS)
FRAME_SKIP = 5
OBS_SIZE = {
    "cheetah-dir": 20,
    "cheetah-vel": 20,
    "ant-dir": 27,
    "ant-goal": 113,
    "humanoid-dir": 376,
}
# (bound of the uniform qpos noise, bound of the uniform qvel noise or None for 0.1 N(0, 1))
RESET_NOISE = {
    "cheetah-dir": (0.1, None),
    "cheetah-vel": (0.1, None),
    "ant-dir": (0.1, None),
    "ant-goal": (0.1, None),
    "humanoid-dir": (0.01, 0.01),
}
CONTACT_COST = 0.5e-3


def make(name, **overrides):
    return ENVS[name](**{**PARAMS[name], **overrides})


def random_actions(model, n, seed):
    low, high = model.actuator_ctrlrange.T
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high) for _ in range(n)]


def real_cfrc_ext(model, data):
    """The external contact forces of `data`'s last forward pass, recomputed on a copy."""
    scratch = copy.copy(data)
    scratch.cfrc_ext[:] = 0.0
    mujoco.mj_rnePostConstraint(model, scratch)
    return scratch.cfrc_ext.copy()


def contact_cost(cfrc_ext):
    return CONTACT_COST * np.sum(np.square(np.clip(cfrc_ext, -1.0, 1.0)))


def centre_of_mass(model, data):
    mass = model.body_mass[:, None]
    return np.sum(mass * data.xipos, axis=0) / np.sum(mass)


def torso_xpos(data):
    return data.body("torso").xpos.copy()


def expected_obs(name, model, data):
    if name.startswith("cheetah"):
        parts = [data.qpos[1:], data.qvel, torso_xpos(data)]
    elif name == "ant-dir":
        parts = [data.qpos[2:], data.qvel]
    elif name == "ant-goal":
        cfrc = np.clip(real_cfrc_ext(model, data), -1.0, 1.0)
        parts = [data.qpos, data.qvel, cfrc.ravel()]
    else:  # humanoid-dir: gym's Humanoid observation
        cfrc = real_cfrc_ext(model, data)
        parts = [data.qpos[2:], data.qvel, data.cinert, data.cvel, data.qfrc_actuator, cfrc]
    return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)


def state_before(name, model, data):
    """What the reward of `name` needs from the state before a step."""
    if name.startswith("cheetah"):
        return data.qpos[0].copy()
    if name.startswith("ant"):
        return torso_xpos(data)
    return centre_of_mass(model, data)


def expected_reward(name, task, model, data, before, action):
    dt = model.opt.timestep * FRAME_SKIP
    if name.startswith("cheetah"):
        velocity = (data.qpos[0] - before) / dt
        ctrl = 0.05 * np.sum(np.square(action))
        if name == "cheetah-dir":
            return task["direction"] * velocity - ctrl
        return -abs(velocity - task["velocity"]) - ctrl
    if name == "ant-dir":
        velocity = (torso_xpos(data)[:2] - before[:2]) / dt
        direction = np.array([np.cos(task["goal"]), np.sin(task["goal"])])
        ctrl = 0.5 * np.sum(np.square(action))
        return velocity @ direction - ctrl - contact_cost(real_cfrc_ext(model, data)) + 1.0
    if name == "ant-goal":
        distance = np.sum(np.abs(torso_xpos(data)[:2] - np.asarray(task["goal"])))
        ctrl = 0.1 * np.sum(np.square(action))
        return -distance - ctrl - contact_cost(real_cfrc_ext(model, data))
    # humanoid-dir
    displacement = centre_of_mass(model, data)[:2] - before[:2]
    direction = np.array([np.cos(task["goal"]), np.sin(task["goal"])])
    forward = 0.25 * (displacement @ direction) / model.opt.timestep
    ctrl = 0.1 * np.sum(np.square(data.ctrl))
    impact = min(0.5e-6 * np.sum(np.square(real_cfrc_ext(model, data))), 10.0)
    return forward - ctrl - impact + 5.0


def expected_terminated(name, data):
    if name == "ant-dir":
        state = np.concatenate([data.qpos, data.qvel])
        return not (np.isfinite(state).all() and 0.2 <= data.qpos[2] <= 1.0)
    if name == "humanoid-dir":
        return bool(data.qpos[2] < 1.0 or data.qpos[2] > 2.0)
    return False


# ------------------------------------------------------------------ simulation basics


@pytest.mark.parametrize("name", NAMES)
def test_frame_skip_and_dt(name):
    env = make(name)
    model = env.model
    assert env.frame_skip == FRAME_SKIP
    assert env.dt == pytest.approx(model.opt.timestep * FRAME_SKIP, rel=1e-12)
    env.reset(seed=0)
    for action in random_actions(model, 3, seed=1):
        time_before = env.data.time
        env.step(action)
        # one env step is frame_skip physics steps
        assert env.data.time - time_before == pytest.approx(model.opt.timestep * FRAME_SKIP)


@pytest.mark.parametrize("name", NAMES)
def test_observation_shape_dtype_and_content(name):
    env = make(name)
    obs, info = env.reset(seed=3)
    assert isinstance(info, dict)
    assert obs.shape == (OBS_SIZE[name],) and obs.dtype == np.float32
    assert env.observation_space.shape == (OBS_SIZE[name],)
    assert env.observation_space.dtype == np.float32
    np.testing.assert_array_equal(obs, expected_obs(name, env.model, env.data))
    for action in random_actions(env.model, 8, seed=4):
        obs = env.step(action)[0]
        assert obs.shape == (OBS_SIZE[name],) and obs.dtype == np.float32
        np.testing.assert_array_equal(obs, expected_obs(name, env.model, env.data))


@pytest.mark.parametrize("name", NAMES)
def test_reset_noise_bounds_and_scale(name):
    env = make(name)
    qpos_bound, qvel_bound = RESET_NOISE[name]
    dqpos, dqvel = [], []
    for seed in range(10):
        env.reset(seed=seed)
        dqpos.append(env.data.qpos - env.init_qpos)
        dqvel.append(env.data.qvel - env.init_qvel)
    dqpos, dqvel = np.concatenate(dqpos), np.concatenate(dqvel)
    # uniform qpos noise: within the bound, and at that scale (not a smaller noise)
    assert np.abs(dqpos).max() <= qpos_bound
    assert np.abs(dqpos).max() > 0.8 * qpos_bound
    if qvel_bound is None:  # 0.1 N(0, 1): not bounded by 0.1, standard deviation 0.1
        assert np.abs(dqvel).max() > 0.1
        assert 0.07 < np.std(dqvel) < 0.13
        assert abs(np.mean(dqvel)) < 0.03
    else:
        assert np.abs(dqvel).max() <= qvel_bound
        assert np.abs(dqvel).max() > 0.8 * qvel_bound


# every MuJoCo family, the random-physics ones of test_rand_param_envs.py included
@pytest.mark.parametrize("name", [*NAMES, "hopper-rand-params", "walker-rand-params"])
def test_reset_is_seeded(name):
    env = ENVS[name](**PARAMS.get(name, {}))
    obs_a, _ = env.reset(seed=5)
    state_a = np.concatenate([env.data.qpos, env.data.qvel])
    for action in random_actions(env.model, 5, seed=0):
        env.step(action)
    obs_again, _ = env.reset(seed=5)  # whatever happened since
    np.testing.assert_array_equal(obs_again, obs_a)
    np.testing.assert_array_equal(np.concatenate([env.data.qpos, env.data.qvel]), state_a)
    assert env.data.time == 0.0
    env.reset(seed=6)
    assert not np.array_equal(np.concatenate([env.data.qpos, env.data.qvel]), state_a)
    # another instance, same seed: same state
    other = ENVS[name](**PARAMS.get(name, {}))
    other.reset(seed=5)
    np.testing.assert_array_equal(np.concatenate([other.data.qpos, other.data.qvel]), state_a)


# ------------------------------------------------------------------ rewards and terminations


@pytest.mark.parametrize("task_idx", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_reward_and_termination_recomputed(name, task_idx):
    env = make(name)
    model, data = env.model, env.data
    task = env.tasks[task_idx]
    env.reset_task(task_idx)
    env.reset(seed=10 + task_idx)
    contact_steps = 0
    for action in random_actions(model, 20, seed=task_idx):
        before = state_before(name, model, data)
        _, reward, terminated, truncated, info = env.step(action.copy())
        assert isinstance(info, dict)
        assert truncated is False
        np.testing.assert_array_equal(data.ctrl, action)
        expected = expected_reward(name, task, model, data, before, action)
        assert reward == pytest.approx(expected, rel=1e-7, abs=1e-9)
        assert bool(terminated) == expected_terminated(name, data)
        contact_steps += bool(np.any(real_cfrc_ext(model, data)))
    if name.startswith(("ant", "humanoid")):
        assert contact_steps > 0  # the contact cost was exercised


def _set_and_step(env, qpos_changes, qvel_changes=None, no_contacts=False):
    env.reset(seed=0)
    qpos = env.init_qpos.copy()
    qvel = np.zeros(env.model.nv)
    for index, value in qpos_changes.items():
        qpos[index] = value
    for index, value in (qvel_changes or {}).items():
        qvel[index] = value
    if no_contacts:  # lets the torso go below the height the legs would keep it at
        env.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    env.set_state(qpos, qvel)
    return env.step(np.zeros(env.model.nu))


TERMINATION_CASES = [
    # (name, qpos changes, qvel changes, contacts off, terminated)
    ("ant-dir", {}, {}, False, False),
    ("ant-dir", {2: 1.5}, {}, False, True),  # torso above 1.0
    ("ant-dir", {2: 0.25}, {}, True, False),  # just above 0.2
    ("ant-dir", {2: 0.25}, {2: -2.0}, True, True),  # falls below 0.2
    ("ant-goal", {2: 1.5}, {}, False, False),  # ant-goal never ends
    ("cheetah-dir", {2: np.pi}, {}, False, False),  # upside down: never ends
    ("cheetah-vel", {1: 2.0}, {}, False, False),
    ("humanoid-dir", {}, {}, False, False),
    ("humanoid-dir", {2: 0.9}, {}, False, True),  # torso below 1
    ("humanoid-dir", {2: 2.2}, {}, False, True),  # torso above 2
]


@pytest.mark.parametrize(("name", "qpos", "qvel", "no_contacts", "terminated"), TERMINATION_CASES)
def test_driven_terminations(name, qpos, qvel, no_contacts, terminated):
    env = make(name)
    _, _, done, truncated, _ = _set_and_step(env, qpos, qvel, no_contacts)
    assert bool(done) == expected_terminated(name, env.data)  # the state is what we meant
    assert bool(done) is terminated
    assert truncated is False


# ------------------------------------------------------------------ contact forces


@pytest.mark.parametrize("name", ["ant-dir", "ant-goal"])
def test_ant_contact_forces_are_the_real_ones(name):
    env = make(name)
    model, data = env.model, env.data
    env.reset(seed=0)
    for _ in range(100):  # the ant settles on the ground
        obs = env.step(np.zeros(model.nu))[0]
    np.testing.assert_allclose(data.cfrc_ext, real_cfrc_ext(model, data), rtol=1e-12, atol=1e-12)
    # at rest the vertical contact forces carry the ant's weight
    weight = np.sum(model.body_mass) * -model.opt.gravity[2]
    assert np.sum(data.cfrc_ext[:, 5]) == pytest.approx(weight, rel=1e-3)
    if name == "ant-goal":
        np.testing.assert_array_equal(
            obs[29:], np.clip(data.cfrc_ext, -1.0, 1.0).ravel().astype(np.float32)
        )


def test_ant_goal_contact_observation_is_nonzero_on_the_ground():
    env = make("ant-goal")
    env.reset(seed=1)
    steps_on_ground = 0
    for step in range(30):
        obs = env.step(np.zeros(env.model.nu))[0]
        assert obs.shape == (113,)
        if env.data.ncon > 0:  # touching the floor in the last physics step
            steps_on_ground += 1
            assert np.any(obs[29:] != 0.0), f"no contact force in the observation at step {step}"
    assert steps_on_ground >= 10
    assert np.any(obs[29:] != 0.0)


# ------------------------------------------------------------------ task lists


def test_cheetah_dir_tasks():
    env = make("cheetah-dir")
    assert env.tasks == [{"direction": -1.0}, {"direction": 1.0}]
    assert list(env.get_all_task_idx()) == [0, 1]


@pytest.mark.parametrize("n_tasks", [1, 5, 130])
def test_cheetah_vel_goals_come_from_seed_1337(n_tasks):
    env = make("cheetah-vel", n_tasks=n_tasks)
    expected = np.random.RandomState(1337).uniform(0.0, 3.0, size=(n_tasks,))
    goals = np.array([task["velocity"] for task in env.tasks])
    np.testing.assert_array_equal(goals, expected)
    assert ((goals >= 0.0) & (goals <= 3.0)).all()
    assert list(env.get_all_task_idx()) == list(range(n_tasks))


def test_ant_dir_forward_backward_angles():
    env = make("ant-dir", n_tasks=2, forward_backward=True)
    assert [task["goal"] for task in env.tasks] == [0.0, np.pi]


@pytest.mark.parametrize("name", ["ant-dir", "humanoid-dir"])
def test_direction_tasks_are_angles(name):
    env = make(name, n_tasks=50, **({"forward_backward": False} if name == "ant-dir" else {}))
    goals = np.array([task["goal"] for task in env.tasks])
    assert goals.shape == (50,)
    assert ((goals >= 0.0) & (goals < 2.0 * np.pi)).all()
    assert len(np.unique(goals)) == 50


def test_ant_goal_goals_in_disc_of_radius_3():
    env = make("ant-goal", n_tasks=300)
    goals = np.array([task["goal"] for task in env.tasks])
    assert goals.shape == (300, 2)
    radii = np.linalg.norm(goals, axis=1)
    assert (radii <= 3.0).all()
    assert radii.max() > 2.7  # the whole disc, not a smaller one
    assert (goals[:, 0] < 0).any() and (goals[:, 1] < 0).any()


def _tasks_equal(tasks_a, tasks_b):
    assert len(tasks_a) == len(tasks_b)
    for task_a, task_b in zip(tasks_a, tasks_b, strict=True):
        assert task_a.keys() == task_b.keys()
        for key in task_a:
            np.testing.assert_array_equal(task_a[key], task_b[key])


def test_unknown_body_name_is_an_error_not_another_body():
    env = make("cheetah-dir")
    np.testing.assert_array_equal(env.body_position("torso"), env.data.body("torso").xpos)
    with pytest.raises(KeyError, match="no body named 'tail'"):
        env.body_position("tail")

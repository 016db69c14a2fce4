"""Random-physics families (hopper-rand-params, walker-rand-params) checked against their
specification: model options, observation, reset noise, reward, terminations and the tasks
(log-uniform multipliers of the original masses, inertias, damping and friction). Expected
values are recomputed from `env.model` / `env.data` with the mujoco API."""

from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import pytest

from rlkit.envs import ENVS

NAMES = ["hopper-rand-params", "walker-rand-params"]
XML = {"hopper-rand-params": "hopper.xml", "walker-rand-params": "walker2d.xml"}
OBS_SIZE = {"hopper-rand-params": 11, "walker-rand-params": 17}
TIMESTEP = 0.004
FRAME_SKIP = 4
DT = TIMESTEP * FRAME_SKIP
RESET_NOISE = 0.005
# parameter -> base of the multiplier base^U(-3, 3)
MULTIPLIER_BASE = {
    "body_mass": 1.5,
    "body_inertia": 1.5,
    "dof_damping": 1.3,
    "geom_friction": 1.5,
}


def make(name, n_tasks=3):
    return ENVS[name](n_tasks=n_tasks)


def original_model(name):
    """The model straight from gymnasium's XML, as no env has touched it."""
    path = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / XML[name]
    return mujoco.MjModel.from_xml_path(str(path))


def random_actions(model, n, seed):
    low, high = model.actuator_ctrlrange.T
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high) for _ in range(n)]


def expected_obs(data):
    return np.concatenate([data.qpos[1:], np.clip(data.qvel, -10.0, 10.0)]).astype(np.float32)


def expected_terminated(name, data):
    height, angle = data.qpos[1], data.qpos[2]
    if name == "hopper-rand-params":
        state = np.concatenate([data.qpos, data.qvel])
        healthy = (
            np.isfinite(state).all()
            and (np.abs(state[2:]) < 100).all()
            and height > 0.7
            and abs(angle) < 0.2
        )
    else:
        healthy = 0.8 < height < 2.0 and -1.0 < angle < 1.0
    return not healthy


def rollout(env, task_idx, seed, actions):
    """obs, rewards, terminations and qpos of a run of `actions` in task `task_idx`."""
    env.reset_task(task_idx)
    obs, _ = env.reset(seed=seed)
    observations, rewards, dones, qpos = [obs], [], [], [env.data.qpos.copy()]
    for action in actions:
        obs, reward, terminated, _, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        dones.append(terminated)
        qpos.append(env.data.qpos.copy())
    return np.array(observations), np.array(rewards), np.array(dones), np.array(qpos)


# ------------------------------------------------------------------ simulation basics


@pytest.mark.parametrize("name", NAMES)
def test_model_options_frame_skip_and_dt(name):
    env = make(name)
    assert env.model.opt.timestep == TIMESTEP
    assert env.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert env.frame_skip == FRAME_SKIP
    assert env.dt == pytest.approx(DT, rel=1e-12)
    env.reset(seed=0)
    for action in random_actions(env.model, 3, seed=0):
        time_before = env.data.time
        env.step(action)
        assert env.data.time - time_before == pytest.approx(DT)


@pytest.mark.parametrize("name", NAMES)
def test_observation_shape_dtype_and_content(name):
    env = make(name)
    obs, _ = env.reset(seed=2)
    assert obs.shape == (OBS_SIZE[name],) and obs.dtype == np.float32
    assert env.observation_space.shape == (OBS_SIZE[name],)
    assert env.observation_space.dtype == np.float32
    np.testing.assert_array_equal(obs, expected_obs(env.data))
    for action in random_actions(env.model, 10, seed=2):
        obs = env.step(action)[0]
        np.testing.assert_array_equal(obs, expected_obs(env.data))
    # fast joints: the velocities are clipped to [-10, 10]
    env.set_state(env.init_qpos, np.full(env.model.nv, 40.0))
    obs = env.step(np.zeros(env.model.nu))[0]
    assert np.abs(env.data.qvel).max() > 10.0
    np.testing.assert_array_equal(obs, expected_obs(env.data))
    assert np.abs(obs[env.model.nq - 1 :]).max() == 10.0


@pytest.mark.parametrize("name", NAMES)
def test_reset_noise_bounds_and_scale(name):
    env = make(name)
    dqpos, dqvel = [], []
    for seed in range(10):
        env.reset(seed=seed)
        dqpos.append(env.data.qpos - env.init_qpos)
        dqvel.append(env.data.qvel - env.init_qvel)
    for noise in (np.concatenate(dqpos), np.concatenate(dqvel)):
        assert np.abs(noise).max() <= RESET_NOISE
        assert np.abs(noise).max() > 0.8 * RESET_NOISE
    np.testing.assert_array_equal(env.init_qpos, original_model(name).qpos0)
    np.testing.assert_array_equal(env.init_qvel, 0.0)


# ------------------------------------------------------------------ rewards and terminations


@pytest.mark.parametrize("task_idx", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_reward_and_termination_recomputed(name, task_idx):
    env = make(name)
    env.reset_task(task_idx)
    env.reset(seed=20 + task_idx)
    data = env.data
    terminations = []
    for action in random_actions(env.model, 25, seed=task_idx):
        x_before = data.qpos[0].copy()
        _, reward, terminated, truncated, _ = env.step(action.copy())
        expected = (data.qpos[0] - x_before) / DT + 1.0 - 1e-3 * np.sum(np.square(action))
        assert reward == pytest.approx(expected, rel=1e-7, abs=1e-9)
        assert bool(terminated) == expected_terminated(name, data)
        assert truncated is False
        terminations.append(bool(terminated))
    assert not terminations[0]  # starts healthy


TERMINATION_CASES = [
    # (name, qpos changes, qvel changes, contacts off, terminated)
    ("hopper-rand-params", {}, {}, False, False),
    ("hopper-rand-params", {2: 0.3}, {}, False, True),  # |angle| >= 0.2
    ("hopper-rand-params", {2: -0.3}, {}, False, True),
    ("hopper-rand-params", {2: 0.1}, {}, False, False),
    ("hopper-rand-params", {1: 0.72}, {}, True, False),  # just above 0.7
    ("hopper-rand-params", {1: 0.72}, {1: -2.0}, True, True),  # falls to <= 0.7
    ("hopper-rand-params", {}, {0: 150.0}, True, True),  # |qvel[0]| >= 100
    ("hopper-rand-params", {}, {0: 90.0}, True, False),
    ("walker-rand-params", {}, {}, False, False),
    ("walker-rand-params", {2: 0.5}, {}, False, False),  # the hopper's limit is not the walker's
    ("walker-rand-params", {2: 1.2}, {}, False, True),  # angle >= 1
    ("walker-rand-params", {2: -1.2}, {}, False, True),
    ("walker-rand-params", {1: 2.3}, {}, False, True),  # height >= 2
    ("walker-rand-params", {1: 0.82}, {}, True, False),
    ("walker-rand-params", {1: 0.82}, {1: -2.0}, True, True),  # falls to <= 0.8
    ("walker-rand-params", {}, {0: 150.0}, True, False),  # no velocity limit
]


@pytest.mark.parametrize(("name", "qpos", "qvel", "no_contacts", "terminated"), TERMINATION_CASES)
def test_driven_terminations(name, qpos, qvel, no_contacts, terminated):
    env = make(name)
    env.reset(seed=0)
    qpos_start = env.init_qpos.copy()
    qvel_start = np.zeros(env.model.nv)
    for index, value in qpos.items():
        qpos_start[index] = value
    for index, value in qvel.items():
        qvel_start[index] = value
    if no_contacts:  # lets the torso go lower than the legs would keep it
        env.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    env.set_state(qpos_start, qvel_start)
    _, _, done, truncated, _ = env.step(np.zeros(env.model.nu))
    assert bool(done) == expected_terminated(name, env.data)  # the state is what we meant
    assert bool(done) is terminated
    assert truncated is False


# ------------------------------------------------------------------ tasks


@pytest.mark.parametrize("name", NAMES)
def test_init_params_are_the_original_model_arrays(name):
    env = make(name)  # construction already set task 0
    original = original_model(name)
    assert set(env.init_params) == set(MULTIPLIER_BASE)
    for param in MULTIPLIER_BASE:
        np.testing.assert_array_equal(env.init_params[param], getattr(original, param))
        assert not np.shares_memory(env.init_params[param], getattr(env.model, param))


@pytest.mark.parametrize("name", NAMES)
def test_tasks_multiply_the_original_parameters(name):
    env = make(name, n_tasks=5)
    first_visit = {}
    for task_idx in [0, 1, 2, 3, 4, 0, 2]:  # revisits must not compound earlier tasks
        env.reset_task(task_idx)
        for param, base in MULTIPLIER_BASE.items():
            value = getattr(env.model, param)
            original = env.init_params[param]
            np.testing.assert_array_equal(value, env.tasks[task_idx][param])
            nonzero = original != 0
            np.testing.assert_array_equal(value[~nonzero], 0.0)
            exponent = np.log(value[nonzero] / original[nonzero]) / np.log(base)
            assert (np.abs(exponent) <= 3.0 + 1e-9).all(), param
            assert not np.allclose(exponent, 0.0), param
            if exponent.size > 2:  # every element has its own factor
                assert len(np.unique(np.round(exponent, 9))) == exponent.size, param
            key = (task_idx, param)
            if key in first_visit:
                np.testing.assert_array_equal(value, first_visit[key])
            first_visit[key] = value.copy()
    # the tasks differ from one another
    assert not np.array_equal(env.tasks[0]["body_mass"], env.tasks[1]["body_mass"])


@pytest.mark.parametrize("name", NAMES)
def test_exponents_cover_the_range(name):
    env = make(name, n_tasks=40)
    exponents = []
    for task in env.tasks:
        for param, base in MULTIPLIER_BASE.items():
            original = env.init_params[param]
            nonzero = original != 0
            exponents.append(np.log(task[param][nonzero] / original[nonzero]) / np.log(base))
    exponents = np.concatenate(exponents)
    assert np.abs(exponents).max() <= 3.0 + 1e-9
    assert exponents.min() < -2.8 and exponents.max() > 2.8
    assert abs(np.mean(exponents)) < 0.3  # centred: log-uniform in [-3, 3]


@pytest.mark.parametrize("name", NAMES)
def test_derived_constants_are_recomputed(name):
    env = make(name)
    model = env.model
    for task_idx in [1, 0, 2]:
        env.reset_task(task_idx)
        assert model.body_subtreemass[0] == pytest.approx(np.sum(model.body_mass), rel=1e-12)
        subtree = model.body_mass.copy()
        for body in range(model.nbody - 1, 0, -1):
            subtree[model.body_parentid[body]] += subtree[body]
        np.testing.assert_allclose(model.body_subtreemass, subtree, rtol=1e-12)
        # every constant equals a clean recomputation from the task's parameters
        fresh = original_model(name)
        fresh.opt.timestep = model.opt.timestep
        fresh.opt.integrator = model.opt.integrator
        for param in MULTIPLIER_BASE:
            getattr(fresh, param)[:] = env.tasks[task_idx][param]
        mujoco.mj_setConst(fresh, mujoco.MjData(fresh))
        for derived in ["body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0"]:
            np.testing.assert_allclose(
                getattr(model, derived), getattr(fresh, derived), rtol=1e-10, err_msg=derived
            )


@pytest.mark.parametrize("name", NAMES)
def test_tasks_change_dynamics_and_switching_back_is_exact(name):
    env = make(name, n_tasks=2)
    actions = random_actions(env.model, 30, seed=7)
    first = rollout(env, 0, seed=3, actions=actions)
    other = rollout(env, 1, seed=3, actions=actions)
    again = rollout(env, 0, seed=3, actions=actions)
    # the same start state, then different physics
    np.testing.assert_array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[3], other[3])
    assert not np.array_equal(first[1], other[1])
    # back to task 0: bit for bit the first run
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # and what a fresh env gives in task 0
    fresh = rollout(make(name, n_tasks=2), 0, seed=3, actions=actions)
    for a, b in zip(first, fresh, strict=True):
        np.testing.assert_array_equal(a, b)

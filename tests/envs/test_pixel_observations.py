"""Pixel observations: the image shows the agent and never the task, frame stacks shift by one
frame a step (the first frame repeated at a reset), grayscale is the BT.601 luma, and the
drawn point robot sits where it is, to a fraction of a pixel."""

import contextlib

import mujoco
import numpy as np
import pytest
from PIL import Image

from rlkit.envs.pixels import VIEW, PixelObservations, draw_point_robot, is_mujoco_family
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import make_env

CONFIGS = {
    "point-robot": "configs/point-robot.json",
    "sparse-point-robot": "configs/sparse-point-robot.json",
    "cheetah-vel": "configs/cheetah-vel.json",
    "ant-goal": "configs/ant-goal.json",
    "metaworld-ml1": "configs/metaworld-ml1-reach.json",  # env_params env_name reach-v3
}


@contextlib.contextmanager
def pixel_env(family, size=32, frame_stack=3, grayscale=False):
    """The launcher's env of `family` observed as frame stacks, closed (its GL context freed)
    at the end."""
    variant = load_config(CONFIGS[family])
    for expression in (
        "pixels.enabled=true",
        f"pixels.size={size}",
        f"pixels.frame_stack={frame_stack}",
        f"pixels.grayscale={str(grayscale).lower()}",
    ):
        apply_override(variant, expression)
    env = make_env(variant)
    assert isinstance(env, PixelObservations)
    try:
        yield env
    finally:
        env.close()


# The whole simulator state: joints, velocities and, for Meta-World's arm, the mocap body that
# drags the hand; never the task, which lives in the model (Meta-World's goal site) or the env.
STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def get_state(env):
    family = env.unwrapped
    if not is_mujoco_family(env):
        return family._state.copy()
    state = np.empty(mujoco.mj_stateSize(family.model, STATE))
    mujoco.mj_getState(family.model, family.data, state, STATE)
    return state


def set_state(env, state):
    family = env.unwrapped
    if not is_mujoco_family(env):
        family._state = state.copy()
        return
    mujoco.mj_setState(family.model, family.data, state, STATE)
    mujoco.mj_forward(family.model, family.data)


def goal_site(env):
    """Where Meta-World's goal site is: the mark the pixels must not show."""
    model = env.unwrapped.model
    return model.site_pos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "goal")].copy()


# ------------------------------------------------------------------ the task is not shown


@pytest.mark.parametrize("family", list(CONFIGS))
def test_two_tasks_in_the_same_state_give_the_same_frame(family):
    with pixel_env(family, size=48) as env:
        rng = np.random.default_rng(0)
        action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
        tasks = (0, 1)
        frames, moved, rewards, goals = {}, {}, {}, {}
        env.reset_task(tasks[0])
        env.reset(seed=0)
        for _ in range(3):  # a state away from the start, the same for both tasks
            env.step(rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32))
        state = get_state(env)
        for task in tasks:
            env.reset_task(task)
            if family == "metaworld-ml1":
                goals[task] = goal_site(env)
            set_state(env, state)
            frames[task] = env.frame()
            # the tasks differ where it matters: the same step is rewarded differently
            _, rewards[task], *_ = env.step(action)
            for _ in range(2):
                env.step(action)
            moved[task] = env.frame()
        assert rewards[0] != rewards[1]
        if family == "metaworld-ml1":  # the goals differ: their marks would show
            assert np.linalg.norm(goals[0] - goals[1]) > 0.05
        np.testing.assert_array_equal(frames[0], frames[1])
        np.testing.assert_array_equal(moved[0], moved[1])
        # not a blank picture: another state is another frame
        assert np.abs(moved[0].astype(int) - frames[0]).sum() > 0


# ------------------------------------------------------------------ frame stacks


@pytest.mark.parametrize("family", ["point-robot", "cheetah-vel"])
def test_stacks_shift_by_one_frame_per_step_and_repeat_the_first_at_reset(family):
    size, k = 32, 3
    with pixel_env(family, size=size, frame_stack=k) as env:
        space = env.observation_space
        assert space.shape == (k * 3, size, size) and space.dtype == np.uint8
        assert np.all(space.low == 0) and np.all(space.high == 255)
        rng = np.random.default_rng(1)
        for episode in range(2):
            obs, _ = env.reset(seed=episode)
            assert space.contains(obs)
            first = env.frame()
            assert first.shape == (3, size, size) and first.dtype == np.uint8
            for j in range(k):
                np.testing.assert_array_equal(obs[3 * j : 3 * (j + 1)], first)
            newest = [first]
            for _ in range(4):
                action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
                next_obs, *_ = env.step(action)
                assert space.contains(next_obs)
                newest.append(env.frame())
                assert not np.array_equal(newest[-1], newest[-2])  # the steps show
                np.testing.assert_array_equal(next_obs[:-3], obs[3:])  # shifted by one frame
                np.testing.assert_array_equal(next_obs[-3:], newest[-1])  # newest last
                obs = next_obs
            # after k steps nothing of the reset is left: the last k frames, oldest first
            np.testing.assert_array_equal(obs, np.concatenate(newest[-k:]))


@pytest.mark.parametrize("family", ["point-robot", "cheetah-vel"])
def test_grayscale_is_one_channel_of_bt601_luma_per_frame(family):
    size, k = 32, 2
    with pixel_env(family, size=size, frame_stack=k, grayscale=True) as gray:
        # a colour view of the same env, the same state
        colour = PixelObservations(gray.env, size, 1)
        try:
            assert gray.observation_space.shape == (k, size, size)
            assert gray.observation_space.dtype == np.uint8
            obs, _ = gray.reset(seed=0)
            action = np.full(gray.action_space.shape, 0.7, dtype=np.float32)
            obs, *_ = gray.step(action)
            rgb = colour.frame().transpose(1, 2, 0)
            assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 5  # colours to weigh
            luma = np.asarray(Image.fromarray(rgb).convert("L"))  # ITU-R BT.601, as documented
            assert obs.shape == (k, size, size) and obs.dtype == np.uint8
            np.testing.assert_array_equal(obs[-1], luma)
            np.testing.assert_array_equal(gray.frame(), luma[None])
        finally:
            colour.close()  # its renderer; closing the family twice is harmless


# ------------------------------------------------------------------ the drawn point robot


def robot_centre(image, size):
    """The intensity-weighted centroid (x, y, y up) of what the robot adds to the empty arena."""
    empty = draw_point_robot(np.array([100.0, 100.0]), size)  # the robot far out of view
    weight = np.abs(image.astype(float) - empty).sum(axis=-1)
    centres = (np.arange(size) + 0.5) / size * 2 * VIEW - VIEW
    x = (weight.sum(axis=0) * centres).sum() / weight.sum()
    y = (weight.sum(axis=1) * centres[::-1]).sum() / weight.sum()
    return np.array([x, y])


def test_the_drawn_robot_is_centred_on_its_position_to_a_fraction_of_a_pixel():
    size = 64
    pixel = 2 * VIEW / size
    rng = np.random.default_rng(2)
    positions = rng.uniform(-0.8, 0.8, size=(20, 2))
    for position in positions:
        image = draw_point_robot(position, size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        np.testing.assert_allclose(robot_centre(image, size), position, atol=0.1 * pixel)
    # y up: a robot above the centre is in the top half of the picture
    above = draw_point_robot(np.array([0.0, 0.5]), size)
    empty = draw_point_robot(np.array([100.0, 100.0]), size)
    rows = np.nonzero(np.any(above != empty, axis=-1))[0]
    assert rows.max() < size // 2
    # a quarter of a pixel to the right: another picture, its centre a quarter pixel on
    start = np.array([0.2, -0.3])
    previous = draw_point_robot(start, size)
    for quarter in range(1, 5):
        position = start + [quarter * pixel / 4, 0.0]
        image = draw_point_robot(position, size)
        assert not np.array_equal(image, previous)
        shift = robot_centre(image, size) - robot_centre(draw_point_robot(start, size), size)
        np.testing.assert_allclose(shift, [quarter * pixel / 4, 0.0], atol=0.1 * pixel)
        previous = image

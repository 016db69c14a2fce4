"""Offscreen rendering: the GL backend choice, captioned MuJoCo videos and point-robot pictures."""

import os
from itertools import pairwise

import imageio.v3 as iio
import numpy as np
import pytest

from rlkit.data_management.path import Path as Trajectory
from rlkit.envs import ENVS
from rlkit.envs.wrappers import NormalizedBoxEnv
from rlkit.render import (
    FrameRecorder,
    RenderError,
    choose_gl_backend,
    draw_point_robot_picture,
    trajectory_caption,
    write_mp4,
)

# ------------------------------------------------------------------ GL backend


def test_choose_gl_backend_without_mujoco_gl_picks_and_exports_a_working_one(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "")  # unset for mujoco too; restored after the test
    backend = choose_gl_backend()
    assert backend in ("egl", "osmesa")
    assert os.environ["MUJOCO_GL"] == backend


def test_unknown_mujoco_gl_is_honoured_and_the_error_names_both_packages(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    with pytest.raises(RenderError) as raised:
        choose_gl_backend()
    message = str(raised.value)
    assert "\n" not in message
    assert "MUJOCO_GL=no-such-backend" in message
    assert "libegl1 libgl1-mesa-dri" in message and "libosmesa6" in message


def test_failing_requested_backend_names_its_package(monkeypatch):
    # mujoco.osmesa refuses to load when PyOpenGL is told to use another platform: the same
    # import failure as a machine without libOSMesa, without touching this process's GL.
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    with pytest.raises(RenderError, match="libosmesa6") as raised:
        choose_gl_backend()
    assert "libegl1" not in str(raised.value)


def test_no_working_backend_raises_naming_both_packages_and_exports_nothing(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "glx")  # neither mujoco.egl nor mujoco.osmesa loads
    with pytest.raises(RenderError) as raised:
        choose_gl_backend()
    message = str(raised.value)
    assert "egl:" in message and "osmesa:" in message
    assert "libegl1 libgl1-mesa-dri" in message and "libosmesa6" in message
    assert os.environ["MUJOCO_GL"] == ""


# ------------------------------------------------------------------ MuJoCo video


def test_frame_recorder_refuses_a_point_robot():
    with pytest.raises(TypeError, match="draw_point_robot_picture"):
        FrameRecorder(NormalizedBoxEnv(ENVS["point-robot"]()))


def test_cheetah_video_round_trips_with_captions(tmp_path):
    # not multiples of 16: imageio's ffmpeg writer would rescale such frames by default
    width, height, n_frames = 330, 246, 12
    env = NormalizedBoxEnv(ENVS["cheetah-dir"]())
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    with FrameRecorder(env, width=width, height=height) as recorder:
        assert recorder.fps == round(1 / env.unwrapped.dt) == 20
        for step in range(n_frames):
            recorder.capture(trajectory_caption(3, step))
            env.step(rng.uniform(-1.0, 1.0, size=env.action_space.shape))
        plain = recorder.render()
        recorder.capture(trajectory_caption(3, n_frames))

    # the caption: a dark box with white text in the top-left corner, nothing else changed
    captioned = recorder.frames[-1]
    changed = np.any(captioned != plain, axis=-1)
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 300
    assert rows.max() < 40 and cols.max() < width // 2
    assert np.all(captioned[changed] == 255, axis=-1).sum() > 30  # white text pixels

    frames = recorder.frames
    # a generator, as the simulation passes one task's frames after another
    stream = (frame for frame in frames)
    video = write_mp4(stream, tmp_path / "videos" / "cheetah.mp4", fps=recorder.fps)
    meta = iio.immeta(video, plugin="FFMPEG")
    decoded = iio.imread(video, plugin="FFMPEG", index=None)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 20
    assert decoded.shape == (n_frames + 1, height, width, 3)
    for frame, original in zip(decoded, frames, strict=True):
        assert frame.std() > 20  # floor, sky and cheetah, not one colour
        assert np.abs(frame.astype(float) - original).mean() < 8  # lossy, but the same picture
    # the cheetah moves (under a camera that follows it): consecutive frames differ
    differences = [np.abs(b.astype(float) - a).mean() for a, b in pairwise(decoded)]
    assert min(differences[: n_frames - 1]) > 0.5


def test_metaworld_frames_are_upright_and_follow_class_switches():
    env = NormalizedBoxEnv(ENVS["metaworld-ml10"]())
    family = env.unwrapped
    door = next(i for i in range(20) if family.class_of(i) == "door-open-v3")
    family.reset_task(0)
    assert family.class_of(0) == "reach-v3"
    with FrameRecorder(env) as recorder:
        assert recorder.fps == round(1 / family.dt) == 80
        first = recorder.render()
        for _ in range(10):
            env.step(np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32))
        moved = recorder.render()
        family.reset_task(door)
        switched = recorder.render()
        assert recorder._model is family.model  # the renderer was made for the new model
    with FrameRecorder(env) as fresh:
        assert np.array_equal(switched, fresh.render())

    # the corner camera hangs upside down; turned upright the sky (plain grey) is top left,
    # the table's legs and the floor bottom left
    def spread(region):  # per colour channel
        return region.reshape(-1, 3).std(axis=0).max()

    assert spread(first[:20, :60]) < 1 and spread(first[-40:, :60]) > 20
    assert np.abs(moved.astype(float) - first).mean() > 0.5  # the arm moved
    assert np.abs(switched.astype(float) - first).mean() > 2  # the door is in the picture


def test_write_mp4_refuses_odd_sizes_and_no_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4([np.zeros((241, 320, 3), np.uint8)], tmp_path / "odd.mp4", fps=20)
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(iter([]), tmp_path / "empty.mp4", fps=20)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ point robots


def _rollout(env, goal, n_steps, rng, noise):
    """A trajectory that heads for `goal` with noisy actions, from the env's start."""
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(n_steps):
        action = np.clip(goal - obs + noise * rng.standard_normal(2), -0.1, 0.1)
        next_obs, reward, terminated, _, info = env.step(action)
        row = (obs, action, reward, info["sparse_reward"], next_obs, float(terminated), 0.0)
        rows.append(row)
        obs = next_obs
    columns = [np.array(column) for column in zip(*rows, strict=True)]
    return Trajectory(*columns)


def test_sparse_point_robot_picture(tmp_path):
    env = ENVS["sparse-point-robot"](randomize_tasks=True, n_tasks=5)
    env.reset_task(2)
    goal = env.goals[2]
    rng = np.random.default_rng(0)
    exploration = [_rollout(env, env.goals[0], 15, rng, noise=0.1) for _ in range(2)]
    posterior = [_rollout(env, goal, 15, rng, noise=0.02)]

    png = draw_point_robot_picture(
        env.goals, goal, env.goal_radius, exploration, posterior, tmp_path / "task2.png", "task 2"
    )
    picture = iio.imread(png)[..., :3].astype(int)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50

    def pixels_of(rgb):
        return int((np.abs(picture - rgb).sum(axis=-1) < 30).sum())

    assert pixels_of((31, 119, 180)) > 100  # exploration lines, tab:blue
    assert pixels_of((255, 127, 14)) > 60  # posterior line, tab:orange
    assert pixels_of((214, 39, 40)) > 100  # the task's goal and its circle, tab:red

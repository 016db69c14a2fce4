"""Pixel observations: any task family observed as a stack of its last frames.

`PixelObservations` wraps a family's env (after the launcher's action rescaling) and replaces
each observation with the last `frame_stack` frames, uint8, channels first and the newest last:
(frame_stack * 3, size, size), or (frame_stack, size, size) in grayscale. At a reset the stack
holds the first frame `frame_stack` times (DrQ's convention). Rewards, `sparse_reward` and
Meta-World's `success` still come from the simulator state, through the wrapped env's `step`.

The image shows the agent, never the task: two tasks at the same simulator state give the same
frame. The MuJoCo families are rendered offscreen (EGL or OSMesa, as `--video`) by the camera
the videos use (rlkit.render.FrameRecorder: one following the body, Meta-World's corner camera)
or the model's camera named by `camera`, with every site hidden (Meta-World marks its goals
with sites). The point robots are drawn with numpy (`draw_point_robot`): the robot as a soft
disc, whose sub-pixel position the edge's grey levels carry, and the frame of the square
[-1, 1]^2 in which the goals lie, on a view of [-1.5, 1.5]^2; the goal is never drawn. Hopper
and walker with random physics look alike across tasks by construction (their tasks change
masses, damping and friction, not the shapes), as their state observations do.
"""

import gymnasium as gym
import mujoco
import numpy as np

from rlkit.envs.point_robot import PointEnv
from rlkit.envs.wrappers import TaskWrapper


class PixelError(ValueError):
    """A family cannot be observed as asked (a camera it does not have); one line."""


VIEW = 1.5  # the point robot's image spans [-VIEW, VIEW]^2
ROBOT_RADIUS = 0.1
BACKGROUND = np.array([20, 20, 20], dtype=np.float32)
ARENA = np.array([110, 110, 110], dtype=np.float32)
ROBOT = np.array([255, 190, 40], dtype=np.float32)


def draw_point_robot(position: np.ndarray, size: int) -> np.ndarray:
    """The point robot at `position` (x, y) as a (size, size, 3) uint8 picture, y up."""
    centers = (np.arange(size) + 0.5) / size * 2 * VIEW - VIEW  # pixel centres
    x = centers[None, :]
    y = centers[::-1, None]
    pixel = 2 * VIEW / size
    # the square's outline, a pixel wide
    edge = np.maximum(np.abs(x), np.abs(y))
    arena = np.clip(1 - np.abs(edge - 1.0) / pixel, 0, 1)
    # the robot, its edge blurred over a pixel
    distance = np.hypot(x - position[0], y - position[1])
    robot = np.clip((ROBOT_RADIUS - distance) / pixel + 0.5, 0, 1)
    image = BACKGROUND + arena[..., None] * (ARENA - BACKGROUND)
    image = image + robot[..., None] * (ROBOT - image)
    return np.rint(image).astype(np.uint8)


class _MujocoCamera:
    """Frames of a MuJoCo family's current state, sites hidden."""

    def __init__(self, env: gym.Env, size: int, camera: str | None):
        from rlkit.render import FrameRecorder

        try:
            self._recorder = FrameRecorder(env, width=size, height=size, camera=camera, sites=False)
        except ValueError as err:
            raise PixelError(f"pixels.camera: {err}") from None

    def __call__(self) -> np.ndarray:
        return self._recorder.render()

    def close(self) -> None:
        self._recorder.close()


class _PointCamera:
    def __init__(self, env: gym.Env, size: int):
        self._env = env.unwrapped
        self._size = size

    def __call__(self) -> np.ndarray:
        return draw_point_robot(self._env._state, self._size)

    def close(self) -> None:
        pass


def is_mujoco_family(env: gym.Env) -> bool:
    return isinstance(getattr(env.unwrapped, "model", None), mujoco.MjModel)


class PixelObservations(TaskWrapper):
    """Observations as the last `frame_stack` frames (uint8, channels first, newest last)."""

    def __init__(
        self,
        env: gym.Env,
        size: int,
        frame_stack: int,
        grayscale: bool = False,
        camera: str | None = None,
    ):
        super().__init__(env)
        if isinstance(env.unwrapped, PointEnv):
            if camera is not None:
                raise PixelError("pixels.camera: the point robots are drawn, not filmed")
            self._camera = _PointCamera(env, size)
        elif is_mujoco_family(env):
            self._camera = _MujocoCamera(env, size, camera)
        else:
            raise PixelError(f"pixels.enabled: {type(env.unwrapped).__name__} has no images")
        self.grayscale = grayscale
        self.frame_stack = frame_stack
        self.frame_channels = 1 if grayscale else 3
        shape = (frame_stack * self.frame_channels, size, size)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self._frames: list[np.ndarray] = []

    def reset_task(self, idx: int) -> None:
        super().reset_task(idx)  # which resets the family
        self._frames = [self.frame()] * self.frame_stack

    def frame(self) -> np.ndarray:
        """The current state's frame, (channels, size, size) uint8."""
        rgb = self._camera()
        if self.grayscale:  # ITU-R BT.601 luma, as PIL's convert("L")
            luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            return np.rint(luma).astype(np.uint8)[None]
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))

    def newest_frame(self) -> np.ndarray:
        """The newest frame of the observation as a (size, size, 3) uint8 picture."""
        frame = self._frames[-1].transpose(1, 2, 0)
        return np.repeat(frame, 3, axis=2) if self.grayscale else frame

    def _observation(self) -> np.ndarray:
        return np.concatenate(self._frames, axis=0)

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        self._frames = [self.frame()] * self.frame_stack
        return self._observation(), info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        self._frames = self._frames[1:] + [self.frame()]
        return self._observation(), reward, terminated, truncated, info

    def close(self) -> None:
        self._camera.close()
        super().close()

"""Offscreen pictures of trajectories: MP4 videos of the MuJoCo families, PNGs of the point robots.

This module owns the choice of MuJoCo's OpenGL backend (`choose_gl_backend`: the MUJOCO_GL
environment variable, or the first of EGL and OSMesa that works here), the video frames of a
MuJoCo rollout (`FrameRecorder`, captioned with `trajectory_caption`), their MP4 encoding
(`write_mp4`) and the 2-D picture of point-robot trajectories (`draw_point_robot_picture`).
"""

import functools
import importlib
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import gymnasium as gym
import imageio.v2
import mujoco
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rlkit.data_management.path import Path as Trajectory

# Debian packages that provide each headless backend's libraries.
GL_BACKEND_PACKAGES = {"egl": "libegl1 libgl1-mesa-dri", "osmesa": "libosmesa6"}

# Creates a GL context and draws one frame: run in a child process, so that a backend that
# fails (or crashes) cannot leave this process with a half-initialised PyOpenGL platform.
_PROBE = (
    "import mujoco\n"
    "model = mujoco.MjModel.from_xml_string('<mujoco/>')\n"
    "renderer = mujoco.Renderer(model, 16, 16)\n"
    "renderer.update_scene(mujoco.MjData(model))\n"
    "renderer.render()\n"
    "renderer.close()\n"
)
_PROBE_TIMEOUT_S = 120

# The backend this process's mujoco renders with, once `FrameRecorder` has chosen one.
_backend_in_use: str | None = None


class RenderError(RuntimeError):
    """No OpenGL backend can render offscreen; the message says what to install."""


def _probe_failure(backend: str) -> str | None:
    """None if MuJoCo renders offscreen with MUJOCO_GL=`backend`, else why not (one line)."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env={**os.environ, "MUJOCO_GL": backend},
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"no frame within {_PROBE_TIMEOUT_S} s"
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit status {result.returncode}")[:200]


def choose_gl_backend() -> str:
    """The MUJOCO_GL backend for offscreen rendering, checked by drawing a frame in a child process.

    A non-empty MUJOCO_GL is honoured (and only checked); otherwise EGL, then OSMesa, and the
    first that works is written to os.environ['MUJOCO_GL']. Raises RenderError, naming the
    Debian packages to install, when the backend does not work.
    """
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested:
        reason = _probe_failure(requested)
        if reason is None:
            return requested
        if requested in GL_BACKEND_PACKAGES:
            remedy = f"install the Debian packages {GL_BACKEND_PACKAGES[requested]}"
        else:
            remedy = (
                f"set MUJOCO_GL=egl (Debian packages {GL_BACKEND_PACKAGES['egl']}) or "
                f"MUJOCO_GL=osmesa (Debian package {GL_BACKEND_PACKAGES['osmesa']})"
            )
        raise RenderError(f"MuJoCo cannot render with MUJOCO_GL={requested} ({reason}); {remedy}")
    reasons = []
    for backend in GL_BACKEND_PACKAGES:
        reason = _probe_failure(backend)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        reasons.append(f"{backend}: {reason}")
    raise RenderError(
        f"MuJoCo finds no offscreen OpenGL backend ({'; '.join(reasons)}); install the Debian "
        f"packages {GL_BACKEND_PACKAGES['egl']} (EGL) or {GL_BACKEND_PACKAGES['osmesa']} (OSMesa)"
    )


def _use_gl_backend() -> None:
    """Choose the backend once per process and make mujoco.Renderer use it.

    mujoco reads MUJOCO_GL when `mujoco.gl_context` is imported, which `import mujoco` does:
    the envs import mujoco before any backend is chosen, so the module is reloaded when its
    context class is not the chosen backend's (mujoco.Renderer looks it up at construction).
    """
    global _backend_in_use
    if _backend_in_use is not None:
        return
    backend = choose_gl_backend()
    context_class = getattr(mujoco.gl_context, "GLContext", None)
    if getattr(context_class, "__module__", None) != f"mujoco.{backend}":
        importlib.reload(mujoco.gl_context)
    _backend_in_use = backend


def trajectory_caption(task_idx: int, trajectory_idx: int) -> str:
    """The caption of a video frame: which task and which of its trajectories."""
    return f"task {task_idx}  trajectory {trajectory_idx}"


@functools.cache
def _caption_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def draw_caption(frame: np.ndarray, caption: str) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 frame with `caption` in white on a dark box, top left."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font = _caption_font()
    left, top, right, bottom = draw.textbbox((6, 4), caption, font=font)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(20, 20, 20))
    draw.text((6, 4), caption, fill=(255, 255, 255), font=font)
    return np.array(image)


def _body_size(model: mujoco.MjModel) -> float:
    """The largest side of the box around the robot's geoms (those not on the world body) at
    qpos0: MuJoCo's `model.stat.extent` also counts the floor, many times the robot's size."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    robot = model.geom_bodyid > 0
    centers, radii = data.geom_xpos[robot], model.geom_rbound[robot, None]
    return float(((centers + radii).max(axis=0) - (centers - radii).min(axis=0)).max())


class FrameRecorder:
    """Renders a MuJoCo task env's current state into captioned video frames.

    Call `capture(caption)` after reset and after every step of a rollout; `frames` holds the
    (height, width, 3) uint8 frames, `fps` the env's real-time rate (round(1 / env.dt)) for
    `write_mp4`. A family that names a camera of its model (`camera_name`: Meta-World's arm
    and table) is filmed by it, turned upright when the camera hangs upside down
    (`camera_upside_down`, as Meta-World's corner cameras do); otherwise a camera tracks
    body 1 (the torso of every other MuJoCo family here) from the side, so the walker stays
    in view. `camera` names another camera of the model instead; `sites=False` hides every
    site (pixel observations: Meta-World marks goals with sites). A family whose model
    changes (a Meta-World slot switching class) is followed: the renderer is made again for
    the new model. Call `close()` (or use `with`) to free the GL context.
    """

    def __init__(
        self,
        env: gym.Env,
        width: int = 320,
        height: int = 240,
        camera: str | None = None,
        sites: bool = True,
    ):
        mujoco_env = env.unwrapped
        if not isinstance(getattr(mujoco_env, "model", None), mujoco.MjModel):
            raise TypeError(
                f"{type(mujoco_env).__name__} is not a MuJoCo env; "
                "point robots are drawn with draw_point_robot_picture"
            )
        _use_gl_backend()
        self._env = mujoco_env
        self._camera_name = camera
        self._option = mujoco.MjvOption()
        if not sites:
            self._option.sitegroup[:] = 0
        self._size = (height, width)
        self.fps = max(1, round(1.0 / mujoco_env.dt))
        self.frames: list[np.ndarray] = []
        self._renderer = None
        self._bind(mujoco_env.model)

    def _bind(self, model: mujoco.MjModel) -> None:
        """A renderer and camera for `model`."""
        if self._renderer is not None:
            self._renderer.close()
        self._model = model
        self._renderer = mujoco.Renderer(model, *self._size)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        name = self._camera_name or getattr(self._env, "camera_name", None)
        if name is not None:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                cameras = [model.camera(i).name for i in range(model.ncam)]
                raise ValueError(
                    f"no camera '{name}' in the model (its cameras: {', '.join(cameras) or 'none'})"
                )
            self._camera = name
            return
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self._camera.trackbodyid = 1
        self._camera.distance = 2.5 * _body_size(model)
        self._camera.elevation = -20.0

    def render(self) -> np.ndarray:
        """The env's current state as a (height, width, 3) uint8 frame, without a caption."""
        if self._env.model is not self._model:
            self._bind(self._env.model)
        if isinstance(self._camera, mujoco.MjvCamera):
            # Centre on the body's centre of mass now: MuJoCo's tracking camera would only
            # glide towards it (a filter), lagging after a reset or a fast start.
            self._camera.lookat[:] = self._env.data.subtree_com[self._camera.trackbodyid]
        self._renderer.update_scene(self._env.data, self._camera, scene_option=self._option)
        frame = self._renderer.render()
        if getattr(self._env, "camera_upside_down", False):
            frame = frame[::-1, ::-1]  # a half turn: the camera's up axis points down
        return frame.copy()

    def capture(self, caption: str) -> None:
        """Render the current state, draw `caption` on it and append it to `frames`."""
        self.frames.append(draw_caption(self.render(), caption))

    def close(self) -> None:
        """Free the renderer's GL context; `frames` stay."""
        self._renderer.close()

    def __enter__(self) -> "FrameRecorder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def agent_view(env, height: int) -> np.ndarray:
    """What a pixel run's agent sees now (PixelObservations' newest frame), scaled up by
    repeating pixels to at most `height` rows and centred on a black (height, side, 3) frame
    of an even side; grayscale shown as grey."""
    frame = env.newest_frame()  # (size, size, 3) uint8
    scale = max(1, height // frame.shape[0])
    big = frame.repeat(scale, axis=0).repeat(scale, axis=1)[:height]
    side = big.shape[1] + big.shape[1] % 2
    out = np.zeros((height, side, 3), dtype=np.uint8)
    top = (height - big.shape[0]) // 2
    out[top : top + big.shape[0], : big.shape[1]] = big
    return out


def write_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int) -> Path:
    """Encode (H, W, 3) uint8 frames of one even size as H.264 / yuv420p MP4 (what players open).

    `frames` may be a generator: frames are encoded as they come, not held in memory.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    height, width = first.shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"H.264 video needs an even width and height, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.v2.get_writer(
        path,
        format="FFMPEG",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=2,  # keep the size: imageio would otherwise rescale to multiples of 16
    ) as writer:
        for frame in itertools.chain([first], frames):
            writer.append_data(frame)
    return path


def _trajectory_xy(trajectory: Trajectory) -> np.ndarray:
    """Positions visited: the observations and the last next_observation, (T + 1, 2)."""
    return np.concatenate([trajectory.observations, trajectory.next_observations[-1:]])[:, :2]


def draw_point_robot_picture(
    goals: Sequence[np.ndarray],
    current_goal: np.ndarray,
    goal_radius: float | None,
    exploration_paths: Sequence[Trajectory],
    posterior_paths: Sequence[Trajectory],
    path_png: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """A PNG of one task's point-robot trajectories on the plane.

    All `goals` are grey crosses, `current_goal` (the task's) a red star; with `goal_radius`
    (sparse-point-robot) a circle of that radius surrounds each goal. Exploration trajectories
    are dashed blue, posterior ones solid orange.
    """
    goal_xy = np.asarray(goals, dtype=float).reshape(-1, 2)
    current_xy = np.asarray(current_goal, dtype=float).reshape(2)
    lines = [(xy, "exploration") for xy in map(_trajectory_xy, exploration_paths)]
    lines += [(xy, "posterior") for xy in map(_trajectory_xy, posterior_paths)]
    styles = {"exploration": ("tab:blue", "--"), "posterior": ("tab:orange", "-")}

    # imported here: matplotlib takes ~0.7 s to import, and every launch imports this module
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    if goal_radius is not None:
        for xy in goal_xy:
            axes.add_patch(Circle(xy, goal_radius, fill=False, color="0.6", linewidth=0.8))
        axes.add_patch(Circle(current_xy, goal_radius, fill=False, color="tab:red", linewidth=1.5))
    axes.scatter(*goal_xy.T, marker="x", color="0.5", label="goals", zorder=2)
    labelled = set()
    for xy, kind in lines:
        color, linestyle = styles[kind]
        label = None if kind in labelled else kind
        labelled.add(kind)
        axes.plot(*xy.T, color=color, linestyle=linestyle, linewidth=1.5, label=label, zorder=3)
    axes.scatter(*current_xy, marker="*", s=180, color="tab:red", label="task goal", zorder=4)

    points = np.concatenate([goal_xy, current_xy[None], *(xy for xy, _ in lines)])
    margin = 0.2 + (goal_radius or 0.0)
    low = min(-1.2, float(points.min()) - margin)
    high = max(1.2, float(points.max()) + margin)
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_aspect("equal")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    if title is not None:
        axes.set_title(title)
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path

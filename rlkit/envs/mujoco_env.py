"""Base class of the MuJoCo task families, on the official `mujoco` bindings.

Models are the XML files that the installed gymnasium package ships (so no model file is
copied into this project); a family changes in code the options where the reference differs.
"""

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

GYMNASIUM_ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"


def load_gymnasium_model(file_name: str) -> mujoco.MjModel:
    """An MjModel from one of gymnasium's MuJoCo asset files, e.g. 'half_cheetah.xml'."""
    path = GYMNASIUM_ASSETS / file_name
    if not path.is_file():
        raise FileNotFoundError(f"gymnasium ships no MuJoCo model {file_name} ({path})")
    return mujoco.MjModel.from_xml_path(str(path))


class MujocoTaskEnv(gym.Env):
    """A MuJoCo simulation stepped `frame_skip` times per action (dt = timestep * frame_skip).

    Subclasses implement `reset_model()` (set the initial state with noise from
    `self.np_random`, return the observation), `_get_obs()` and `step()`, and set
    `self.tasks`. Families whose reward or observation reads the contact forces set
    `uses_contact_forces`: `cfrc_ext` is then recomputed after every step
    (mj_rnePostConstraint), which MuJoCo otherwise leaves at zero.
    """

    metadata = {"render_modes": []}
    uses_contact_forces = False

    def __init__(self, model: mujoco.MjModel, frame_skip: int):
        self.model = model
        self.data = mujoco.MjData(model)
        self.frame_skip = frame_skip
        self.init_qpos = self.data.qpos.copy()
        self.init_qvel = self.data.qvel.copy()
        self._body_ids: dict[str, int] = {}
        low, high = model.actuator_ctrlrange.T.astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        mujoco.mj_forward(model, self.data)
        obs = self._get_obs()
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=obs.shape, dtype=obs.dtype)

    @property
    def dt(self) -> float:
        return self.model.opt.timestep * self.frame_skip

    def do_simulation(self, ctrl: np.ndarray) -> None:
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        if self.uses_contact_forces:
            mujoco.mj_rnePostConstraint(self.model, self.data)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        if self.uses_contact_forces:
            mujoco.mj_rnePostConstraint(self.model, self.data)

    def state_vector(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def body_position(self, name: str) -> np.ndarray:
        """A copy of the body frame's world position (mujoco-py's `get_body_com`)."""
        body = self._body_ids.get(name)
        if body is None:  # looked up once: a named accessor per step costs more than the lookup
            body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if body < 0:
                raise KeyError(f"the model has no body named {name!r}")
            self._body_ids[name] = body
        return self.data.xpos[body].copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        return self.reset_model(), {}

    def get_all_task_idx(self) -> range:
        return range(len(self.tasks))

    def reset_task(self, idx: int) -> None:
        """Make task `idx` the current one (`set_task`), then reset."""
        self.set_task(self.tasks[idx])
        self.reset()

    def set_task(self, task) -> None:
        raise NotImplementedError

    def reset_model(self) -> np.ndarray:
        raise NotImplementedError

    def _get_obs(self) -> np.ndarray:
        raise NotImplementedError

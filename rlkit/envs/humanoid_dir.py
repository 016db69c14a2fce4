"""`humanoid-dir`: the humanoid walks in a goal direction.

The model is gym's Humanoid (RK4, timestep 0.003), frame_skip 5. The observation is gym's
(qpos[2:], qvel, cinert, cvel, qfrc_actuator, cfrc_ext: 376 numbers).
"""

import numpy as np

from rlkit.envs import TASK_SEED, register_env
from rlkit.envs.mujoco_env import MujocoTaskEnv, load_gymnasium_model


@register_env("humanoid-dir")
class HumanoidDirEnv(MujocoTaskEnv):
    """Tasks are directions uniform in [0, 2 pi).

    reward = 0.25 * (direction . xy displacement of the centre of mass) / model timestep
    - 0.1 |ctrl|^2 - min(0.5e-6 |cfrc_ext|^2, 10) + 5; the episode ends when the torso height
    leaves [1, 2]. The displacement is divided by the model timestep, not by dt, as in the
    reference (a 5x larger velocity weight than it looks).
    """

    uses_contact_forces = True

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = True):
        directions = np.random.RandomState(TASK_SEED).uniform(0.0, 2.0 * np.pi, size=(n_tasks,))
        self.tasks = [{"goal": float(d)} for d in directions]
        self._goal = self.tasks[0]["goal"]
        super().__init__(load_gymnasium_model("humanoid.xml"), frame_skip=5)

    def set_task(self, task: dict) -> None:
        self._goal = task["goal"]

    def _get_obs(self) -> np.ndarray:
        data = self.data
        parts = [
            data.qpos[2:],
            data.qvel,
            data.cinert,
            data.cvel,
            data.qfrc_actuator,
            data.cfrc_ext,
        ]
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.uniform(-0.01, 0.01, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.uniform(-0.01, 0.01, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def mass_center(self) -> np.ndarray:
        mass = self.model.body_mass[:, None]
        return np.sum(mass * self.data.xipos, axis=0) / np.sum(mass)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        direction = np.array([np.cos(self._goal), np.sin(self._goal)])
        xy_before = self.mass_center()[:2]
        self.do_simulation(action)
        displacement = self.mass_center()[:2] - xy_before
        lin_vel_reward = 0.25 * float(displacement @ direction) / self.model.opt.timestep
        ctrl_cost = 0.1 * float(np.sum(np.square(self.data.ctrl)))
        impact_cost = min(0.5e-6 * float(np.sum(np.square(self.data.cfrc_ext))), 10.0)
        reward = lin_vel_reward - ctrl_cost - impact_cost + 5.0
        height = self.data.qpos[2]
        done = bool(height < 1.0 or height > 2.0)
        info = dict(
            reward_linvel=lin_vel_reward, reward_quadctrl=-ctrl_cost, reward_impact=-impact_cost
        )
        return self._get_obs(), reward, done, False, info

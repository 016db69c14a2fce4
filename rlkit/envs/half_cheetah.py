"""Half-cheetah task families: run in a direction (`cheetah-dir`) or at a speed (`cheetah-vel`).

The model is gym's HalfCheetah (timestep 0.01, frame_skip 5, dt 0.05). The observation is the
reference's: qpos[1:], qvel and the torso position (20 numbers); no episode ever ends.
"""

import numpy as np

from rlkit.envs import TASK_SEED, register_env
from rlkit.envs.mujoco_env import MujocoTaskEnv, load_gymnasium_model

CONTROL_COST = 0.05  # the reference's 0.5 * 1e-1


class HalfCheetahEnv(MujocoTaskEnv):
    """HalfCheetah with reset noise qpos + U(-0.1, 0.1), qvel + 0.1 N(0, 1)."""

    def __init__(self):
        super().__init__(load_gymnasium_model("half_cheetah.xml"), frame_skip=5)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate(
            [self.data.qpos[1:], self.data.qvel, self.body_position("torso")]
        ).astype(np.float32)

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.uniform(-0.1, 0.1, size=self.model.nq)
        qvel = self.init_qvel + 0.1 * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _forward_velocity(self, action: np.ndarray) -> float:
        """Simulate one action; the root's x displacement over dt."""
        x_before = self.data.qpos[0]
        self.do_simulation(action)
        return (self.data.qpos[0] - x_before) / self.dt


@register_env("cheetah-dir")
class HalfCheetahDirEnv(HalfCheetahEnv):
    """Two tasks: run backward (direction -1) or forward (+1).

    reward = direction * forward velocity - 0.05 |a|^2.
    """

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False):
        if n_tasks != 2:
            raise ValueError(
                f"cheetah-dir has exactly 2 tasks (directions -1 and +1), not {n_tasks}"
            )
        self.tasks = [{"direction": -1.0}, {"direction": 1.0}]
        self._goal_dir = self.tasks[0]["direction"]
        super().__init__()

    def set_task(self, task: dict) -> None:
        self._goal_dir = task["direction"]

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        velocity = self._forward_velocity(action)
        forward_reward = self._goal_dir * velocity
        ctrl_cost = CONTROL_COST * float(np.sum(np.square(action)))
        info = dict(reward_forward=forward_reward, reward_ctrl=-ctrl_cost)
        return self._get_obs(), forward_reward - ctrl_cost, False, False, info


@register_env("cheetah-vel")
class HalfCheetahVelEnv(HalfCheetahEnv):
    """Goal velocities uniform in [0, 3], drawn as the reference did (seed 1337).

    reward = -|forward velocity - goal velocity| - 0.05 |a|^2.
    """

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = True):
        velocities = np.random.RandomState(TASK_SEED).uniform(0.0, 3.0, size=(n_tasks,))
        self.tasks = [{"velocity": float(v)} for v in velocities]
        self._goal_vel = self.tasks[0]["velocity"]
        super().__init__()

    def set_task(self, task: dict) -> None:
        self._goal_vel = task["velocity"]

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        velocity = self._forward_velocity(action)
        forward_reward = -abs(velocity - self._goal_vel)
        ctrl_cost = CONTROL_COST * float(np.sum(np.square(action)))
        info = dict(reward_forward=forward_reward, reward_ctrl=-ctrl_cost, velocity=velocity)
        return self._get_obs(), forward_reward - ctrl_cost, False, False, info

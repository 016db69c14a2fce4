"""Ant task families: walk in a direction (`ant-dir`) or to a goal position (`ant-goal`).

The model is the reference's ant: gym's Ant (RK4, timestep 0.01, gear 150), frame_skip 5
(dt 0.05). Both families charge a contact cost on the clipped external contact forces, so
`cfrc_ext` is recomputed after every step.
"""

import numpy as np

from rlkit.envs import TASK_SEED, register_env
from rlkit.envs.mujoco_env import MujocoTaskEnv, load_gymnasium_model

CONTACT_COST = 0.5e-3


class AntEnv(MujocoTaskEnv):
    """Ant with reset noise qpos + U(-0.1, 0.1), qvel + 0.1 N(0, 1)."""

    uses_contact_forces = True

    def __init__(self):
        super().__init__(load_gymnasium_model("ant.xml"), frame_skip=5)

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.uniform(-0.1, 0.1, size=self.model.nq)
        qvel = self.init_qvel + 0.1 * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def contact_cost(self) -> float:
        return CONTACT_COST * float(np.sum(np.square(np.clip(self.data.cfrc_ext, -1.0, 1.0))))


@register_env("ant-dir")
class AntDirEnv(AntEnv):
    """Tasks are walking directions (angles). obs = qpos[2:], qvel (27 numbers).

    reward = torso xy velocity . (cos g, sin g) - 0.5 |a|^2 - contact cost + 1; the episode
    ends when the state is not finite or the torso height leaves [0.2, 1.0].
    `forward_backward` gives the paper's Ant-Fwd-Back: the two directions 0 and pi; otherwise
    the angles are uniform in [0, 2 pi).
    """

    def __init__(
        self, n_tasks: int = 2, forward_backward: bool = False, randomize_tasks: bool = True
    ):
        if forward_backward:
            if n_tasks != 2:
                raise ValueError(f"ant-dir with forward_backward has 2 tasks, not {n_tasks}")
            directions = np.array([0.0, np.pi])
        else:
            directions = np.random.RandomState(TASK_SEED).uniform(0.0, 2.0 * np.pi, size=(n_tasks,))
        self.tasks = [{"goal": float(d)} for d in directions]
        self._goal = self.tasks[0]["goal"]
        super().__init__()

    def set_task(self, task: dict) -> None:
        self._goal = task["goal"]

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[2:], self.data.qvel]).astype(np.float32)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        direction = np.array([np.cos(self._goal), np.sin(self._goal)])
        xy_before = self.body_position("torso")[:2]
        self.do_simulation(action)
        xy_velocity = (self.body_position("torso")[:2] - xy_before) / self.dt
        forward_reward = float(xy_velocity @ direction)
        ctrl_cost = 0.5 * float(np.sum(np.square(action)))
        contact_cost = self.contact_cost()
        reward = forward_reward - ctrl_cost - contact_cost + 1.0
        state = self.state_vector()
        healthy = bool(np.isfinite(state).all() and 0.2 <= state[2] <= 1.0)
        info = dict(
            reward_forward=forward_reward,
            reward_ctrl=-ctrl_cost,
            reward_contact=-contact_cost,
            torso_velocity=xy_velocity,
        )
        return self._get_obs(), reward, not healthy, False, info


@register_env("ant-goal")
class AntGoalEnv(AntEnv):
    """Tasks are goal positions uniform in the disc of radius 3.

    obs = qpos, qvel, clip(cfrc_ext, -1, 1) (113 numbers); reward = -|torso xy - goal|_1
    - 0.1 |a|^2 - contact cost; never done.
    """

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = True):
        rng = np.random.RandomState(TASK_SEED)
        angles = rng.random_sample(n_tasks) * 2.0 * np.pi
        radii = 3.0 * rng.random_sample(n_tasks) ** 0.5
        goals = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1)
        self.tasks = [{"goal": goal} for goal in goals]
        self._goal = self.tasks[0]["goal"]
        super().__init__()

    def set_task(self, task: dict) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def _get_obs(self) -> np.ndarray:
        contact = np.clip(self.data.cfrc_ext, -1.0, 1.0).ravel()
        return np.concatenate([self.data.qpos, self.data.qvel, contact]).astype(np.float32)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        self.do_simulation(action)
        goal_reward = -float(np.sum(np.abs(self.body_position("torso")[:2] - self._goal)))
        ctrl_cost = 0.1 * float(np.sum(np.square(action)))
        contact_cost = self.contact_cost()
        reward = goal_reward - ctrl_cost - contact_cost
        info = dict(reward_goal=goal_reward, reward_ctrl=-ctrl_cost, reward_contact=-contact_cost)
        return self._get_obs(), reward, False, False, info

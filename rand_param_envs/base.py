"""A MuJoCo env whose tasks are physics parameters: masses, inertias, damping, friction."""

import mujoco
import numpy as np

from rlkit.envs.mujoco_env import MujocoTaskEnv, load_gymnasium_model

# Parameter name -> base of the log-uniform multiplier, in the reference's sampling order.
RAND_PARAMS = {
    "body_mass": 1.5,
    "body_inertia": 1.5,
    "dof_damping": 1.3,
    "geom_friction": 1.5,
}


class RandomEnv(MujocoTaskEnv):
    """Each task multiplies every element of the model's original parameter arrays by its own
    factor base^U(-log_scale_limit, log_scale_limit) (bases in `RAND_PARAMS`).

    The original arrays are copied at construction (the model's arrays are views that the tasks
    overwrite), so setting a task never compounds an earlier one, and the derived constants
    (subtree masses, inverse weights, ...) are recomputed with mj_setConst after each change.
    """

    def __init__(self, model: mujoco.MjModel, frame_skip: int, log_scale_limit: float = 3.0):
        super().__init__(model, frame_skip)
        self.log_scale_limit = log_scale_limit
        self.init_params = {name: getattr(model, name).copy() for name in RAND_PARAMS}

    def sample_tasks(self, n_tasks: int, rng: np.random.RandomState) -> list[dict]:
        """`n_tasks` parameter sets drawn from `rng` (the reference's calls, in its order)."""
        tasks = []
        for _ in range(n_tasks):
            task = {}
            for name, base in RAND_PARAMS.items():
                original = self.init_params[name]
                exponents = rng.uniform(-self.log_scale_limit, self.log_scale_limit, original.shape)
                task[name] = original * base**exponents
            tasks.append(task)
        return tasks

    def set_task(self, task: dict) -> None:
        for name, value in task.items():
            array = getattr(self.model, name)
            if array.shape != np.shape(value):
                raise ValueError(
                    f"{name} has shape {array.shape}, the task gives {np.shape(value)}"
                )
            array[:] = value
        mujoco.mj_setConst(self.model, self.data)
        self.cur_params = task

    def _get_obs(self) -> np.ndarray:
        """qpos[1:] and the velocities clipped to [-10, 10]."""
        qvel = np.clip(self.data.qvel, -10.0, 10.0)
        return np.concatenate([self.data.qpos[1:], qvel]).astype(np.float32)

    def reset_model(self) -> np.ndarray:
        noise = 0.005
        qpos = self.init_qpos + self.np_random.uniform(-noise, noise, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.uniform(-noise, noise, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _walk(self, action) -> tuple[np.ndarray, float, float, float]:
        """Simulate one action: (action, reward, height, angle) with
        reward = forward velocity + 1 (alive) - 1e-3 |a|^2."""
        action = np.asarray(action, dtype=np.float64)
        x_before = self.data.qpos[0]
        self.do_simulation(action)
        x_after, height, angle = self.data.qpos[0:3]
        reward = (x_after - x_before) / self.dt + 1.0 - 1e-3 * float(np.sum(np.square(action)))
        return action, reward, float(height), float(angle)


def load_rand_param_model(file_name: str) -> mujoco.MjModel:
    """gymnasium's model with the reference's options: RK4 and timestep 0.004."""
    model = load_gymnasium_model(file_name)
    model.opt.timestep = 0.004
    model.opt.integrator = mujoco.mjtIntegrator.mjINT_RK4
    return model

"""Watch and score a trained policy (sim_policy.py): load the run's context encoder and policy,
adapt online on every eval task as the evaluation protocol does, report the average return of
each trajectory index, and optionally render the trajectories (mp4, or PNG for the point
robots)."""

import re
from pathlib import Path

import mujoco
import numpy as np
import torch

from rlkit.core.evaluation import MetaWorldScores, metaworld_evaluation
from rlkit.data_management.path import Path as Trajectory
from rlkit.launchers.config import ConfigError, load_config, validate
from rlkit.launchers.launcher import build_trainer, load_network, make_env
from rlkit.samplers.online_adaptation import adapt_online, concat_paths, path_context

POINT_ROBOTS = ("point-robot", "sparse-point-robot")
NETWORKS = ("context_encoder", "policy")


def run_variant(config: str | None, run_dir: Path) -> dict:
    """The run's settings: CONFIG when given (the reference's form), else its variant.json."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    source = config if config is not None else str(run_dir / "variant.json")
    if config is None and not (run_dir / "variant.json").is_file():
        raise ConfigError(f"{run_dir}: no variant.json here; give the config: CONFIG RUN_DIR")
    variant = load_config(source)
    validate(variant, source)
    return variant


def snapshot_paths(
    run_dir: Path, itr: int | None, names: tuple[str, ...] = NETWORKS
) -> dict[str, Path]:
    """The state dicts of `names` to load: NAME_itr_K.pth for `itr`, else NAME.pth, else the
    latest numbered snapshot."""
    numbered = sorted(
        int(m.group(1))
        for p in run_dir.glob("policy_itr_*.pth")
        if (m := re.fullmatch(r"policy_itr_(\d+)\.pth", p.name))
    )
    if itr is not None:
        if itr not in numbered:
            kept = ", ".join(map(str, numbered)) or "none"
            raise ConfigError(f"{run_dir}: no snapshot of iteration {itr} (numbered ones: {kept})")
        suffix = f"_itr_{itr}"
    elif (run_dir / "policy.pth").is_file():
        suffix = ""
    elif numbered:
        suffix = f"_itr_{numbered[-1]}"
    else:
        raise ConfigError(
            f"{run_dir}: no policy.pth or policy_itr_K.pth snapshot (was snapshot_mode 'none'?)"
        )
    paths = {name: run_dir / f"{name}{suffix}.pth" for name in names}
    for path in paths.values():
        if not path.is_file():
            raise ConfigError(f"{run_dir}: {path.name} is missing")
    return paths


class TrainedRun:
    """A trained run's agent (on the CPU) with its task family: what `rlkit.load_run` returns
    and sim_policy.py uses.

    `env` is the family as the agent saw it (actions in [-1, 1]^d, frame stacks in a pixel
    run); `train_tasks` and `eval_tasks` are the run's task indices; `agent` the PEARLAgent.
    Infer the posterior from transitions (`posterior`), draw z from it (`sample_z`), act with
    a z (`act`), or run PEARL's online protocol on tasks (`run`: exploration trajectories from
    the prior, then the posterior of all the task's transitions so far).
    """

    def __init__(self, variant: dict, run_dir: Path, itr: int | None = None, seed: int = 0):
        self.variant = variant
        self.run_dir = Path(run_dir)
        self.env = make_env(variant)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        action_dim = int(np.prod(self.env.action_space.shape))
        self.agent = build_trainer(variant, obs_dim, action_dim).agent
        names = NETWORKS + (("trunk",) if variant["pixels"]["enabled"] else ())
        for name, path in snapshot_paths(self.run_dir, itr, names).items():
            load_network(getattr(self.agent, name), path, name)
        self.agent.eval()
        tasks = list(self.env.get_all_task_idx())
        self.train_tasks = tasks[: variant["n_train_tasks"]]
        self.eval_tasks = tasks[-variant["n_eval_tasks"] :]
        self.seed = seed
        torch.manual_seed(seed)
        self._envs = [self.env]

    @torch.no_grad()
    def posterior(self, transitions: Trajectory | list[Trajectory]) -> tuple[np.ndarray, ...]:
        """q(z|c) of one task's context: the mean and variance (latent,) given its
        transitions (one Path or several, e.g. from `run`); the rewards are the sparse ones
        when the run used sparse rewards, as in training."""
        paths = [transitions] if isinstance(transitions, Trajectory) else list(transitions)
        algo = self.variant["algo_params"]
        context, lengths = path_context(
            [concat_paths(paths)],
            algo["sparse_rewards"],
            algo["use_next_obs_in_context"],
            torch.device("cpu"),
        )
        mean, var, _ = self.agent.posterior(context, lengths=lengths)
        return mean[0].numpy(), var[0].numpy()

    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.agent.prior(1)
        return mean[0].numpy(), var[0].numpy()

    def sample_z(self, mean: np.ndarray, var: np.ndarray, deterministic: bool = False):
        """z ~ N(mean, var) (torch's generator, seeded by `seed`), or the mean itself."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32)[None]
        if deterministic:
            return mean_t[0].numpy()
        return self.agent.sample_z(mean_t, torch.as_tensor(var, dtype=torch.float32)[None])[
            0
        ].numpy()

    def act(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The policy's action (in [-1, 1]^d, what `env.step` takes) for one observation."""
        obs = np.asarray(obs)
        if obs.dtype != np.uint8:  # numbers are flattened, as in rollouts; frames stay bytes
            obs = obs.astype(np.float32).reshape(-1)
        obs_t = torch.from_numpy(np.ascontiguousarray(obs))[None]
        z_t = torch.as_tensor(z, dtype=torch.float32)[None]
        return self.agent.act(obs_t, z_t, deterministic=deterministic)[0].numpy()

    def run(
        self, tasks: list[int], num_trajs: int, deterministic: bool = False, on_step=None
    ) -> list[list[Trajectory]]:
        """PEARL's online protocol: num_trajs trajectories on each task, all tasks together,
        num_exp_traj_eval of them with z from the prior, then z from the posterior of the
        task's trajectories so far, re-inferred after each; `deterministic` acts with the
        policy's mean. `on_step(task, trajectory, env)` after every reset and step. Returns
        the trajectories (Path lists) per task."""
        while len(self._envs) < len(tasks):
            self._envs.append(make_env(self.variant))
        envs = self._envs[: len(tasks)]
        for env, task in zip(envs, tasks, strict=True):
            env.reset(seed=self.seed + task)
            env.reset_task(task)
        hook = None
        if on_step is not None:

            def hook(slot: int, trajectory: int, env) -> None:
                on_step(tasks[slot], trajectory, env)

        algo = self.variant["algo_params"]
        paths, _, _ = adapt_online(
            envs,
            self.agent,
            max_path_length=algo["max_path_length"],
            num_exp_traj=algo["num_exp_traj_eval"],
            sparse_rewards=algo["sparse_rewards"],
            use_next_obs=algo["use_next_obs_in_context"],
            max_trajs=num_trajs,
            deterministic=deterministic,
            on_step=hook,
        )
        return paths

    def returns(self, paths: list) -> np.ndarray:
        """(tasks, trajectories) returns; sparse when the run used sparse rewards."""
        sparse = self.variant["algo_params"]["sparse_rewards"]
        return np.array([[p.episode_return(sparse) for p in task_paths] for task_paths in paths])

    def successes(self, paths: list) -> np.ndarray | None:
        """(tasks, trajectories) 1.0 where the trajectory succeeded, for families that report
        success (Meta-World), else None."""
        if not getattr(self.env.unwrapped, "reports_success", False):
            return None
        return np.array([[float(p.succeeded()) for p in task_paths] for task_paths in paths])

    def scores(self, paths: list) -> tuple[np.ndarray, np.ndarray | None]:
        return self.returns(paths), self.successes(paths)

    def metaworld_eval(self, **settings) -> MetaWorldScores:
        """Meta-World's own evaluator (rlkit.core.evaluation.metaworld_evaluation) on the run's
        eval tasks, with the run's metaworld_eval_* settings; `settings` replaces some of them
        by their short names (num_evals, adaptation_episodes, evaluation_episodes,
        envs_per_class, max_episode_steps). ConfigError for a run that is not Meta-World's or
        learned from images."""
        family = self.env.unwrapped
        if not hasattr(family, "metaworld_task"):
            raise ConfigError(
                f"{self.run_dir}: Meta-World's evaluator needs a Meta-World run, this one's "
                f"env_name is '{self.variant['env_name']}'"
            )
        if self.variant["pixels"]["enabled"]:
            raise ConfigError(
                f"{self.run_dir}: Meta-World's evaluator gives the agent states, and this run "
                "learned from images"
            )
        algo = self.variant["algo_params"]
        names = ("num_evals", "adaptation_episodes", "evaluation_episodes", "envs_per_class")
        names += ("max_episode_steps",)
        chosen = {name: algo[f"metaworld_eval_{name}"] for name in names}
        chosen.update({name: value for name, value in settings.items() if value is not None})
        return metaworld_evaluation(
            self.agent,
            family,
            self.eval_tasks,
            **chosen,
            use_next_obs=algo["use_next_obs_in_context"],
            rng=np.random.default_rng(self.seed),
        )


def position_path(positions: list[np.ndarray]) -> Path:
    """A trajectory of a pixel point-robot run for its picture: the positions it visited
    (its observations are frames)."""
    xy = np.asarray(positions, dtype=np.float32)
    n = len(xy) - 1
    zeros = np.zeros(n, dtype=np.float32)
    return Trajectory(xy[:-1], np.zeros((n, 2), np.float32), zeros, zeros, xy[1:], zeros, zeros)


def write_outputs(
    simulator: TrainedRun, run_dir: Path, num_trajs: int, deterministic: bool, video: bool
) -> tuple[tuple[np.ndarray, np.ndarray | None], list[Path]]:
    """Simulate every eval task; with `video`, also render: the point robots' picture per task
    (RUN_DIR/sim_pictures/task{i}.png), or one mp4 of all tasks in order (RUN_DIR/sim_video.mp4)
    for the MuJoCo families. A pixel run's video shows the agent's own view beside the camera's
    (point robots: RUN_DIR/sim_agent_view.mp4 beside the pictures). Returns the (tasks,
    trajectories) returns and successes (TrainedRun.scores) and the files written."""
    tasks = simulator.eval_tasks
    if not video:
        return simulator.scores(simulator.run(tasks, num_trajs, deterministic)), []
    from rlkit import render  # imported late: matplotlib and the GL libraries

    if simulator.variant["env_name"] in POINT_ROBOTS:
        written = []
        if simulator.variant["pixels"]["enabled"]:  # and a video of the agent's own view
            paths, pictured = [], []

            def views():
                # one task at a time, so that only one task's frames are held in memory
                for task in tasks:
                    frames, positions = [], {}

                    def capture(t: int, k: int, env, frames=frames, positions=positions) -> None:
                        positions.setdefault(k, []).append(env.unwrapped._state.copy())
                        view = render.agent_view(env, 240)
                        frames.append(render.draw_caption(view, render.trajectory_caption(t, k)))

                    paths.extend(simulator.run([task], num_trajs, deterministic, capture))
                    pictured.append([position_path(positions[k]) for k in sorted(positions)])
                    yield from frames

            written.append(render.write_mp4(views(), run_dir / "sim_agent_view.mp4", 10))
        else:
            paths = pictured = simulator.run(tasks, num_trajs, deterministic)
        env = simulator.env.unwrapped
        exploring = simulator.variant["algo_params"]["num_exp_traj_eval"]
        written += [
            render.draw_point_robot_picture(
                env.tasks,
                env.tasks[task],
                getattr(env, "goal_radius", None),
                task_paths[:exploring],
                task_paths[exploring:],
                run_dir / "sim_pictures" / f"task{task}.png",
                title=f"task {task}: {exploring} exploration, then posterior trajectories",
            )
            for task, task_paths in zip(tasks, pictured, strict=True)
        ]
        return simulator.scores(paths), written

    if not isinstance(getattr(simulator.env.unwrapped, "model", None), mujoco.MjModel):
        raise ConfigError(
            f"--video: {simulator.variant['env_name']} is not a MuJoCo family: --video renders "
            "MuJoCo families and draws the point robots"
        )
    try:
        recorder = render.FrameRecorder(simulator.env)
    except render.RenderError as err:  # no offscreen OpenGL: say what to install, no traceback
        raise ConfigError(str(err)) from None
    all_paths = []
    pixels = simulator.variant["pixels"]["enabled"]

    def capture(task: int, trajectory: int, env) -> None:
        """The camera's frame, captioned; in a pixel run the agent's own view beside it."""
        frame = render.draw_caption(recorder.render(), render.trajectory_caption(task, trajectory))
        if pixels:
            frame = np.concatenate([frame, render.agent_view(env, frame.shape[0])], axis=1)
        recorder.frames.append(frame)

    def frames():
        # one task at a time, so that only one task's frames are held in memory
        for task in tasks:
            all_paths.extend(simulator.run([task], num_trajs, deterministic, on_step=capture))
            yield from recorder.frames
            recorder.frames.clear()

    try:
        written = render.write_mp4(frames(), run_dir / "sim_video.mp4", recorder.fps)
    finally:
        recorder.close()
    return simulator.scores(all_paths), [written]

"""Is a long context's posterior too narrow to act on? PEARL trains its encoder on short
contexts (`embedding_batch_size` transitions, 64 in the Meta-World quick config), but after many
adaptation episodes the posterior is a product of thousands of Gaussian factors. For a finished
run this script runs PEARL's online protocol on the eval tasks for K trajectories, prints the
posterior's width after 1, 3, ... K of them, and then lets the policy act deterministically with
z = the posterior mean of all K trajectories, with that of another task's K trajectories (does z
steer the policy at all?), and with that of random subsets of N of a task's own transitions; it
prints the success rate of each (Meta-World), or the mean return.

    .venv/bin/python tools/context_size.py RUN_DIR            # K = 10, subsets of 64 and 150
    .venv/bin/python tools/context_size.py RUN_DIR --trajectories 5 --sizes 32 --subsets 5
"""

import argparse

import numpy as np
import torch

from rlkit import load_run
from rlkit.data_management.path import Path as Trajectory
from rlkit.launchers.config import ConfigError
from rlkit.launchers.launcher import make_env
from rlkit.samplers.online_adaptation import concat_paths
from rlkit.samplers.rollout import rollout


def subset(path: Trajectory, idx: np.ndarray) -> Trajectory:
    """The transitions `idx` of `path`, in order."""
    return Trajectory(
        **{name: getattr(path, name)[idx] for name in Trajectory.__dataclass_fields__}
    )


def posterior_mean_std(run, context: Trajectory) -> tuple[np.ndarray, float]:
    """q(z|context)'s mean, and its std averaged over the latent dimensions."""
    mean, var = run.posterior(context)
    return mean, float(np.sqrt(var).mean())


def scores(run, paths: list[Trajectory]) -> list[float]:
    """Success (1.0 or 0.0) of each trajectory for families that report it, else its return."""
    returns, successes = run.scores([paths])
    return list((returns if successes is None else successes)[0])


def act_with(run, envs: list, means: list[np.ndarray], episodes: int) -> list[float]:
    """`episodes` deterministic trajectories in each env, each acting with its own z."""
    z = torch.as_tensor(np.stack(means), dtype=torch.float32)
    length = run.variant["algo_params"]["max_path_length"]
    found = []
    for _ in range(episodes):
        with torch.no_grad():
            found += scores(run, rollout(envs, run.agent, z, length, deterministic=True))
    return found


def score(run, envs: list, label: str, draws: list[list[Trajectory]], episodes: int) -> None:
    """Prints the success rate (or mean return) of acting with z = the posterior mean of each
    task's context, for each draw of contexts (one per task), and the posteriors' mean std."""
    found, widths = [], []
    for contexts in draws:
        means, stds = zip(*(posterior_mean_std(run, c) for c in contexts), strict=True)
        found += act_with(run, envs, list(means), episodes)
        widths += stds
    print(f"  {label} (std {np.mean(widths):.4f}): {np.mean(found):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--trajectories", type=int, default=10, help="K (default 10)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 150])
    parser.add_argument("--subsets", type=int, default=3, help="random subsets per size")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per z")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.sizes) < 1 or min(args.trajectories, args.subsets, args.episodes) < 1:
        parser.error("--trajectories, --sizes, --subsets and --episodes must be at least 1")
    torch.set_num_threads(1)

    try:
        run = load_run(args.run_dir, seed=args.seed)
    except ConfigError as err:
        parser.exit(2, f"context_size.py: error: {err}\n")
    tasks = run.eval_tasks
    k = args.trajectories
    paths = run.run(tasks, k + 1)  # the last one acts on the posterior of the first k
    online = np.array([scores(run, task_paths) for task_paths in paths]).mean(0)
    print(f"{args.run_dir}: {len(tasks)} eval tasks; PEARL online, trajectory by trajectory:")
    print("  " + " ".join(f"{x:.2f}" for x in online))
    print(f"prior std (mean over latent dims): {np.sqrt(run.prior()[1]).mean():.4f}")
    for n in sorted({1, min(3, k), k}):
        std = np.mean([posterior_mean_std(run, concat_paths(p[:n]))[1] for p in paths])
        length = np.mean([sum(len(q) for q in p[:n]) for p in paths])
        print(f"posterior of {n} trajectories ({length:.0f} transitions): std {std:.4f}")

    envs = [make_env(run.variant) for _ in tasks]
    for i, (env, task) in enumerate(zip(envs, tasks, strict=True)):
        env.reset(seed=args.seed + 1000 + i)
        env.reset_task(task)
    contexts = [concat_paths(p[:k]) for p in paths]
    shortest = min(len(c) for c in contexts)
    if max(args.sizes) > shortest:
        parser.error(f"--sizes: at most {shortest}, the shortest task's {k} trajectories")
    print("acting with z = the posterior mean of")
    score(run, envs, f"all {k} trajectories", [contexts], args.episodes * args.subsets)
    # does z steer the policy at all? the same, each task acting on the next task's context
    swapped = [contexts[1:] + contexts[:1]]
    score(
        run, envs, f"all {k} trajectories of the next task", swapped, args.episodes * args.subsets
    )
    rng = np.random.default_rng(args.seed)
    for size in args.sizes:
        draws = [
            [subset(c, np.sort(rng.choice(len(c), size, replace=False))) for c in contexts]
            for _ in range(args.subsets)
        ]
        score(run, envs, f"random {size}-transition subsets", draws, args.episodes)
    print(f"({len(tasks) * args.episodes * args.subsets} episodes each)")


if __name__ == "__main__":
    main()

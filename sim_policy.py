"""Watch and score a trained PEARL policy on the eval tasks of its run.

    python sim_policy.py [CONFIG] RUN_DIR [--num_trajs N] [--deterministic] [--video] [--itr K]
    python sim_policy.py RUN_DIR --metaworld-eval [--num-evals N] [--adaptation-episodes N]

Without CONFIG the run's variant.json gives the settings.
"""

import sys
from pathlib import Path

import click

from rlkit.launchers.config import ConfigError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True, metavar="[CONFIG] RUN_DIR")
@click.option(
    "--num_trajs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Trajectories per eval task.",
)
@click.option("--deterministic", is_flag=True, help="Act with the policy's mean action.")
@click.option(
    "--video",
    is_flag=True,
    help="Render into RUN_DIR: an mp4 (MuJoCo) or one PNG per task (point robots).",
)
@click.option("--itr", type=int, default=None, help="Use the snapshot of iteration K.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of z and the envs.")
@click.option(
    "--metaworld-eval",
    is_flag=True,
    help="Score with Meta-World's own evaluator instead (Meta-World runs; docs/metaworld.md).",
)
@click.option(
    "--num-evals",
    type=click.IntRange(min=1),
    default=None,
    help="--metaworld-eval: rounds of fresh goals [default: the run's].",
)
@click.option(
    "--adaptation-episodes",
    type=click.IntRange(min=1),
    default=None,
    help="--metaworld-eval: episodes per env before the posterior is fixed [default: the run's].",
)
@click.option(
    "--evaluation-episodes",
    type=click.IntRange(min=1),
    default=None,
    help="--metaworld-eval: scored episodes per class and round [default: the run's].",
)
def main(
    paths,
    num_trajs,
    deterministic,
    video,
    itr,
    seed,
    metaworld_eval,
    num_evals,
    adaptation_episodes,
    evaluation_episodes,
):
    """Roll out the policy of RUN_DIR on every eval task with online adaptation and print the
    average return of each trajectory index across the tasks (and, for Meta-World, its success
    rate); with --metaworld-eval, print the success rate of Meta-World's own evaluator per
    class instead."""
    if len(paths) > 2:
        click.echo("error: give at most two paths: [CONFIG] RUN_DIR", err=True)
        sys.exit(2)
    if metaworld_eval and video:
        click.echo("error: --video and --metaworld-eval do not go together", err=True)
        sys.exit(2)
    config, run_dir = (None, paths[0]) if len(paths) == 1 else paths
    try:
        # imported late: `--help` and argument errors answer at once
        from rlkit.api import load_run
        from rlkit.launchers.simulate import write_outputs

        run_dir = Path(run_dir)
        simulator = load_run(run_dir, itr, seed=seed, config=config)
        if metaworld_eval:
            scores = simulator.metaworld_eval(
                num_evals=num_evals,
                adaptation_episodes=adaptation_episodes,
                evaluation_episodes=evaluation_episodes,
            )
        else:
            (returns, successes), written = write_outputs(
                simulator, run_dir, num_trajs, deterministic, video
            )
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    if metaworld_eval:
        click.echo(
            f"Meta-World evaluator, {len(simulator.eval_tasks)} eval tasks: success rate "
            f"{scores.success_rate:.3f}, mean return {scores.mean_return:.1f}"
        )
        for name, rate in scores.class_success.items():
            click.echo(f"{name}: success rate {rate:.3f}")
        return
    tasks = len(simulator.eval_tasks)
    click.echo(f"{tasks} eval tasks, {num_trajs} trajectories each")
    for k, value in enumerate(returns.mean(axis=0)):
        line = f"trajectory {k}, average return: {value:.2f}"
        if successes is not None:  # Meta-World
            line += f", success rate: {successes[:, k].mean():.2f}"
        click.echo(line)
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()

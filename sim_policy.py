"""Watch and score a trained PEARL policy on the eval tasks of its run.

    python sim_policy.py [CONFIG] RUN_DIR [--num_trajs N] [--deterministic] [--video] [--itr K]

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
def main(paths, num_trajs, deterministic, video, itr, seed):
    """Roll out the policy of RUN_DIR on every eval task with online adaptation and print the
    average return of each trajectory index across the tasks (and, for Meta-World, its success
    rate)."""
    if len(paths) > 2:
        click.echo("error: give at most two paths: [CONFIG] RUN_DIR", err=True)
        sys.exit(2)
    config, run_dir = (None, paths[0]) if len(paths) == 1 else paths
    try:
        # imported late: `--help` and argument errors answer at once
        from rlkit.api import load_run
        from rlkit.launchers.simulate import write_outputs

        run_dir = Path(run_dir)
        simulator = load_run(run_dir, itr, seed=seed, config=config)
        (returns, successes), written = write_outputs(
            simulator, run_dir, num_trajs, deterministic, video
        )
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
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

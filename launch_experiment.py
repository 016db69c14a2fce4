"""Meta-train PEARL: python launch_experiment.py configs/X.json [options]."""

import sys

import click

from rlkit.launchers.config import ConfigError, apply_override, load_config, validate

DOCKER_HELP = """Running in Docker: build the image from docker/Dockerfile and run the same command
inside it with the GPUs and output/ mounted, for example:
  docker build -t pearl -f docker/Dockerfile .
  docker run --gpus all -v "$PWD/output:/pearl/output" pearl \\
      python launch_experiment.py configs/cheetah-vel.json"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", required=False)
@click.option("--gpu", "--gpu_id", "gpu", type=int, default=None, help="CUDA device index.")
@click.option("--seed", type=int, default=None, help="Seed for torch, numpy and the envs.")
@click.option("--debug", is_flag=True, help="Write to a run folder named 'debug'.")
@click.option("--docker", is_flag=True, help="Explain how to run in Docker, then exit.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a dotted config key, e.g. algo_params.num_iterations=3 (repeatable).",
)
def main(config, gpu, seed, debug, docker, overrides):
    """Meta-train PEARL with CONFIG (a JSON file merged over configs/default.py)."""
    if docker:
        click.echo(DOCKER_HELP)
        return
    try:
        variant = load_config(config)
        for expression in overrides:
            apply_override(variant, expression)
        where = config or "default config"
        if gpu is not None:
            apply_override(variant, f"util_params.gpu_id={gpu}")
        if seed is not None:
            apply_override(variant, f"util_params.seed={seed}")
        if debug:
            variant["util_params"]["debug"] = True
        validate(variant, where)
        # imported late: torch and the envs load only for a valid config
        from rlkit.launchers.launcher import prepare, run_experiment

        prepare(variant, where)
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    run_experiment(variant)


if __name__ == "__main__":
    main()

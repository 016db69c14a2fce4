"""Meta-train PEARL: python launch_experiment.py configs/X.json [options], or continue a run:
python launch_experiment.py --resume output/ENV/RUN."""

import sys
from typing import NoReturn

import click

from rlkit.launchers.config import (
    ConfigError,
    apply_override,
    apply_resume_override,
    load_config,
    load_run_config,
    validate,
)

DOCKER_HELP = """Running in Docker: build the image from docker/Dockerfile and run the same command
inside it with the GPUs and output/ mounted, for example:
  docker build -t pearl -f docker/Dockerfile .
  docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD/output:/pearl/output" \\
      pearl python launch_experiment.py configs/cheetah-vel.json
More (sweeps on GPUs, build arguments): docs/docker.md"""


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
@click.option(
    "--resume",
    metavar="RUN_DIR",
    default=None,
    help="Continue the run in RUN_DIR from its last checkpoint, with its own settings.",
)
def main(config, gpu, seed, debug, docker, overrides, resume):
    """Meta-train PEARL with CONFIG (a JSON file merged over configs/default.py), or continue
    the run in RUN_DIR with --resume RUN_DIR."""
    if docker:
        click.echo(DOCKER_HELP)
        return
    try:
        variant, where = settings(config, gpu, seed, debug, overrides, resume)
    except ConfigError as err:
        fail(f"error: {err}", 2)
    # imported late: torch and the envs load only for a valid config
    from rlkit.launchers.launcher import RunStopped, prepare, prepare_resume, run_experiment

    try:
        if resume is None:
            run_experiment(prepare(variant, where))
        else:
            run_experiment(variant, resume, prepare_resume(resume, variant, where))
    except ConfigError as err:
        fail(f"error: {err}", 2)
    except RunStopped as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:  # before training started: nothing to keep
        fail("interrupted", 130)


def settings(config, gpu, seed, debug, overrides, resume) -> tuple[dict, str]:
    """The validated config of a new run, or of the run that --resume continues, and where
    it came from (for error messages)."""
    if resume is None:
        variant = load_config(config)
        for expression in overrides:
            apply_override(variant, expression)
        where = config or "default config"
    else:
        if config is not None or seed is not None or debug:
            raise ConfigError(
                f"--resume {resume}: a resumed run keeps its own settings "
                "(RUN_DIR/variant.json): give no CONFIG, --seed or --debug"
            )
        variant, where = load_run_config(resume)
        for expression in overrides:
            apply_resume_override(variant, expression)
    if gpu is not None:
        apply_override(variant, f"util_params.gpu_id={gpu}")
    if seed is not None:
        apply_override(variant, f"util_params.seed={seed}")
    if debug:
        variant["util_params"]["debug"] = True
    validate(variant, where)
    return variant, where


def fail(message: str, exit_code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()

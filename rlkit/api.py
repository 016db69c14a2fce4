"""The Python API: train PEARL and use a trained agent without the command line.

    import rlkit

    run_dir = rlkit.train("configs/point-robot-quick.json", {"algo_params.num_iterations": 5})
    run = rlkit.load_run(run_dir)
    paths = run.run(run.eval_tasks, num_trajs=3)  # PEARL's online protocol
    mean, var = run.posterior(paths[0])           # q(z|c) of the first task's transitions
    action = run.act(run.env.reset()[0], run.sample_z(mean, var))

Errors are exceptions: ConfigError (a ValueError) for a bad config or run folder, with the
same one-line message the command line prints; RunStopped when training stops early (a loss
diverged, or Ctrl-C), with a checkpoint on disk to resume from.
"""

import copy
from collections.abc import Mapping
from pathlib import Path

from rlkit.launchers.config import (
    ConfigError,
    config_from_dict,
    load_config,
    set_key,
    validate,
)
from rlkit.launchers.simulate import TrainedRun, run_variant


def _variant(config: str | Path | Mapping | None) -> tuple[dict, str]:
    if config is None or isinstance(config, (str, Path)):
        return load_config(None if config is None else str(config)), str(config or "defaults")
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"config must be a JSON file's path or a dict, got {type(config).__name__}"
        )
    return config_from_dict(copy.deepcopy(dict(config)), "config"), "config"


def train(
    config: str | Path | Mapping | None,
    overrides: Mapping[str, object] | None = None,
    seed: int | None = None,
) -> Path:
    """Meta-train PEARL as `launch_experiment.py CONFIG --set KEY=VALUE ... --seed SEED`
    would, in this process; returns the run folder.

    config: a JSON config's path, or a dict of the same content (merged over the defaults);
    None: the defaults. overrides: dotted keys to values, as --set takes them, e.g.
    {"algo_params.num_iterations": 10}. The run applies its util_params.num_threads to this
    process's torch.
    """
    from rlkit.launchers.launcher import prepare, run_experiment

    variant, where = _variant(config)
    for key, value in (overrides or {}).items():
        set_key(variant, key, value, f"overrides[{key!r}]")
    if seed is not None:
        set_key(variant, "util_params.seed", seed, "seed")
    validate(variant, where)
    return run_experiment(prepare(variant, where))


def load_run(
    run_dir: str | Path, itr: int | None = None, *, seed: int = 0, config: str | None = None
) -> TrainedRun:
    """The trained agent of `run_dir` with its task family (rlkit.launchers.simulate.TrainedRun):
    the networks of snapshot `itr` (NAME_itr_K.pth; None: the last one saved), the settings of
    the run's variant.json (or of `config`, as sim_policy.py CONFIG RUN_DIR); `seed` seeds z's
    draws and the envs' resets, as sim_policy.py --seed."""
    variant = run_variant(config, Path(run_dir))
    return TrainedRun(variant, Path(run_dir), itr, seed)

"""What a sweep runs: a config, overrides for every trial, a grid of settings and seeds,
expanded into trials, each an ordinary run's validated variant and the name of its folder.

Everything here is checked before Ray starts; a problem raises ConfigError with one line.
A sweep file (sweeps/X.json) holds the same as the command line:

    {"config": "configs/point-robot-quick.json",
     "set": {"algo_params.num_iterations": 30},
     "grid": {"algo_params.use_information_bottleneck": [true, false]},
     "seeds": [0, 1, 2],
     "metric": "AverageReturn_all_test_tasks",
     "description": "..."}

Paths in it are relative to the current folder, as on the command line.
"""

import difflib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlkit.launchers.config import (
    ConfigError,
    apply_override,
    load_config,
    parse_value,
    set_key,
    validate,
)

DEFAULT_METRIC = "AverageReturn_all_test_tasks"
DEFAULT_SEEDS = (0, 1, 2)
SWEEP_FILE_KEYS = ("config", "set", "grid", "seeds", "metric", "description")
# what a folder name may hold; anything else in a value becomes '-'
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")


@dataclass
class SweepSpec:
    """The sweep as given: `sets` are KEY=VALUE expressions applied to every trial, `grid`
    maps dotted keys to the values tried (in order), every combination runs with each seed."""

    config: str | None
    sets: list[str] = field(default_factory=list)
    grid: dict[str, list] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    metric: str = DEFAULT_METRIC

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Trial:
    """One run of the sweep: `name` is its folder, `setting` the name without the seed (the
    runs pooled in the summary), `values` the grid values it takes."""

    name: str
    setting: str
    seed: int
    values: dict
    variant: dict


def is_sweep_file(path: str) -> bool:
    """A JSON object with a 'config' key (no config file has one)."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_config names the problem
    return isinstance(content, dict) and "config" in content


def read_sweep_file(path: str) -> SweepSpec:
    """The SweepSpec in a sweep file; its values are checked by expand()."""
    content = json.loads(Path(path).read_text(encoding="utf-8"))
    for key in content:
        if key not in SWEEP_FILE_KEYS:
            close = difflib.get_close_matches(key, SWEEP_FILE_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{path}: unknown sweep-file key '{key}'{hint}")
    config = content["config"]
    if not isinstance(config, str):
        raise ConfigError(f"{path}: config must be the path of a config file")
    sets = content.get("set", {})
    if not isinstance(sets, dict):
        raise ConfigError(f"{path}: set must be an object of dotted keys and values")
    grid = content.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: grid must be an object of dotted keys and value lists")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key} must be a non-empty list of values")
    spec = SweepSpec(
        config=config,
        sets=[f"{key}={json.dumps(value)}" for key, value in sets.items()],
        grid=dict(grid),
    )
    if "seeds" in content:
        spec.seeds = check_seeds(content["seeds"], f"{path}: seeds")
    if "metric" in content:
        if not isinstance(content["metric"], str):
            raise ConfigError(f"{path}: metric must be a progress.csv column name")
        spec.metric = content["metric"]
    return spec


def check_seeds(seeds, where: str) -> list[int]:
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{where}: must be a non-empty list of seeds")
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"{where}: seeds are integers >= 0, got {json.dumps(seed)}")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"{where}: a seed is given twice")
    return list(seeds)


def parse_grid(expressions: list[str]) -> dict[str, list]:
    """`--grid KEY=V1,V2 ...`: each value parsed as JSON when it parses, else a string."""
    grid: dict[str, list] = {}
    for expression in expressions:
        where = f"--grid {expression}"
        key, sep, raw = expression.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: expected KEY=V1,V2,..., e.g. algo_params.kl_lambda=0.1,1")
        parts = raw.split(",")
        if any(not part.strip() for part in parts):
            raise ConfigError(f"{where}: an empty value in '{raw}'")
        if key in grid:
            raise ConfigError(f"{where}: {key} is given twice")
        grid[key] = [parse_value(part.strip()) for part in parts]
    return grid


def _value_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return _UNSAFE.sub("-", text)


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each grid key by its last part, or in full where two keys share their last part."""
    leaves = [key.rsplit(".", 1)[-1] for key in keys]
    pairs = zip(keys, leaves, strict=True)
    return {key: leaf if leaves.count(leaf) == 1 else key for key, leaf in pairs}


def _get(variant: dict, key: str):
    node = variant
    for part in key.split("."):
        node = node[part]
    return node


def expand(spec: SweepSpec, base_dir: Path) -> list[Trial]:
    """Every grid combination with every seed, in order (grid values first, seeds last), each
    variant loaded, overridden and validated as launch_experiment.py would; `base_dir` (the
    sweep's folder) becomes util_params.base_log_dir, and its name the W&B group unless the
    config names one."""
    for expression in spec.sets:
        key = expression.partition("=")[0].strip()
        if key in spec.grid:
            raise ConfigError(f"--set {expression}: {key} is also in the grid")
    base = load_config(spec.config)
    for expression in spec.sets:
        apply_override(base, expression)
    keys = list(spec.grid)
    short = _short_names(keys)
    trials, names = [], set()
    for combination in itertools.product(*(spec.grid[key] for key in keys)):
        setting_variant = json.loads(json.dumps(base))
        values = {}
        for key, value in zip(keys, combination, strict=True):
            set_key(setting_variant, key, value, f"--grid {key}={_value_text(value)}")
            values[key] = _get(setting_variant, key)  # as the config took it: 1 -> 1.0
        setting = "_".join(f"{short[k]}={_value_text(v)}" for k, v in values.items())
        for seed in spec.seeds:
            variant = json.loads(json.dumps(setting_variant))
            variant["util_params"]["seed"] = seed
            variant["util_params"]["base_log_dir"] = str(base_dir)
            wandb = variant["util_params"]["wandb"]
            if wandb["group"] is None:  # a sweep's trials are one W&B group
                wandb["group"] = base_dir.name
            if variant["path_to_weights"] is not None:  # trials may run in another folder
                variant["path_to_weights"] = str(Path(variant["path_to_weights"]).absolute())
            validate(variant, spec.config or "default config")
            name = f"{setting}_seed={seed}" if setting else f"seed={seed}"
            if name in names:
                raise ConfigError(f"--grid: two settings are both named '{name}'")
            names.add(name)
            trials.append(Trial(name, setting or "all", seed, values, variant))
    return trials

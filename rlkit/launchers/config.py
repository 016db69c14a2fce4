"""Experiment configs: load a JSON file, deep-merge it over the defaults, apply `--set`
overrides, and validate everything before any work starts; the same for the run folder that
`--resume` continues (its variant.json is its config).

Every problem raises ConfigError with one line naming the file and the key.
"""

import copy
import difflib
import inspect
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from configs.default import default_config
from rlkit.envs import FamilyNotFound, family_constructor, is_builtin


class ConfigError(ValueError):
    """A bad config, override or command-line value; the message is one line."""


# sizes and counts: POSITIVE must be >= 1, NON_NEGATIVE >= 0
POSITIVE = {
    "n_train_tasks",
    "n_eval_tasks",
    "latent_size",
    "net_size",
    "env_params.n_tasks",
    "algo_params.meta_batch",
    "algo_params.num_iterations",
    "algo_params.num_evals",
    "algo_params.num_steps_per_eval",
    "algo_params.batch_size",
    "algo_params.embedding_batch_size",
    "algo_params.embedding_mini_batch_size",
    "algo_params.max_path_length",
    "algo_params.update_post_train",
    "algo_params.replay_buffer_size",
    "algo_params.metaworld_eval_adaptation_episodes",
    "algo_params.metaworld_eval_evaluation_episodes",
    "algo_params.metaworld_eval_envs_per_class",
    "algo_params.metaworld_eval_max_episode_steps",
    "util_params.snapshot_gap",
    "util_params.num_threads",
    "pixels.size",
    "pixels.frame_stack",
    "pixels.conv_layers",
    "pixels.conv_filters",
    "pixels.feature_dim",
}
NON_NEGATIVE = {
    "algo_params.num_initial_steps",
    "algo_params.num_tasks_sample",
    "algo_params.num_steps_prior",
    "algo_params.num_steps_posterior",
    "algo_params.num_extra_rl_steps_posterior",
    "algo_params.num_train_steps_per_itr",
    "algo_params.num_exp_traj_eval",
    "algo_params.reward_scale",
    "algo_params.kl_lambda",
    "algo_params.metaworld_eval_every",
    "algo_params.metaworld_eval_num_evals",
    "util_params.gpu_id",
    "util_params.seed",
    "pixels.augment_pad",
}
STRICTLY_POSITIVE_FLOATS = {
    "algo_params.policy_lr",
    "algo_params.qf_lr",
    "algo_params.vf_lr",
    "algo_params.context_lr",
    "algo_params.alpha_lr",
    "algo_params.soft_target_tau",
    "pixels.encoder_tau",
}
UNIT_INTERVAL = {"algo_params.discount", "algo_params.soft_target_tau", "pixels.encoder_tau"}
SNAPSHOT_MODES = ("last", "all", "gap", "gap_and_last", "none")
CONTEXT_SOURCES = ("encoder_buffer", "replay_buffer", "rl_batch")
# keys whose default is None and the type they take otherwise
OPTIONAL = {
    "path_to_weights": str,
    "algo_params.target_entropy": float,
    "util_params.seed": int,
    "util_params.num_threads": int,
    "util_params.wandb.project": str,
    "util_params.wandb.entity": str,
    "util_params.wandb.group": str,
    "pixels.camera": str,
}
WANDB_MODES = ("online", "offline", "disabled")
# what `--resume` may change: the run's length, the machine it runs on, where it logs to
RESUMABLE = (
    "algo_params.num_iterations",
    "util_params.use_gpu",
    "util_params.gpu_id",
    "util_params.cuda_graph",
    "util_params.num_threads",
    "util_params.tensorboard",
    "util_params.wandb.mode",
    "util_params.wandb.project",
    "util_params.wandb.entity",
    "util_params.wandb.group",
    "util_params.wandb.tags",
)


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _coerce(key: str, value, default, where: str):
    """The value converted to the default's type, or ConfigError. JSON 0/1 are accepted as
    booleans (the reference's sparse-point-robot config says `"sparse_rewards": 1`)."""
    expected = OPTIONAL.get(key, type(default))
    if value is None and (key in OPTIONAL or default is None):
        return None
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
    elif expected is str:
        if isinstance(value, str):
            return value
    elif expected is list:  # lists of strings (W&B tags)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ConfigError(f"{where}: {key} must be a list of strings, got {json.dumps(value)}")
    raise ConfigError(f"{where}: {key} must be {_type_name(expected())}, got {json.dumps(value)}")


def _unknown_key(key: str, valid: Iterable[str], where: str) -> ConfigError:
    leaf = key.rsplit(".", 1)
    prefix = leaf[0] + "." if len(leaf) == 2 else ""
    close = difflib.get_close_matches(leaf[-1], list(valid), n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


def env_param_defaults(env_name: str) -> dict | None:
    """The family constructor's keyword parameters and their defaults; None when it takes
    any keyword (**kwargs) or its signature cannot be read."""
    try:
        parameters = inspect.signature(family_constructor(env_name)).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return {
        p.name: p.default for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def merge_into(variant: dict, overrides: dict, where: str, prefix: str = "") -> None:
    """Deep-merge `overrides` into `variant` in place, checking keys and types.

    env_params may hold any keyword of the env's constructor; they are checked in validate().
    """
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in variant and path.split(".")[0] != "env_params":
            raise _unknown_key(path, variant.keys(), where)
        current = variant.get(key)
        if isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {path} must be an object, got {json.dumps(value)}")
            merge_into(current, value, where, prefix=f"{path}.")
        elif key in variant:
            variant[key] = _coerce(path, value, current, where)
        else:
            variant[key] = value


def load_config(path: str | None) -> dict:
    """The defaults merged with the JSON file at `path` (None: the defaults alone)."""
    variant = copy.deepcopy(default_config)
    if path is None:
        return variant
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not file.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the config file (not UTF-8 text)") from None
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: the config must be a JSON object")
    return config_from_dict(overrides, str(path))


def config_from_dict(overrides: dict, where: str) -> dict:
    """The defaults merged with a config's content (`where` names it in errors)."""
    variant = copy.deepcopy(default_config)
    merge_into(variant, overrides, where)
    _drop_foreign_env_defaults(variant, overrides.get("env_params"))
    return variant


def _drop_foreign_env_defaults(variant: dict, given) -> None:
    """The defaults' env_params (n_tasks, randomize_tasks) are the reference families'; drop
    those that the config's family does not take (Meta-World), unless the file gave them."""
    try:
        accepted = env_param_defaults(variant["env_name"])
    except FamilyNotFound:
        return  # validate() says what is wrong with env_name
    if accepted is None:
        return
    given = given if isinstance(given, dict) else {}
    for key in default_config["env_params"]:
        if key not in given and key not in accepted:
            variant["env_params"].pop(key, None)


def parse_value(raw: str):
    """A command-line VALUE: JSON when it parses, else the string itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def set_key(variant: dict, key: str, value, where: str) -> None:
    """Set the dotted `key` to `value`, checked as a config file's entry would be."""
    nested = value
    for part in reversed(key.split(".")):
        if not part:
            raise ConfigError(f"{where}: empty key component in '{key}'")
        nested = {part: nested}
    merge_into(variant, nested, where)


def apply_override(variant: dict, expression: str) -> None:
    """`--set a.b=VALUE`: VALUE parsed as JSON when it parses, else taken as a string."""
    where = f"--set {expression}"
    key, sep, raw = expression.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{where}: expected KEY=VALUE, e.g. algo_params.num_iterations=3")
    set_key(variant, key, parse_value(raw), where)


def load_run_config(run_dir: str) -> tuple[dict, str]:
    """The config of the run folder that `--resume RUN_DIR` continues, and its file's name."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such folder")
    file = folder / "variant.json"
    if not file.is_file():
        raise ConfigError(f"--resume {run_dir}: not a run folder (it has no variant.json)")
    return load_config(str(file)), str(file)


def _resumable_text() -> str:
    keys = [key for key in RESUMABLE if not key.startswith("util_params.wandb.")]
    return ", ".join([*keys, "util_params.wandb.*"])


def apply_resume_override(variant: dict, expression: str) -> None:
    """`--set` with `--resume`: only the keys in RESUMABLE; the rest would change the run."""
    key = expression.partition("=")[0].strip()
    if key not in RESUMABLE:
        raise ConfigError(
            f"--set {expression}: a resumed run keeps its settings; with --resume only "
            f"{_resumable_text()} may be set"
        )
    apply_override(variant, expression)


def check_output_folder(folder: str, key: str, where: str) -> None:
    """`folder`, or the nearest of its parents that exists, must be a folder we may write in;
    checked before anything is written."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir():
        raise ConfigError(f"{where}: {key}: cannot create '{folder}': '{path}' is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {key}: cannot write in '{path}'")


def validate(variant: dict, where: str) -> None:
    """Checks that need more than one key: env name, env_params, sizes, ranges."""
    env_name = variant["env_name"]
    try:
        allowed = env_param_defaults(env_name)
    except FamilyNotFound as err:
        raise ConfigError(f"{where}: env_name: {err}") from None
    env_params = variant["env_params"]
    for key, value in env_params.items():
        if allowed is None:
            continue
        if key not in allowed:
            raise _unknown_key(f"env_params.{key}", allowed, where)
        default = allowed[key]
        if default is not inspect.Parameter.empty and default is not None:
            env_params[key] = _coerce(f"env_params.{key}", value, default, where)

    def get(dotted: str):
        node = variant
        for part in dotted.split("."):
            node = node[part]
        return node

    for key in POSITIVE:
        if key.startswith("env_params.") and key.split(".")[1] not in variant["env_params"]:
            continue
        value = get(key)
        if value is not None and value < 1:
            raise ConfigError(f"{where}: {key} must be at least 1, got {value}")
    for key in NON_NEGATIVE:
        value = get(key)
        if value is not None and value < 0:
            raise ConfigError(f"{where}: {key} must not be negative, got {value}")
    for key in STRICTLY_POSITIVE_FLOATS:
        if not get(key) > 0:
            raise ConfigError(f"{where}: {key} must be positive, got {get(key)}")
    for key in UNIT_INTERVAL:
        if not 0 <= get(key) <= 1:
            raise ConfigError(f"{where}: {key} must lie in [0, 1], got {get(key)}")
    algo = variant["algo_params"]
    if algo["embedding_mini_batch_size"] > algo["embedding_batch_size"]:
        raise ConfigError(
            f"{where}: algo_params.embedding_mini_batch_size ({algo['embedding_mini_batch_size']})"
            f" is larger than algo_params.embedding_batch_size ({algo['embedding_batch_size']})"
        )
    if algo["max_path_length"] > algo["replay_buffer_size"]:
        raise ConfigError(f"{where}: algo_params.replay_buffer_size is below max_path_length")
    source = algo["context_source"]
    if source not in CONTEXT_SOURCES:
        raise ConfigError(
            f"{where}: algo_params.context_source must be one of {', '.join(CONTEXT_SOURCES)}, "
            f"got '{source}'"
        )
    if source == "rl_batch" and algo["recurrent"]:
        raise ConfigError(
            f"{where}: algo_params.context_source 'rl_batch' needs the MLP encoder: the RL "
            "batch is unordered transitions and the recurrent encoder reads whole trajectories"
        )
    _validate_metaworld_eval(variant, where)
    _validate_pixels(variant, where)
    mode = variant["util_params"]["snapshot_mode"]
    if mode not in SNAPSHOT_MODES:
        raise ConfigError(
            f"{where}: util_params.snapshot_mode must be one of {', '.join(SNAPSHOT_MODES)}, "
            f"got '{mode}'"
        )
    _validate_logging(variant["util_params"], where)
    weights = variant["path_to_weights"]
    if weights is not None and not Path(weights).is_dir():
        raise ConfigError(f"{where}: path_to_weights: no such folder '{weights}'")


def _validate_metaworld_eval(variant: dict, where: str) -> None:
    algo = variant["algo_params"]
    if algo["metaworld_eval_max_episode_steps"] > 500:
        raise ConfigError(
            f"{where}: algo_params.metaworld_eval_max_episode_steps must be at most 500, "
            f"Meta-World's episode length, got {algo['metaworld_eval_max_episode_steps']}"
        )
    metaworld = str(variant["env_name"]).startswith("metaworld-")
    if metaworld and variant["pixels"]["enabled"] and algo["metaworld_eval_num_evals"] > 0:
        raise ConfigError(
            f"{where}: pixels.enabled with Meta-World's evaluator, which gives the agent "
            "states: set algo_params.metaworld_eval_num_evals to 0"
        )


def _validate_logging(util: dict, where: str) -> None:
    """TensorBoard and W&B are optional extras: asking for one that is not installed fails
    here, before the run starts."""
    import importlib

    mode = util["wandb"]["mode"]
    if mode not in WANDB_MODES:
        raise ConfigError(
            f"{where}: util_params.wandb.mode must be one of {', '.join(WANDB_MODES)}, got '{mode}'"
        )
    wanted = [("tensorboard", "util_params.tensorboard")] if util["tensorboard"] else []
    if mode != "disabled":
        wanted.append(("wandb", f"util_params.wandb.mode '{mode}'"))
    for package, key in wanted:
        try:
            importlib.import_module(package)
        except ImportError:
            raise ConfigError(
                f"{where}: {key} needs the {package} package, which is not installed: "
                f"pip install 'pearl-rlkit[{package}]'"
            ) from None


def _validate_pixels(variant: dict, where: str) -> None:
    from rlkit.torch.pixels import conv_output_side

    pixels = variant["pixels"]
    if not pixels["enabled"]:
        return
    if conv_output_side(pixels["size"], pixels["conv_layers"]) < 1:
        raise ConfigError(
            f"{where}: pixels.size {pixels['size']} is too small for {pixels['conv_layers']} "
            "conv layers (3x3, the first of stride 2): the last one would have no pixel left"
        )
    if pixels["augment"] and 2 * pixels["augment_pad"] >= pixels["size"]:
        raise ConfigError(
            f"{where}: pixels.augment_pad {pixels['augment_pad']} shifts a "
            f"{pixels['size']}-pixel image by half its side or more"
        )
    if variant["algo_params"]["recurrent"]:
        raise ConfigError(
            f"{where}: pixels.enabled with algo_params.recurrent: the recurrent encoder reads "
            "whole trajectories, which pixel runs do not keep in order; use the MLP encoder"
        )
    if variant["util_params"]["cuda_graph"]:
        raise ConfigError(f"{where}: util_params.cuda_graph does not capture pixel runs yet")


def check_task_counts(variant: dict, env, where: str) -> None:
    """Train tasks are tasks[:n_train_tasks], eval tasks tasks[-n_eval_tasks:] (they may
    overlap, as in the reference's cheetah-dir), so each count alone must fit. A family with
    separate train and test tasks (`task_split`: how many of each, in that order: Meta-World)
    takes each count from its own part; a family from outside the package must hold
    n_train_tasks + n_eval_tasks tasks (disjoint train and eval tasks); one with an episode
    limit (`max_episode_steps`) bounds max_path_length."""
    family = env.unwrapped
    n_tasks = len(env.get_all_task_idx())
    split = getattr(family, "task_split", None)
    parts = (("n_train_tasks", "train"), ("n_eval_tasks", "test"))
    for i, (key, part) in enumerate(parts):
        if split is not None and variant[key] > split[i]:
            raise ConfigError(
                f"{where}: {key} ({variant[key]}) is more than the {split[i]} {part} tasks "
                f"{variant['env_name']} has"
            )
        if variant[key] > n_tasks:
            raise ConfigError(
                f"{where}: {key} ({variant[key]}) is more than the {n_tasks} tasks the env has"
            )
    wanted = variant["n_train_tasks"] + variant["n_eval_tasks"]
    if split is None and not is_builtin(variant["env_name"]) and n_tasks < wanted:
        # the reference's own configs let train and eval tasks overlap (cheetah-dir's two
        # tasks are both); a family of one's own gets disjoint ones
        raise ConfigError(
            f"{where}: {variant['env_name']} has {n_tasks} tasks, fewer than n_train_tasks + "
            f"n_eval_tasks ({variant['n_train_tasks']} + {variant['n_eval_tasks']}): its train "
            "and eval tasks would overlap"
        )
    limit = getattr(family, "max_episode_steps", None)
    length = variant["algo_params"]["max_path_length"]
    if limit is not None and length > limit:
        raise ConfigError(
            f"{where}: algo_params.max_path_length ({length}) is more than the {limit} steps "
            f"an episode of {variant['env_name']} may have"
        )

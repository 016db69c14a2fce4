"""Config loading, --set overrides and validation: reference configs load unchanged, every bad
input gives a one-line ConfigError naming where it came from and the key."""

import copy
import json
from pathlib import Path

import pytest

from configs.default import default_config
from rlkit.launchers.config import (
    ConfigError,
    apply_override,
    apply_resume_override,
    check_output_folder,
    check_task_counts,
    load_config,
    load_run_config,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CONFIGS = ["point-robot.json", "sparse-point-robot.json"]


class TaskList:
    """What check_task_counts reads of an env: its tasks, optionally a train/test split and an
    episode limit."""

    def __init__(self, n_tasks, split=None, max_episode_steps=None):
        self.n_tasks = n_tasks
        if split is not None:
            self.task_split = split
        if max_episode_steps is not None:
            self.max_episode_steps = max_episode_steps

    @property
    def unwrapped(self):
        return self

    def get_all_task_idx(self):
        return range(self.n_tasks)


def write_config(tmp_path, content, name="exp.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def error_message(call, *args):
    with pytest.raises(ConfigError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def assert_names(message, *needles):
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def deep_merge(base, overrides):
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def point_robot_variant(**top):
    variant = load_config(str(ROOT / "configs" / "point-robot.json"))
    variant.update(top)
    return variant


# ------------------------------------------------------------------ reference configs


def test_defaults_alone():
    variant = load_config(None)
    assert variant == default_config
    variant["algo_params"]["batch_size"] = 1
    assert default_config["algo_params"]["batch_size"] == 256  # a copy, not the defaults


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_configs_merge_over_the_defaults(name):
    path = ROOT / "configs" / name
    raw = json.loads(path.read_text())
    variant = load_config(str(path))
    assert variant == deep_merge(default_config, raw)
    assert variant["env_name"] == raw["env_name"]
    for key in ("n_train_tasks", "n_eval_tasks"):
        assert variant[key] == raw[key]
    for key, value in raw["algo_params"].items():
        assert variant["algo_params"][key] == value
    # keys the file leaves out keep the defaults
    assert variant["latent_size"] == 5 and variant["net_size"] == 300
    assert variant["algo_params"]["meta_batch"] == 16
    assert variant["algo_params"]["policy_lr"] == 3e-4
    assert variant["env_params"] == {"n_tasks": 100, "randomize_tasks": True}
    assert variant["util_params"]["base_log_dir"] == "output"
    validate(variant, str(path))
    check_task_counts(variant, TaskList(100), str(path))


def test_point_robot_reference_values():
    variant = load_config(str(ROOT / "configs" / "point-robot.json"))
    algo = variant["algo_params"]
    assert (variant["n_train_tasks"], variant["n_eval_tasks"]) == (80, 20)
    assert algo["num_train_steps_per_itr"] == 1000
    assert algo["reward_scale"] == 100.0
    assert algo["max_path_length"] == 20
    assert algo["sparse_rewards"] is False


def test_sparse_rewards_one_becomes_true():
    variant = load_config(str(ROOT / "configs" / "sparse-point-robot.json"))
    assert variant["algo_params"]["sparse_rewards"] is True
    assert variant["algo_params"]["embedding_batch_size"] == 1024
    assert variant["algo_params"]["num_exp_traj_eval"] == 5
    assert variant["algo_params"]["discount"] == 0.9


def test_zero_becomes_false(tmp_path):
    path = write_config(tmp_path, {"algo_params": {"recurrent": 0, "sparse_rewards": 0}})
    variant = load_config(path)
    assert variant["algo_params"]["recurrent"] is False
    assert variant["algo_params"]["sparse_rewards"] is False


def test_integral_float_for_an_integer_key(tmp_path):
    variant = load_config(write_config(tmp_path, {"net_size": 64.0}))
    assert variant["net_size"] == 64 and isinstance(variant["net_size"], int)


def test_integer_for_a_float_key(tmp_path):
    variant = load_config(write_config(tmp_path, {"algo_params": {"reward_scale": 3}}))
    assert variant["algo_params"]["reward_scale"] == 3.0
    assert isinstance(variant["algo_params"]["reward_scale"], float)


# ------------------------------------------------------------------ bad files


def test_unknown_top_level_key(tmp_path):
    path = write_config(tmp_path, {"env_name": "point-robot", "net_sise": 64})
    message = error_message(load_config, path)
    assert_names(message, path, "net_sise", "did you mean 'net_size'")


def test_unknown_nested_key(tmp_path):
    path = write_config(tmp_path, {"algo_params": {"num_iteratons": 3}})
    message = error_message(load_config, path)
    assert_names(message, path, "algo_params.num_iteratons")
    assert_names(message, "did you mean 'algo_params.num_iterations'")


def test_unknown_key_without_a_close_match(tmp_path):
    path = write_config(tmp_path, {"util_params": {"zzzzqqqq": 1}})
    message = error_message(load_config, path)
    assert_names(message, path, "util_params.zzzzqqqq")


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ({"net_size": "big"}, "net_size"),
        ({"net_size": 1.5}, "net_size"),
        ({"net_size": True}, "net_size"),
        ({"algo_params": {"batch_size": [256]}}, "algo_params.batch_size"),
        ({"algo_params": {"discount": "0.9"}}, "algo_params.discount"),
        ({"algo_params": {"recurrent": "yes"}}, "algo_params.recurrent"),
        ({"algo_params": {"sparse_rewards": 2}}, "algo_params.sparse_rewards"),
        ({"algo_params": {"auto_alpha": "yes"}}, "algo_params.auto_alpha"),
        ({"algo_params": {"target_entropy": "-2"}}, "algo_params.target_entropy"),
        ({"algo_params": {"target_entropy": True}}, "algo_params.target_entropy"),
        ({"algo_params": {"alpha_lr": [3e-4]}}, "algo_params.alpha_lr"),
        ({"util_params": {"base_log_dir": 3}}, "util_params.base_log_dir"),
        ({"env_name": 7}, "env_name"),
        ({"algo_params": 5}, "algo_params"),
        ({"path_to_weights": 5}, "path_to_weights"),
    ],
)
def test_wrong_type(tmp_path, content, key):
    path = write_config(tmp_path, content)
    message = error_message(load_config, path)
    assert_names(message, path, key)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        (None, "net_size", 0),
        (None, "latent_size", -1),
        (None, "n_train_tasks", 0),
        ("algo_params", "batch_size", -16),
        ("algo_params", "meta_batch", 0),
        ("algo_params", "embedding_batch_size", 0),
        ("algo_params", "max_path_length", 0),
        ("algo_params", "num_initial_steps", -5),
        ("algo_params", "num_steps_prior", -1),
        ("algo_params", "num_train_steps_per_itr", -1),
        ("env_params", "n_tasks", 0),
    ],
)
def test_negative_or_zero_size(tmp_path, section, key, value):
    content = {key: value} if section is None else {section: {key: value}}
    content["env_name"] = "point-robot"
    path = write_config(tmp_path, content)
    variant = load_config(path)
    dotted = key if section is None else f"{section}.{key}"
    message = error_message(validate, variant, path)
    assert_names(message, path, dotted, str(value))


def test_zero_steps_are_allowed_where_the_reference_uses_them(tmp_path):
    path = write_config(
        tmp_path,
        {"env_name": "point-robot", "algo_params": {"num_steps_posterior": 0, "num_evals": 1}},
    )
    validate(load_config(path), path)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.json")
    message = error_message(load_config, path)
    assert_names(message, path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, {"net_size": 64})

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)
    assert_names(error_message(load_config, path), path, "cannot read", "Permission denied")


def test_binary_file_or_folder_instead_of_a_config(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"\x80\x02\xff binary")
    assert_names(error_message(load_config, str(path)), str(path), "not UTF-8")
    assert_names(error_message(load_config, str(tmp_path)), str(tmp_path), "is a folder")


def test_malformed_json_names_line_and_column(tmp_path):
    path = write_config(tmp_path, '{\n  "net_size": 64,\n  "latent_size": ,\n  "x": 1\n}')
    message = error_message(load_config, path)
    assert_names(message, path, "line 3", "column 18")


def test_json_that_is_not_an_object(tmp_path):
    path = write_config(tmp_path, "[1, 2]")
    message = error_message(load_config, path)
    assert_names(message, path)


def test_unknown_env_lists_the_known_ones(tmp_path):
    path = write_config(tmp_path, {"env_name": "point-robto"})
    variant = load_config(path)
    message = error_message(validate, variant, path)
    assert_names(message, path, "env_name", "point-robto", "point-robot", "sparse-point-robot")


def test_embedding_mini_batch_larger_than_batch(tmp_path):
    content = {
        "env_name": "point-robot",
        "algo_params": {"embedding_batch_size": 32, "embedding_mini_batch_size": 64},
    }
    path = write_config(tmp_path, content)
    variant = load_config(path)
    message = error_message(validate, variant, path)
    assert_names(message, path, "embedding_mini_batch_size", "embedding_batch_size")
    # equal sizes are fine, and so is a smaller mini batch
    variant["algo_params"]["embedding_mini_batch_size"] = 32
    validate(variant, path)
    variant["algo_params"]["embedding_mini_batch_size"] = 8
    validate(variant, path)


def test_unknown_env_params_key(tmp_path):
    path = write_config(tmp_path, {"env_name": "point-robot", "env_params": {"n_taks": 5}})
    variant = load_config(path)
    message = error_message(validate, variant, path)
    assert_names(message, path, "env_params.n_taks", "did you mean 'env_params.n_tasks'")


def test_env_params_known_to_one_env_only(tmp_path):
    content = {"env_name": "sparse-point-robot", "env_params": {"goal_radius": 0.3}}
    path = write_config(tmp_path, content)
    validate(load_config(path), path)
    content["env_name"] = "point-robot"
    path = write_config(tmp_path, content, name="other.json")
    message = error_message(validate, load_config(path), path)
    assert_names(message, path, "env_params.goal_radius")


def test_validate_names_the_source_it_is_given():
    variant = point_robot_variant(env_name="no-such-env")
    message = error_message(validate, variant, "my/where.json")
    assert_names(message, "my/where.json", "no-such-env")


# ------------------------------------------------------------------ --set


def test_set_without_equals_sign():
    variant = point_robot_variant()
    message = error_message(apply_override, variant, "net_size")
    assert_names(message, "net_size", "=")
    assert "--set" in message


def test_set_parses_json_values():
    variant = point_robot_variant()
    apply_override(variant, "algo_params.num_iterations=3")
    apply_override(variant, "algo_params.recurrent=true")
    apply_override(variant, "algo_params.discount=0.5")
    apply_override(variant, "env_params.randomize_tasks=false")
    apply_override(variant, "util_params.seed=12")
    assert variant["algo_params"]["num_iterations"] == 3
    assert isinstance(variant["algo_params"]["num_iterations"], int)
    assert variant["algo_params"]["recurrent"] is True
    assert variant["algo_params"]["discount"] == 0.5
    assert variant["env_params"]["randomize_tasks"] is False
    assert variant["util_params"]["seed"] == 12
    # untouched neighbours stay
    assert variant["algo_params"]["max_path_length"] == 20
    assert variant["env_params"]["n_tasks"] == 100


def test_set_keeps_non_json_as_a_string():
    variant = point_robot_variant()
    apply_override(variant, "util_params.base_log_dir=some/dir")
    assert variant["util_params"]["base_log_dir"] == "some/dir"
    apply_override(variant, "env_name=sparse-point-robot")
    assert variant["env_name"] == "sparse-point-robot"
    apply_override(variant, 'util_params.base_log_dir="quoted dir"')
    assert variant["util_params"]["base_log_dir"] == "quoted dir"
    apply_override(variant, "util_params.base_log_dir=a=b")
    assert variant["util_params"]["base_log_dir"] == "a=b"


def test_set_unknown_key_names_the_expression():
    variant = point_robot_variant()
    message = error_message(apply_override, variant, "algo_params.batchsize=3")
    assert_names(message, "--set algo_params.batchsize=3", "did you mean 'algo_params.batch_size'")


def test_set_wrong_type_names_the_expression():
    variant = point_robot_variant()
    message = error_message(apply_override, variant, "algo_params.batch_size=abc")
    assert_names(message, "algo_params.batch_size=abc", "algo_params.batch_size")
    assert variant["algo_params"]["batch_size"] == 256


def test_set_a_whole_section_needs_an_object():
    variant = point_robot_variant()
    message = error_message(apply_override, variant, "algo_params=3")
    assert_names(message, "algo_params")
    apply_override(variant, 'algo_params={"batch_size": 8}')
    assert variant["algo_params"]["batch_size"] == 8
    assert variant["algo_params"]["num_train_steps_per_itr"] == 1000  # merged, not replaced


def test_learned_temperature_settings():
    """auto_alpha is a boolean; target_entropy null (-|A|) or any finite number; alpha_lr
    positive. Each bad value is one line naming the key."""
    variant = point_robot_variant()
    assert variant["algo_params"]["auto_alpha"] is False
    assert variant["algo_params"]["target_entropy"] is None
    apply_override(variant, "algo_params.auto_alpha=1")
    apply_override(variant, "algo_params.target_entropy=-3")
    apply_override(variant, "algo_params.alpha_lr=1e-3")
    validate(variant, "configs/point-robot.json")
    assert variant["algo_params"]["auto_alpha"] is True
    assert variant["algo_params"]["target_entropy"] == -3.0
    assert isinstance(variant["algo_params"]["target_entropy"], float)
    apply_override(variant, "algo_params.target_entropy=null")
    assert variant["algo_params"]["target_entropy"] is None
    for expression in ("algo_params.target_entropy=-Infinity", "algo_params.auto_alpha=2"):
        assert_names(error_message(apply_override, variant, expression), expression)
    for value in (0, -1e-3):
        apply_override(variant, f"algo_params.alpha_lr={value}")
        message = error_message(validate, variant, "configs/point-robot.json")
        assert_names(message, "configs/point-robot.json", "algo_params.alpha_lr", "positive")


def test_metaworld_evaluator_settings():
    """The evaluator's settings default to Meta-World's; episodes longer than Meta-World's 500
    steps, a negative count, and the evaluator on a pixel run are one line each."""
    variant = load_config(str(ROOT / "configs/metaworld-ml1-reach-quick.json"))
    algo = variant["algo_params"]
    assert (algo["metaworld_eval_every"], algo["metaworld_eval_num_evals"]) == (0, 10)
    assert algo["metaworld_eval_adaptation_episodes"] == 10
    assert algo["metaworld_eval_evaluation_episodes"] == 3
    where = "configs/metaworld-ml1-reach-quick.json"
    for expression, words in [
        ("algo_params.metaworld_eval_max_episode_steps=501", ("at most 500",)),
        ("algo_params.metaworld_eval_every=-1", ()),
        ("algo_params.metaworld_eval_adaptation_episodes=0", ()),
        ("pixels.enabled=true", ("pixels.enabled", "metaworld_eval_num_evals to 0")),
    ]:
        bad = load_config(str(ROOT / "configs/metaworld-ml1-reach-quick.json"))
        apply_override(bad, expression)
        key = expression.split("=")[0]
        assert_names(error_message(validate, bad, where), where, key, *words)
    apply_override(variant, "pixels.enabled=true")
    apply_override(variant, "algo_params.metaworld_eval_num_evals=0")
    validate(variant, where)


def test_set_then_validate_catches_a_negative_size():
    variant = point_robot_variant()
    apply_override(variant, "algo_params.batch_size=-1")
    message = error_message(validate, variant, "configs/point-robot.json")
    assert_names(message, "configs/point-robot.json", "algo_params.batch_size")


# ------------------------------------------------------------------ task counts


def test_task_counts_within_the_env():
    variant = point_robot_variant()
    check_task_counts(variant, TaskList(100), "x.json")
    # eval tasks are tasks[-n_eval_tasks:] and may overlap the train tasks
    variant = point_robot_variant(n_train_tasks=2, n_eval_tasks=2)
    check_task_counts(variant, TaskList(2), "x.json")


@pytest.mark.parametrize("key", ["n_train_tasks", "n_eval_tasks"])
def test_more_tasks_than_the_env_has(key):
    variant = point_robot_variant(**{key: 101})
    message = error_message(check_task_counts, variant, TaskList(100), "configs/point-robot.json")
    assert_names(message, "configs/point-robot.json", key, "101", "100")


@pytest.mark.parametrize(
    ("key", "count", "part"), [("n_train_tasks", 51, "train"), ("n_eval_tasks", 41, "test")]
)
def test_separate_train_and_test_tasks_bound_each_count(key, count, part):
    # 90 tasks: 50 train, then 40 test (Meta-World's task_split); each count from its own part
    variant = point_robot_variant(n_train_tasks=50, n_eval_tasks=40)
    check_task_counts(variant, TaskList(90, split=(50, 40)), "x.json")
    variant[key] = count
    message = error_message(check_task_counts, variant, TaskList(90, split=(50, 40)), "x.json")
    assert_names(message, "x.json", key, str(count), f"{50 if part == 'train' else 40} {part}")


def test_episode_limit_bounds_max_path_length():
    variant = point_robot_variant()
    variant["algo_params"]["max_path_length"] = 500
    check_task_counts(variant, TaskList(100, max_episode_steps=500), "x.json")
    variant["algo_params"]["max_path_length"] = 501
    message = error_message(
        check_task_counts, variant, TaskList(100, max_episode_steps=500), "x.json"
    )
    assert_names(message, "x.json", "algo_params.max_path_length", "501", "500")


@pytest.mark.parametrize(
    ("env_params", "key"),
    [
        ({"n_tasks": "many"}, "env_params.n_tasks"),
        ({"randomize_tasks": "yes"}, "env_params.randomize_tasks"),
        ({"goal_radius": "big"}, "env_params.goal_radius"),
    ],
)
def test_env_params_of_the_wrong_type(tmp_path, env_params, key):
    """Keys of the env's constructor that configs/default.py lacks (goal_radius) are checked
    against the constructor's default too, else the run dies later with a traceback."""
    path = write_config(tmp_path, {"env_name": "sparse-point-robot", "env_params": env_params})
    with pytest.raises(ConfigError) as info:
        validate(load_config(path), path)
    message = str(info.value)
    assert "\n" not in message
    assert_names(message, path, key)


# ------------------------------------------------------------------ output folder, --resume


def test_output_folder_may_be_created_under_a_writable_folder(tmp_path):
    check_output_folder(str(tmp_path / "not" / "yet"), "util_params.base_log_dir", "x.json")
    assert not (tmp_path / "not").exists()


def test_output_folder_with_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("")
    folder = str(tmp_path / "file" / "logs")
    message = error_message(check_output_folder, folder, "util_params.base_log_dir", "x.json")
    assert_names(message, "x.json", "util_params.base_log_dir", str(tmp_path / "file"), "not a")


def test_output_folder_without_write_permission(tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # root may write anywhere
    folder = str(tmp_path / "logs")
    message = error_message(check_output_folder, folder, "util_params.base_log_dir", "x.json")
    assert_names(message, "util_params.base_log_dir", "cannot write", str(tmp_path))


def test_resume_needs_a_run_folder(tmp_path):
    assert_names(error_message(load_run_config, str(tmp_path / "x")), "no such folder")
    assert_names(error_message(load_run_config, str(tmp_path)), str(tmp_path), "not a run")
    (tmp_path / "variant.json").write_text(json.dumps({"env_name": "point-robot"}))
    variant, where = load_run_config(str(tmp_path))
    assert variant["env_name"] == "point-robot" and where == str(tmp_path / "variant.json")


def test_resume_may_only_change_the_length_and_the_machine():
    variant = point_robot_variant()
    apply_resume_override(variant, "algo_params.num_iterations=900")
    apply_resume_override(variant, "util_params.gpu_id=1")
    apply_resume_override(variant, "util_params.cuda_graph=true")
    assert variant["algo_params"]["num_iterations"] == 900
    assert variant["util_params"]["cuda_graph"] is True
    message = error_message(apply_resume_override, variant, "algo_params.batch_size=8")
    assert_names(message, "--set algo_params.batch_size=8", "algo_params.num_iterations")
    assert variant["algo_params"]["batch_size"] == 256
    # the temperature's settings change the update, like the other algorithm settings
    for expression in (
        "algo_params.auto_alpha=true",
        "algo_params.target_entropy=-1",
        "algo_params.alpha_lr=1e-3",
    ):
        assert_names(error_message(apply_resume_override, variant, expression), expression)
    assert variant["algo_params"]["auto_alpha"] is False

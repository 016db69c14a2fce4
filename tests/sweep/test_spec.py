"""sweep.py's plan: grid and seed expansion, trial names, sweep files, and the one-line errors
(exit status 2) for bad input, all before Ray starts and before anything is written."""

import json

import pytest
from conftest import run_child

import sweep
from rlkit.launchers.config import ConfigError
from rlkit.sweep.spec import SweepSpec, expand, parse_grid, read_sweep_file
from rlkit.sweep.tune_runner import write_sweep_file

CONFIG = "configs/point-robot-quick.json"


def test_every_grid_combination_runs_with_every_seed(tmp_path):
    spec = SweepSpec(
        CONFIG,
        sets=["algo_params.num_iterations=4"],
        grid=parse_grid(["algo_params.kl_lambda=1,0.1", "algo_params.recurrent=false,true"]),
        seeds=[2, 5],
    )
    trials = expand(spec, tmp_path / "sweep")
    assert [t.name for t in trials] == [
        f"kl_lambda={k}_recurrent={r}_seed={s}"
        for k in ("1.0", "0.1")  # as the config takes the value: 1 is the float 1.0
        for r in ("false", "true")
        for s in (2, 5)
    ]
    assert [t.setting for t in trials[::2]] == [t.name.rsplit("_seed", 1)[0] for t in trials[::2]]
    for trial in trials:
        algo = trial.variant["algo_params"]
        assert algo["kl_lambda"] == trial.values["algo_params.kl_lambda"]
        assert algo["recurrent"] == trial.values["algo_params.recurrent"]
        assert type(algo["kl_lambda"]) is float and type(algo["recurrent"]) is bool
        assert algo["num_iterations"] == 4  # --set reaches every trial
        assert trial.variant["util_params"]["seed"] == trial.seed
        assert trial.variant["util_params"]["base_log_dir"] == str(tmp_path / "sweep")
        assert trial.variant["net_size"] == 64  # the config's own settings stay
    assert {t.seed for t in trials} == {2, 5}


def test_without_a_grid_trials_are_named_by_seed(tmp_path):
    trials = expand(SweepSpec(CONFIG, seeds=[0, 1]), tmp_path)
    assert [(t.name, t.setting) for t in trials] == [("seed=0", "all"), ("seed=1", "all")]


def test_keys_sharing_a_last_part_are_named_in_full(tmp_path):
    spec = SweepSpec(
        CONFIG,
        grid={"env_params.n_tasks": [100], "n_train_tasks": [40, 80]},
        seeds=[0],
    )
    names = [t.name for t in expand(spec, tmp_path)]
    assert names == ["n_tasks=100_n_train_tasks=40_seed=0", "n_tasks=100_n_train_tasks=80_seed=0"]
    short = sweep_names_of({"algo_params.max_path_length": [20], "env_params.max_path_length": []})
    assert short == ["algo_params.max_path_length", "env_params.max_path_length"]


def sweep_names_of(grid: dict) -> list[str]:
    from rlkit.sweep.spec import _short_names

    return list(_short_names(list(grid)).values())


def test_values_that_are_not_folder_names_are_made_safe(tmp_path):
    spec = SweepSpec(CONFIG, grid={"util_params.snapshot_mode": ["last", "gap"]}, seeds=[0])
    assert [t.name for t in expand(spec, tmp_path)][0] == "snapshot_mode=last_seed=0"
    weights = tmp_path / "w b"
    weights.mkdir()
    spec = SweepSpec(CONFIG, grid={"path_to_weights": [str(weights)]}, seeds=[0])
    (trial,) = expand(spec, tmp_path)
    assert "/" not in trial.name and " " not in trial.name


def test_a_sweep_file_holds_config_set_grid_seeds_and_metric(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps(
            {
                "description": "kl",
                "config": CONFIG,
                "set": {"algo_params.num_iterations": 3},
                "grid": {"algo_params.kl_lambda": [0.1, 1.0]},
                "seeds": [4],
                "metric": "AverageReturn_all_train_tasks",
            }
        )
    )
    spec = read_sweep_file(str(path))
    assert spec.config == CONFIG and spec.seeds == [4]
    assert spec.sets == ["algo_params.num_iterations=3"]
    assert spec.grid == {"algo_params.kl_lambda": [0.1, 1.0]}
    assert spec.metric == "AverageReturn_all_train_tasks"
    trials = expand(spec, tmp_path)
    assert [t.name for t in trials] == ["kl_lambda=0.1_seed=4", "kl_lambda=1.0_seed=4"]


def test_the_shipped_sweep_files_expand(tmp_path):
    from pathlib import Path

    files = sorted(Path("sweeps").glob("*.json"))
    assert len(files) >= 6  # three ablations, each with a quick CPU variant
    for path in files:
        trials = expand(read_sweep_file(str(path)), tmp_path)
        assert len({t.setting for t in trials}) >= 2, path  # an ablation compares settings
        assert len(trials) == len({t.name for t in trials})


def plan_error(tmp_path, capsys, *argv) -> str:
    """main(argv) must exit 2 with one `error:` line and write nothing."""
    storage = tmp_path / "storage"
    try:
        code = sweep.main([*argv, "--storage", str(storage)])
    except SystemExit as exit_:  # the argument parser's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not storage.exists() or not any(storage.rglob("*.json"))
    return lines[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([CONFIG, "--grid", "algo_params.kl_lamda=0.1,1"], "did you mean 'algo_params.kl_lambda'"),
        ([CONFIG, "--grid", "algo_params.kl_lambda=0.1,big"], "kl_lambda must be a number"),
        ([CONFIG, "--grid", "algo_params.kl_lambda"], "expected KEY=V1,V2"),
        ([CONFIG, "--grid", "algo_params.kl_lambda=0.1,,1"], "an empty value"),
        (
            [CONFIG, "--grid", "algo_params.kl_lambda=1", "algo_params.kl_lambda=2"],
            "given twice",
        ),
        ([CONFIG, "--grid", "n_train_tasks=200"], "more than the 100 tasks"),
        ([CONFIG, "--set", "algo_params.discount=2"], "discount must lie in [0, 1]"),
        ([CONFIG, "--set", "algo_params.context_source=x"], "context_source must be one of"),
        (
            [CONFIG, "--set", "algo_params.kl_lambda=1", "--grid", "algo_params.kl_lambda=1,2"],
            "also in the grid",
        ),
        ([CONFIG, "--seeds", "1", "1"], "a seed is given twice"),
        ([CONFIG, "--seeds", "-1"], "seeds are integers >= 0"),
        ([CONFIG, "--seeds", "x"], "invalid int value"),
        (["configs/nope.json"], "no such config file"),
        ([], "give a CONFIG or a sweep file"),
        ([CONFIG, "--name", "a/b"], "--name a/b: use letters"),
        ([CONFIG, "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
        ([CONFIG, "--max-failures", "-1"], "--max-failures must not be negative"),
        ([CONFIG, "--gpus-per-trial", "1.5"], "above 1 must be whole"),
        (["--resume", "--name", "never-ran"], "never-ran: not a sweep folder"),
        (["--resume"], "--resume needs --name NAME"),
        ([CONFIG, "--resume", "--seeds", "3"], "keeps its own settings"),
        (["--resume", "--name", "x", "--cpus-per-trial", "2"], "give no --cpus-per-trial"),
        ([CONFIG, "--address", "127.0.0.1:1"], "no Ray cluster answers there"),
        ([CONFIG, "--address", "nowhere"], "expected auto, HOST:PORT"),
        (["--summarize", "output/no-such-sweep"], "not a sweep folder"),
    ],
)
def test_bad_input_is_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert message in plan_error(tmp_path, capsys, *argv)


def test_a_bad_sweep_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"config": CONFIG, "grids": {}}))
    assert "unknown sweep-file key 'grids' (did you mean 'grid'?)" in plan_error(
        tmp_path, capsys, str(path)
    )
    path.write_text(json.dumps({"config": CONFIG, "grid": {"algo_params.kl_lambda": 0.1}}))
    assert "must be a non-empty list" in plan_error(tmp_path, capsys, str(path))


def test_an_existing_sweep_is_not_overwritten(tmp_path, capsys):
    existing = tmp_path / "storage" / "point-robot-quick"
    existing.mkdir(parents=True)
    (existing / "sweep.json").write_text("{}")
    code = sweep.main([CONFIG, "--storage", str(tmp_path / "storage")])
    err = capsys.readouterr().err
    assert code == 2 and "go on with it with --resume" in err
    assert (existing / "sweep.json").read_text() == "{}"


def test_a_resumed_sweep_runs_its_trials_as_before(tmp_path):
    storage = str(tmp_path)
    options = ["--storage", storage, "--cpus-per-trial", "2", "--max-failures", "0"]
    sweep_dir, record = sweep.plan(sweep.parse_args([CONFIG, *options]))
    expected = {"cpus_per_trial": 2.0, "gpus_per_trial": 0.0, "max_concurrent": None}
    assert record["run_options"] == {**expected, "max_failures": 0}
    write_sweep_file(sweep_dir, record)
    args = sweep.parse_args(["--resume", "--name", sweep_dir.name, "--storage", storage])
    assert sweep.plan(args) == (sweep_dir, record)
    assert (args.cpus_per_trial, args.max_failures, args.max_concurrent) == (2.0, 0, None)


def test_the_command_line_exits_2_without_a_traceback():
    result = run_child(["sweep.py", CONFIG, "--grid", "algo_params.kl_lambda=x"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: --grid algo_params.kl_lambda=x: algo_params.kl_lambda must be a number, got "x"'
    ]


def test_the_launcher_does_not_import_ray():
    code = "import launch_experiment, sys; print('ray' in sys.modules, 'rliable' in sys.modules)"
    result = run_child(["-c", code])
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_plan_refuses_an_unknown_env_before_ray(tmp_path):
    with pytest.raises(ConfigError, match="unknown env"):
        expand(SweepSpec(CONFIG, sets=["env_name=nope"]), tmp_path)

"""Learning-curve plots: pooling runs by config, the plotted mean and band, the PNG, the errors."""

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import band_edges, run_child
from matplotlib.image import imread
from matplotlib.ticker import EngFormatter

from rlkit.plot import group_runs, load_run, load_runs, main, plot_curves

COLUMNS = [
    "Z mean eval",
    "AverageTrainReturn_all_train_tasks",
    "AverageReturn_all_train_tasks",
    "AverageReturn_all_test_tasks",
    "Number of env steps total",
    "Train Time (s)",
    "Epoch",
]
VARIANT = {
    "env_name": "cheetah-vel",
    "net_size": 64,
    "algo_params": {"num_iterations": 6, "kl_lambda": 0.1},
    "util_params": {
        "base_log_dir": "output",
        "use_gpu": False,
        "gpu_id": 0,
        "debug": False,
        "docker": False,
        "seed": 0,
        "snapshot_mode": "last",
    },
}


def write_run(folder: Path, returns: list[float], **changes) -> Path:
    """A run folder with progress.csv (2000 env steps per iteration) and a variant.json.

    `changes` are dotted config keys (util_params.seed=1) set in the variant.
    """
    variant = copy.deepcopy(VARIANT)
    for dotted, value in changes.items():
        *parents, name = dotted.split(".")
        node = variant
        for parent in parents:
            node = node[parent]
        node[name] = value
    folder.mkdir(parents=True)
    (folder / "variant.json").write_text(json.dumps(variant))
    with open(folder / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for epoch, value in enumerate(returns):
            writer.writerow([0.5, value - 1, value + 1, value, 2000 * (epoch + 1), 3.0, epoch])
    return folder


@pytest.fixture
def experiment(tmp_path):
    """Config A (net_size 64) with 3 seeds and config B (net_size 128) with 2, 6 iterations."""
    rng = np.random.default_rng(0)
    returns = {name: rng.normal(size=(n, 6)).cumsum(axis=1) for name, n in [("A", 3), ("B", 2)]}
    a = [
        write_run(tmp_path / f"a{seed}", list(returns["A"][seed]), **{"util_params.seed": seed})
        for seed in range(3)
    ]
    b = [
        write_run(
            tmp_path / f"b{seed}",
            list(returns["B"][seed]),
            **{"util_params.seed": seed, "net_size": 128},
        )
        for seed in range(2)
    ]
    return {"A": a, "B": b, "returns": returns, "tmp": tmp_path}


def test_seeds_of_a_config_are_pooled_and_other_configs_kept_apart(experiment):
    groups = group_runs(load_runs([str(d) for d in experiment["A"] + experiment["B"]]))
    assert [[run.path for run in g.runs] for g in groups] == [experiment["A"], experiment["B"]]


@pytest.mark.parametrize(
    "change, pooled",
    [
        ({"util_params.base_log_dir": "elsewhere", "util_params.gpu_id": 3}, True),
        (
            {"util_params.use_gpu": True, "util_params.debug": True, "util_params.docker": True},
            True,
        ),
        ({"algo_params.kl_lambda": 1.0}, False),
        ({"util_params.snapshot_mode": "all"}, False),
    ],
)
def test_only_seed_and_machine_settings_are_ignored(tmp_path, change, pooled):
    first = write_run(tmp_path / "first", [1.0, 2.0])
    second = write_run(tmp_path / "second", [1.0, 2.0], **{"util_params.seed": 7, **change})
    groups = group_runs([load_run(first), load_run(second)])
    assert len(groups) == (1 if pooled else 2)


def test_lines_are_the_mean_over_seeds_and_bands_the_min_max(experiment):
    groups = group_runs(load_runs([str(d) for d in experiment["A"] + experiment["B"]]))
    fig = plot_curves(groups, "AverageReturn_all_test_tasks", experiment["tmp"] / "curves.png")
    ax = fig.axes[0]
    lines, bands = ax.get_lines(), ax.collections
    assert len(lines) == len(bands) == 2
    for line, band, name in zip(lines, bands, ["A", "B"], strict=True):
        returns = experiment["returns"][name]
        np.testing.assert_allclose(line.get_ydata(), returns.mean(axis=0))
        np.testing.assert_allclose(line.get_xdata(), 2000 * np.arange(1, 7))
        band_x, band_low, band_high = band_edges(band)
        np.testing.assert_allclose(band_x, line.get_xdata())
        np.testing.assert_allclose(band_low, returns.min(axis=0))
        np.testing.assert_allclose(band_high, returns.max(axis=0))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [
        "cheetah-vel (net_size=64), n=3 seeds",
        "cheetah-vel (net_size=128), n=2 seeds",
    ]
    assert ax.get_xlabel() == "environment steps"
    assert isinstance(ax.xaxis.get_major_formatter(), EngFormatter)
    assert ax.get_ylabel() == "average return, test tasks (online adaptation)"
    assert "min to max" in ax.get_title()


def test_runs_of_different_lengths_are_cut_to_the_shortest(tmp_path, capsys):
    long = write_run(tmp_path / "long", [1.0, 2.0, 3.0, 4.0, 5.0])
    short = write_run(tmp_path / "short", [3.0, 4.0, 5.0], **{"util_params.seed": 1})
    fig = plot_curves(group_runs(load_runs([long, short])), "Epoch", tmp_path / "epoch.png")
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), [0.0, 1.0, 2.0])
    assert fig.axes[0].get_ylabel() == "Epoch"
    warning = capsys.readouterr().err
    assert warning.startswith("warning:") and "5, 3 iterations" in warning
    assert "first 3" in warning


def test_a_half_written_last_row_is_ignored(tmp_path):
    run = write_run(tmp_path / "running", [1.0, 2.0])
    with open(run / "progress.csv", "a") as f:
        f.write("0.5,2.0,")
    assert len(load_run(run).rows) == 2


def test_the_png_is_written_and_not_blank(experiment, capsys):
    out = experiment["tmp"] / "curves.png"
    assert main([*map(str, experiment["A"] + experiment["B"]), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    pixels = imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 2


def test_the_default_output_is_in_the_first_run_folder_named_after_the_key(experiment, capsys):
    first = experiment["A"][0]
    assert main([str(first), "--key", "Train Time (s)"]) == 0
    expected = first / "Train_Time_s.png"
    assert capsys.readouterr().out.strip() == str(expected)
    assert expected.is_file()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "no such folder"),
        ("no progress.csv", "no progress.csv"),
        ("header only", "no rows"),
        ("empty file", "no rows"),
        ("unknown key", "did you mean 'AverageReturn_all_test_tasks'?"),
        ("unknown key, nothing close", "columns: Z mean eval, AverageTrainReturn"),
        ("output folder missing", "does not exist"),
        ("output not an image", "unknown image type; use one of"),
        ("same run twice", "given twice"),
    ],
)
def test_errors_are_one_line_with_status_2(experiment, capsys, case, message):
    run, tmp = str(experiment["A"][0]), experiment["tmp"]
    empty = tmp / "empty"
    empty.mkdir()
    (empty / "variant.json").write_text(json.dumps(VARIANT))
    argv = {
        "missing folder": [str(tmp / "nope")],
        "no progress.csv": [str(tmp)],
        "unknown key": [run, "--key", "AverageReturn_all_test"],
        "unknown key, nothing close": [run, "--key", "xyz"],
        "output folder missing": [run, "-o", str(tmp / "nope" / "x.png")],
        "output not an image": [run, "-o", str(tmp / "x.txt")],
        "same run twice": [run, run],
    }.get(case, [str(empty)])
    if case == "header only":
        (empty / "progress.csv").write_text(",".join(COLUMNS) + "\n")
    if case == "empty file":
        (empty / "progress.csv").write_text("")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert message in err


def test_the_command_line_exits_2_without_a_traceback(tmp_path):
    result = run_child(["-m", "rlkit.plot", tmp_path / "nope"])
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such folder\n"

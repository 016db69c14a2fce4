"""The sweep summary and the confidence band of rlkit.plot, against statistics computed here
independently (sorting and plain numpy resampling, no rliable)."""

import csv
import json
from dataclasses import asdict

import numpy as np
import pytest
from conftest import band_edges

import sweep
from rlkit.plot import group_runs, load_runs, plot_curves
from rlkit.stats import final_estimates
from rlkit.sweep.spec import SweepSpec, expand
from rlkit.sweep.summary import summarize

ITERATIONS = 5
METRIC = "AverageReturn_all_test_tasks"
X = "Number of env steps total"


def iqm(values) -> float:
    """The mean of the middle half: a quarter of the scores (rounded down) cut at each end."""
    ordered = np.sort(values)
    cut = int(len(ordered) * 0.25)
    return float(ordered[cut : len(ordered) - cut].mean())


def bootstrap_interval(values, reps=200_000, seed=123) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of the mean of resampled values."""
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(reps, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bootstrap_iqm_interval(values, reps=50_000, seed=7) -> tuple[float, float]:
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    samples = np.sort(values[rng.integers(len(values), size=(reps, len(values)))], axis=1)
    cut = int(len(values) * 0.25)
    stats = samples[:, cut : len(values) - cut].mean(axis=1)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def write_progress(folder, finals, n_rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([METRIC, X, "Epoch"])
        for epoch in range(n_rows):
            value = finals - (ITERATIONS - 1 - epoch)  # the last row holds the final value
            writer.writerow([value, 1000 * (epoch + 1), epoch])


@pytest.fixture
def sweep_folder(tmp_path):
    """Two settings of 8 seeds; one seed of the second stopped after 3 of its 5 iterations."""
    folder = tmp_path / "sw"
    spec = SweepSpec(
        "configs/point-robot-quick.json",
        sets=[f"algo_params.num_iterations={ITERATIONS}"],
        grid={"algo_params.kl_lambda": [0.1, 1.0]},
        seeds=list(range(8)),
    )
    trials = expand(spec, folder)
    rng = np.random.default_rng(0)
    finals = {"kl_lambda=0.1": rng.normal(-10, 3, 8), "kl_lambda=1.0": rng.exponential(5, 8)}
    for trial in trials:
        value = finals[trial.setting][trial.seed]
        unfinished = trial.setting == "kl_lambda=1.0" and trial.seed == 3
        write_progress(folder / trial.name, value, 3 if unfinished else ITERATIONS)
        (folder / trial.name / "variant.json").write_text(json.dumps(trial.variant))
    record = {"name": "sw", "spec": spec.to_json(), "trials": [asdict(t) for t in trials]}
    (folder / "sweep.json").write_text(json.dumps(record))
    return folder, finals


def test_summary_rows_against_an_independent_computation(sweep_folder):
    folder, finals = sweep_folder
    path, image, _ = summarize(folder)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["setting"] for r in rows] == ["kl_lambda=0.1", "kl_lambda=1.0"]
    assert [r["algo_params.kl_lambda"] for r in rows] == ["0.1", "1.0"]
    done = {
        "kl_lambda=0.1": finals["kl_lambda=0.1"],
        "kl_lambda=1.0": np.delete(finals["kl_lambda=1.0"], 3),
    }
    for row in rows:
        values = done[row["setting"]]
        assert int(row["seeds"]) == 8 and int(row["seeds_done"]) == len(values)
        assert int(row["env_steps"]) == 1000 * ITERATIONS and row["metric"] == METRIC
        assert float(row["mean"]) == pytest.approx(values.mean(), rel=1e-12)
        assert float(row["iqm"]) == pytest.approx(iqm(values), rel=1e-12)
        assert iqm(values) != pytest.approx(values.mean(), rel=1e-3)  # the trimming shows
        spread = values.max() - values.min()
        for name, expected in (
            ("mean", bootstrap_interval(values)),
            ("iqm", bootstrap_iqm_interval(values)),
        ):
            low, high = float(row[f"{name}_ci_low"]), float(row[f"{name}_ci_high"])
            assert low == pytest.approx(expected[0], abs=0.03 * spread), name
            assert high == pytest.approx(expected[1], abs=0.03 * spread), name
            assert low < float(row[name]) < high
    assert image is not None and image.stat().st_size > 10_000


def test_equal_seeds_give_a_zero_width_interval():
    estimates = final_estimates([2.5, 2.5, 2.5])
    assert estimates == {"mean": (2.5, 2.5, 2.5), "iqm": (2.5, 2.5, 2.5)}


def test_the_summary_command(sweep_folder, capsys):
    folder, _ = sweep_folder
    assert sweep.main(["--summarize", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "kl_lambda=1.0: 7/8 seeds done; mean " in out
    assert f"summary: {folder / 'summary.csv'}" in out
    assert sweep.main(["--summarize", str(folder), "--metric", "Epoch"]) == 0
    with open(folder / "summary.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["metric"] == "Epoch" and float(row["mean"]) == ITERATIONS - 1


def test_plot_band_ci_is_the_bootstrap_interval_of_the_mean(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(8, ITERATIONS)).cumsum(axis=1)
    folders = []
    for seed in range(8):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        variant = {"env_name": "point-robot", "util_params": {"seed": seed}}
        (folder / "variant.json").write_text(json.dumps(variant))
        with open(folder / "progress.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([METRIC, X])
            writer.writerows([v, 1000 * (i + 1)] for i, v in enumerate(values[seed]))
        folders.append(str(folder))
    fig = plot_curves(group_runs(load_runs(folders)), METRIC, tmp_path / "ci.png", band="ci")
    ax = fig.axes[0]
    (band,) = ax.collections
    _, low, high = band_edges(band)
    for i in range(ITERATIONS):
        expected = bootstrap_interval(values[:, i])
        spread = np.ptp(values[:, i])
        assert low[i] == pytest.approx(expected[0], abs=0.04 * spread)
        assert high[i] == pytest.approx(expected[1], abs=0.04 * spread)
        assert values[:, i].min() < low[i] < high[i] < values[:, i].max()  # not the min-max
    assert "95% bootstrap confidence interval" in ax.get_title()

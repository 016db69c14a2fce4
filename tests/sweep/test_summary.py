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


def summary_rows(folder) -> list[dict]:
    with open(folder / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


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
        assert int(row["seeds"]) == int(row["seeds_started"]) == 8
        assert int(row["seeds_finished"]) == len(values)
        assert row["seeds_diverged"] == row["seeds_failed"] == "0"
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
    assert (
        "kl_lambda=1.0: 8 seeds, 8 started, 7 finished, 0 diverged, 0 failed; "
        "pooled seeds 0 1 2 4 5 6 7: mean "
    ) in out
    assert out.rstrip().splitlines()[1].endswith("; not pooled: 3 (unfinished)")
    assert f"summary: {folder / 'summary.csv'}" in out
    assert sweep.main(["--summarize", str(folder), "--metric", "Epoch"]) == 0
    with open(folder / "summary.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["metric"] == "Epoch" and float(row["mean"]) == ITERATIONS - 1


def test_every_seed_left_out_is_named_with_its_reason(sweep_folder, capsys):
    """A diverged, a failed, a non-finite and a not-started seed: none pooled, each shown."""
    folder, finals = sweep_folder
    setting = "kl_lambda=0.1"
    logs = folder / "logs"
    logs.mkdir()
    # seed 1 stopped on a NaN loss after 2 iterations; seed 2 ran out of retries after 4
    write_progress(folder / f"{setting}_seed=1", finals[setting][1], 2)
    (logs / f"{setting}_seed=1.diverged").write_text("error: QF Loss became NaN or inf")
    write_progress(folder / f"{setting}_seed=2", finals[setting][2], 4)
    (logs / f"{setting}_seed=2.failed").write_text("")
    write_progress(folder / f"{setting}_seed=5", float("nan"), ITERATIONS)  # final value NaN
    for path in (folder / f"{setting}_seed=6").iterdir():  # never started
        path.unlink()
    (folder / f"{setting}_seed=6").rmdir()
    assert sweep.main(["--summarize", str(folder)]) == 0
    row = summary_rows(folder)[0]
    assert row["setting"] == setting
    assert (row["seeds"], row["seeds_started"], row["seeds_finished"]) == ("8", "7", "5")
    assert (row["seeds_diverged"], row["seeds_failed"]) == ("1", "1")
    assert row["pooled_seeds"] == "0 3 4 7"
    assert row["not_pooled"] == "1:diverged 2:failed 5:non-finite 6:not-started"
    pooled = finals[setting][[0, 3, 4, 7]]
    assert float(row["mean"]) == pytest.approx(pooled.mean(), rel=1e-12)
    assert float(row["iqm"]) == pytest.approx(iqm(pooled), rel=1e-12)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{setting}: 8 seeds, 7 started, 5 finished, 1 diverged, 1 failed; ")
    assert first.endswith("not pooled: 1 (diverged), 2 (failed), 5 (non-finite), 6 (not-started)")


def test_a_setting_with_no_seed_pooled_says_so(sweep_folder, capsys):
    folder, _ = sweep_folder
    for seed in range(8):
        write_progress(folder / f"kl_lambda=1.0_seed={seed}", float("inf"), ITERATIONS)
    assert sweep.main(["--summarize", str(folder)]) == 0
    rows = summary_rows(folder)
    assert rows[1]["pooled_seeds"] == "" and rows[1]["mean"] == ""
    assert rows[0]["pooled_seeds"] == "0 1 2 3 4 5 6 7"  # the other setting is untouched
    assert "8 finished, 0 diverged, 0 failed; no seed pooled; not pooled: 0 (non-finite)" in (
        capsys.readouterr().out
    )


def test_below_four_seeds_the_printout_says_the_iqm_is_the_mean(sweep_folder, capsys):
    folder, finals = sweep_folder
    for seed in range(3, 8):
        (folder / f"kl_lambda=0.1_seed={seed}" / "variant.json").unlink()
    assert sweep.main(["--summarize", str(folder)]) == 0
    iqm_of_three = float(summary_rows(folder)[0]["iqm"])
    assert iqm_of_three == pytest.approx(finals["kl_lambda=0.1"][:3].mean(), rel=1e-12)
    assert "(below 4 seeds the IQM trims nothing: it is the mean)" in capsys.readouterr().out


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

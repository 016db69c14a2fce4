"""A sweep's summary: summary.csv, one row per setting with its seeds pooled, and a
learning-curve PNG per sweep (the mean over seeds with its 95% confidence band).

A seed counts as done when its progress.csv has all num_iterations rows; the statistics pool
the done seeds' values of the metric at their last iteration (rlkit.stats: the mean, the
interquartile mean and their 95% stratified-bootstrap intervals, as rliable computes them).
"""

import csv
import json
import math
import re
from pathlib import Path

from rlkit.launchers.config import ConfigError
from rlkit.plot import X_COLUMN, Group, PlotError, Run, check_column, load_run, plot_curves
from rlkit.stats import final_estimates
from rlkit.sweep.tune_runner import read_sweep_file

SUMMARY_FILE = "summary.csv"
STATISTICS = ("mean", "mean_ci_low", "mean_ci_high", "iqm", "iqm_ci_low", "iqm_ci_high")


def _runs_of(sweep_dir: Path, trials: list[dict]) -> list[tuple[dict, Run | None]]:
    runs = []
    for trial in trials:
        try:
            runs.append((trial, load_run(sweep_dir / trial["name"])))
        except PlotError:  # not started, or no iteration finished yet
            runs.append((trial, None))
    return runs


def _is_done(trial: dict, run: Run | None) -> bool:
    return run is not None and len(run.rows) >= trial["variant"]["algo_params"]["num_iterations"]


def curve_file(sweep_dir: Path, metric: str) -> Path:
    return sweep_dir / (re.sub(r"[^\w.-]+", "_", metric).strip("_") + ".png")


def summarize(
    sweep_dir: str | Path, metric: str | None = None
) -> tuple[Path, Path | None, list[dict]]:
    """Write summary.csv (and the curves, once a seed is done) for `metric` (default: the
    sweep's); returns their paths and the rows."""
    sweep_dir = Path(sweep_dir)
    record = read_sweep_file(sweep_dir, "--summarize")
    metric = metric or record["spec"]["metric"]
    grid_keys = list(record["spec"]["grid"])
    settings: dict[str, list[tuple[dict, Run | None]]] = {}
    for trial, run in _runs_of(sweep_dir, record["trials"]):
        settings.setdefault(trial["setting"], []).append((trial, run))
    rows, groups, labels = [], [], []
    for setting, members in settings.items():
        done = [run for trial, run in members if _is_done(trial, run)]
        if done:
            try:
                check_column(done, metric)
                check_column(done, X_COLUMN)
            except PlotError as err:
                raise ConfigError(f"--metric {metric}: {err}") from None
        finals = [float(run.rows[-1][metric]) for run in done]
        row = {"setting": setting, **_values(members[0][0], grid_keys)}
        row["seeds"] = len(members)
        row["seeds_done"] = len(done)
        row["env_steps"] = int(float(done[0].rows[-1][X_COLUMN])) if done else ""
        row["metric"] = metric
        if finals and all(math.isfinite(v) for v in finals):
            estimates = final_estimates(finals)
            for name in ("mean", "iqm"):
                point, low, high = estimates[name]
                row.update({name: point, f"{name}_ci_low": low, f"{name}_ci_high": high})
        else:
            row.update(dict.fromkeys(STATISTICS, ""))
        rows.append(row)
        if done:
            groups.append(Group({}, done))
            labels.append(f"{setting}, n={len(done)} seed{'s' if len(done) > 1 else ''}")
    summary = sweep_dir / SUMMARY_FILE
    with open(summary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    image = None
    if groups:
        image = curve_file(sweep_dir, metric)
        plot_curves(groups, metric, image, band="ci", labels=labels)
    return summary, image, rows


def _values(trial: dict, grid_keys: list[str]) -> dict:
    return {key: json.dumps(trial["values"][key]) for key in grid_keys}

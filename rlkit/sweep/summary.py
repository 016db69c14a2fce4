"""A sweep's summary: summary.csv, one row per setting with its seeds pooled, and a
learning-curve PNG per sweep (the mean over seeds with its 95% confidence band).

Each seed of a setting is in one state: not started (no run folder yet), finished (its
progress.csv has all num_iterations rows), diverged (stopped on a non-finite loss; its trial
ended without retries), failed (out of retries), or unfinished (running, or its sweep was
killed). The statistics pool the finished seeds whose metric at the last iteration is finite
(rlkit.stats: the mean, the interquartile mean and their 95% stratified-bootstrap intervals,
as rliable computes them); every seed they leave out is named in the row with the reason, so
that no seed drops out of a setting unseen (a diverged seed left out without a word would
bias its setting upward).
"""

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from rlkit.launchers.config import ConfigError
from rlkit.plot import X_COLUMN, Group, PlotError, Run, check_column, load_run, plot_curves
from rlkit.stats import final_estimates
from rlkit.sweep.tune_runner import DIVERGED, FAILED, mark, read_sweep_file

SUMMARY_FILE = "summary.csv"
STATISTICS = ("mean", "mean_ci_low", "mean_ci_high", "iqm", "iqm_ci_low", "iqm_ci_high")


@dataclass
class Seed:
    """One trial of a setting, as its run folder and the sweep's marks show it."""

    seed: int
    state: str  # finished, diverged, failed, unfinished or not-started
    run: Run | None

    @property
    def started(self) -> bool:
        return self.state != "not-started"


def _seed_of(sweep_dir: Path, trial: dict) -> Seed:
    run_dir = sweep_dir / trial["name"]
    try:
        run = load_run(run_dir)
    except PlotError:  # not started, or no iteration finished yet
        run = None
    diverged, failed = (mark(sweep_dir, trial["name"], o) for o in (DIVERGED, FAILED))
    if run is not None and len(run.rows) >= trial["variant"]["algo_params"]["num_iterations"]:
        state = "finished"
    elif diverged.is_file():
        state = "diverged"
    elif failed.is_file():
        state = "failed"
    elif (run_dir / "variant.json").is_file():
        state = "unfinished"
    else:
        state = "not-started"
    return Seed(trial["seed"], state, run)


def curve_file(sweep_dir: Path, metric: str) -> Path:
    return sweep_dir / (re.sub(r"[^\w.-]+", "_", metric).strip("_") + ".png")


def summarize(
    sweep_dir: str | Path, metric: str | None = None
) -> tuple[Path, Path | None, list[dict]]:
    """Write summary.csv (and the curves, once a seed is pooled) for `metric` (default: the
    sweep's); returns their paths and the rows."""
    sweep_dir = Path(sweep_dir)
    record = read_sweep_file(sweep_dir, "--summarize")
    metric = metric or record["spec"]["metric"]
    grid_keys = list(record["spec"]["grid"])
    settings: dict[str, list[tuple[dict, Seed]]] = {}
    for trial in record["trials"]:
        settings.setdefault(trial["setting"], []).append((trial, _seed_of(sweep_dir, trial)))
    rows, groups, labels = [], [], []
    for setting, members in settings.items():
        seeds = [seed for _, seed in members]
        finished = [s for s in seeds if s.state == "finished"]
        if finished:
            try:
                check_column([s.run for s in finished], metric)
                check_column([s.run for s in finished], X_COLUMN)
            except PlotError as err:
                raise ConfigError(f"--metric {metric}: {err}") from None
        finals = {s.seed: float(s.run.rows[-1][metric]) for s in finished}
        pooled = [s for s in finished if math.isfinite(finals[s.seed])]
        left_out = [
            f"{s.seed}:{'non-finite' if s.state == 'finished' else s.state}"
            for s in seeds
            if s not in pooled
        ]
        row = {"setting": setting, **_values(members[0][0], grid_keys)}
        row["seeds"] = len(seeds)
        row["seeds_started"] = sum(s.started for s in seeds)
        for state in ("finished", "diverged", "failed"):
            row[f"seeds_{state}"] = sum(s.state == state for s in seeds)
        row["pooled_seeds"] = " ".join(str(s.seed) for s in pooled)
        row["not_pooled"] = " ".join(left_out)
        row["env_steps"] = int(float(pooled[0].run.rows[-1][X_COLUMN])) if pooled else ""
        row["metric"] = metric
        if pooled:
            estimates = final_estimates([finals[s.seed] for s in pooled])
            for name in ("mean", "iqm"):
                point, low, high = estimates[name]
                row.update({name: point, f"{name}_ci_low": low, f"{name}_ci_high": high})
        else:
            row.update(dict.fromkeys(STATISTICS, ""))
        rows.append(row)
        if pooled:
            groups.append(Group({}, [s.run for s in pooled]))
            labels.append(f"{setting}, n={len(pooled)} seed{'s' if len(pooled) > 1 else ''}")
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

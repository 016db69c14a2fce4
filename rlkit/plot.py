"""Learning curves from run folders: python -m rlkit.plot RUN_DIR [RUN_DIR ...] [-o FILE] [--key K].

This module owns reading finished (or running) run folders, output/<env_name>/<timestamp>/ with
progress.csv and variant.json, pooling the runs that share a config (they differ only in seed
and machine settings), and drawing one line per config: the mean over its runs against the
environment steps, with the min-max over runs shaded, or (`--band ci`) the 95% confidence
interval of the mean from a stratified bootstrap over the runs (rlkit.stats, rliable's
statistics). It draws with the Agg backend (no display).
"""

import argparse
import csv
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from rlkit.stats import StatisticsUnavailable, curve_interval

X_COLUMN = "Number of env steps total"
DEFAULT_KEY = "AverageReturn_all_test_tasks"
# util_params that say where and how a run ran, not what it learned
IGNORED_SETTINGS = ("seed", "base_log_dir", "gpu_id", "use_gpu", "debug", "docker")
COLUMN_LABELS = {
    "AverageReturn_all_test_tasks": "average return, test tasks (online adaptation)",
    "AverageReturn_all_train_tasks": "average return, train tasks (online adaptation)",
    "AverageTrainReturn_all_train_tasks": "average return, train tasks (posterior from buffer)",
}
USAGE_ERROR = 2
BANDS = {
    "minmax": "min to max over seeds",
    "ci": "95% bootstrap confidence interval of the mean",
}


class PlotError(Exception):
    """A problem with the command's input, reported as one `error:` line."""


@dataclass
class Run:
    path: Path
    variant: dict
    rows: list[dict[str, str]]

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0])

    def column(self, name: str) -> np.ndarray:
        """The values of one progress.csv column as floats, one per iteration."""
        try:
            return np.array([float(row[name]) for row in self.rows])
        except ValueError as err:
            raise PlotError(f"column '{name}' of {self.path / 'progress.csv'}: {err}") from None


@dataclass
class Group:
    """Runs of one config; `config` is their variant without IGNORED_SETTINGS."""

    config: dict
    runs: list[Run]


@dataclass
class Curve:
    label: str
    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_runs: int


def load_run(run_dir: str | Path) -> Run:
    """Read RUN_DIR/variant.json and RUN_DIR/progress.csv; PlotError if either is missing."""
    path = Path(run_dir)
    if not path.is_dir():
        raise PlotError(f"{path}: no such folder")
    progress = path / "progress.csv"
    if not progress.is_file():
        raise PlotError(f"{path}: no progress.csv (a run folder is output/<env_name>/<timestamp>/)")
    try:
        variant = json.loads((path / "variant.json").read_text())
    except FileNotFoundError:
        raise PlotError(f"{path}: no variant.json") from None
    except json.JSONDecodeError as err:
        raise PlotError(f"{path / 'variant.json'}: not valid JSON ({err})") from None
    with open(progress, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and None in rows[-1].values():
        rows.pop()  # a running experiment's last row, read while being written
    if not rows:
        raise PlotError(f"{progress}: no rows yet")
    return Run(path, variant, rows)


def load_runs(run_dirs: list[str]) -> list[Run]:
    """load_run for each folder; PlotError if a folder is given twice."""
    runs, seen = [], set()
    for run_dir in run_dirs:
        run = load_run(run_dir)
        if run.path.resolve() in seen:
            raise PlotError(f"{run.path}: given twice")
        seen.add(run.path.resolve())
        runs.append(run)
    return runs


def config_of(variant: dict) -> dict:
    """The variant without the settings that do not change what a run learns."""
    config = json.loads(json.dumps(variant))
    util = config.get("util_params", {})
    for name in IGNORED_SETTINGS:
        util.pop(name, None)
    return config


def group_runs(runs: list[Run]) -> list[Group]:
    """Pool the runs with equal configs, keeping the order in which configs first appear."""
    groups: dict[str, Group] = {}
    for run in runs:
        config = config_of(run.variant)
        identity = json.dumps(config, sort_keys=True)
        groups.setdefault(identity, Group(config, [])).runs.append(run)
    return list(groups.values())


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for name, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = json.dumps(value)
    return flat


def group_labels(groups: list[Group]) -> list[str]:
    """env_name, the dotted config keys that differ between the groups, and the run count."""
    flats = [_flatten(group.config) for group in groups]
    names = sorted({name for flat in flats for name in flat} - {"env_name"})
    differing = [name for name in names if len({flat.get(name) for flat in flats}) > 1]
    labels = []
    for group, flat in zip(groups, flats, strict=True):
        settings = ", ".join(f"{name}={flat.get(name, 'unset')}" for name in differing)
        label = str(group.config.get("env_name", "?"))
        if settings:
            label += f" ({settings})"
        n = len(group.runs)
        labels.append(f"{label}, n={n} seed{'s' if n > 1 else ''}")
    return labels


def check_column(runs: list[Run], name: str) -> None:
    """PlotError naming the closest column when some run's progress.csv lacks `name`."""
    for run in runs:
        if name not in run.columns:
            close = difflib.get_close_matches(name, run.columns, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(run.columns)}"
            raise PlotError(f"no column '{name}' in {run.path / 'progress.csv'}; {hint}")


def pool(group: Group, key: str, label: str, band: str = "minmax") -> Curve:
    """Mean of `key` over the group's runs, on the iterations all of them have, and its band:
    min-max over the runs, or the mean's 95% bootstrap confidence interval (`band` 'ci').

    Runs of different lengths are cut to the shortest, with a warning on stderr. The x value
    of an iteration is the mean env-step count over the runs (the same for runs of one config).
    """
    lengths = [len(run.rows) for run in group.runs]
    common = min(lengths)
    if len(set(lengths)) > 1:
        print(
            f"warning: {label}: runs have {', '.join(map(str, lengths))} iterations; "
            f"plotting the first {common}, which all of them have",
            file=sys.stderr,
        )
    values = np.stack([run.column(key)[:common] for run in group.runs])
    steps = np.stack([run.column(X_COLUMN)[:common] for run in group.runs])
    if band == "ci":
        try:
            low, high = curve_interval(values)
        except StatisticsUnavailable as err:
            raise PlotError(str(err)) from None
    else:
        low, high = values.min(axis=0), values.max(axis=0)
    return Curve(
        label=label,
        steps=steps.mean(axis=0),
        mean=values.mean(axis=0),
        low=low,
        high=high,
        n_runs=len(group.runs),
    )


def plot_curves(
    groups: list[Group],
    key: str,
    out_path: str | Path,
    band: str = "minmax",
    labels: list[str] | None = None,
) -> Figure:
    """Draw one mean line (and its band, BANDS) per group, labelled `labels` (default: the
    settings that differ), save it to out_path, return the figure."""
    runs = [run for group in groups for run in group.runs]
    check_column(runs, X_COLUMN)
    check_column(runs, key)
    labels = labels or group_labels(groups)
    curves = [pool(g, key, label, band) for g, label in zip(groups, labels, strict=True)]
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for curve in curves:
        (line,) = ax.plot(curve.steps, curve.mean, label=curve.label)
        if curve.n_runs > 1:
            ax.fill_between(curve.steps, curve.low, curve.high, color=line.get_color(), alpha=0.2)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel("environment steps")
    ax.set_ylabel(COLUMN_LABELS.get(key, key))
    ax.set_title(f"mean over seeds; shaded: {BANDS[band]}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out_path, dpi=120)
    return fig


def default_out_path(run_dir: str | Path, key: str) -> Path:
    """RUN_DIR/<key>.png with spaces, slashes and other odd characters made underscores."""
    stem = re.sub(r"[^\w.-]+", "_", key).strip("_")
    return Path(run_dir) / f"{stem}.png"


def check_out_path(out_path: Path) -> None:
    if not out_path.parent.is_dir():
        raise PlotError(f"{out_path}: folder {out_path.parent} does not exist")
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if out_path.suffix.lstrip(".").lower() not in formats:
        raise PlotError(f"{out_path}: unknown image type; use one of {', '.join(formats)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rlkit.plot",
        description="Plot learning curves; runs of the same config are pooled (mean, and "
        "min-max or a 95%% confidence interval).",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output/<env>/<time>/")
    parser.add_argument("-o", "--out", type=Path, help="image file (default RUN_DIR/<key>.png)")
    parser.add_argument(
        "--key", default=DEFAULT_KEY, help=f"progress.csv column to plot (default {DEFAULT_KEY})"
    )
    parser.add_argument(
        "--band",
        choices=tuple(BANDS),
        default="minmax",
        help="shaded band: min-max over seeds (default), or the mean's 95%% stratified-"
        "bootstrap confidence interval (needs rliable: the sweep extra)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 2 after printing one `error:` line on stderr."""
    args = parse_args(argv)
    out_path = args.out or default_out_path(args.run_dirs[0], args.key)
    try:
        runs = load_runs(args.run_dirs)
        check_out_path(out_path)
        plot_curves(group_runs(runs), args.key, out_path, args.band)
    except PlotError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    print(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

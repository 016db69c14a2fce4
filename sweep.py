"""Seeds x config grids on Ray Tune, one ordinary run folder per trial:

    python sweep.py CONFIG [--seeds 0 1 2] [--grid KEY=V1,V2 ...] [--set KEY=VALUE ...]
        [--name NAME] [--storage DIR] [--address ADDR] [--cpus-per-trial N]
        [--gpus-per-trial F] [--max-concurrent N] [--max-failures K] [--metric COLUMN]
    python sweep.py sweeps/X.json [options]      (a sweep file: config, set, grid, seeds)
    python sweep.py --resume --name NAME         (go on with a killed or stopped sweep)
    python sweep.py --summarize output/sweeps/NAME

Needs the sweep extra: pip install -e '.[sweep]'.
"""

import argparse
import datetime
import re
import sys
from dataclasses import asdict
from pathlib import Path

from rlkit.launchers.config import ConfigError

DEFAULT_STORAGE = "output/sweeps"
USAGE_ERROR = 2
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]*")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(USAGE_ERROR, f"error: {message} (see python sweep.py --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="python sweep.py",
        description="Run seeds x config grids of PEARL on Ray Tune, one run folder per trial "
        "under STORAGE/NAME, and summarize them (mean, IQM, 95%% bootstrap intervals).",
    )
    parser.add_argument("config", nargs="?", help="a config (configs/X.json) or a sweep file")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds per setting (default 0 1 2)")
    parser.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=V1,V2",
        help="a dotted config key and the values to try; every combination runs",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted config key in every trial, as launch_experiment.py --set",
    )
    parser.add_argument("--name", help="the sweep's name (default: the config file's name)")
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"where sweep folders go; on a cluster, a folder every node sees "
        f"(default {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT"
    )
    parser.add_argument("--cpus-per-trial", type=float, help="default 1")
    parser.add_argument("--gpus-per-trial", type=float, help="may be a fraction (default 0)")
    parser.add_argument("--max-concurrent", type=int, help="trials at once (default: all fit)")
    parser.add_argument("--max-failures", type=int, help="retries of a failed trial (default 2)")
    parser.add_argument("--metric", help="progress.csv column to summarize (default: the sweep's)")
    parser.add_argument("--resume", action="store_true", help="go on with the sweep NAME")
    parser.add_argument("--summarize", metavar="SWEEP_DIR", help="write the summary and exit")
    return parser.parse_args(argv)


# how the trials run: kept in sweep.json, so that a --resume runs them as before
RUN_OPTIONS = {
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
    "max_concurrent": None,
    "max_failures": 2,
}


def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_run_options(args: argparse.Namespace) -> None:
    """Fill in the defaults of the trials' run options and check them (not for --resume)."""
    for key, default in RUN_OPTIONS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    if not args.cpus_per_trial > 0:
        raise ConfigError(f"--cpus-per-trial must be positive, got {args.cpus_per_trial:g}")
    if not args.gpus_per_trial >= 0:
        raise ConfigError(f"--gpus-per-trial must not be negative, got {args.gpus_per_trial:g}")
    if args.gpus_per_trial > 1 and not args.gpus_per_trial.is_integer():
        raise ConfigError(f"--gpus-per-trial above 1 must be whole, got {args.gpus_per_trial:g}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must not be negative, got {args.max_failures}")


def plan(args: argparse.Namespace) -> tuple[Path, dict]:
    """The sweep folder and its record (spec and trials), all checked; nothing written."""
    from rlkit.sweep.spec import SweepSpec, check_seeds, expand, is_sweep_file, parse_grid
    from rlkit.sweep.spec import read_sweep_file as read_spec_file
    from rlkit.sweep.tune_runner import SWEEP_FILE, read_sweep_file

    name = args.name or (Path(args.config).stem if args.config else None)
    if name is None:
        what = "--resume needs --name NAME" if args.resume else "give a CONFIG or a sweep file"
        raise ConfigError(f"{what} (see python sweep.py --help)")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"--name {name}: use letters, digits and . _ = + - only")
    sweep_dir = Path(args.storage).absolute() / name
    if args.resume:
        plan_options = {"--grid": args.grid, "--seeds": args.seeds, "--set": args.sets}
        given = [option for option, value in plan_options.items() if value]
        given += ["--metric"] * bool(args.metric)
        given += [option_name(key) for key in RUN_OPTIONS if getattr(args, key) is not None]
        if given:
            raise ConfigError(
                f"--resume: a resumed sweep keeps its own settings ({sweep_dir / SWEEP_FILE}): "
                f"give no {', '.join(given)}"
            )
        record = read_sweep_file(sweep_dir, "--resume")
        for key, default in RUN_OPTIONS.items():  # also a sweep.json without run_options
            setattr(args, key, record.get("run_options", {}).get(key, default))
        return sweep_dir, record
    check_run_options(args)
    if (sweep_dir / SWEEP_FILE).exists():
        raise ConfigError(
            f"--name {name}: a sweep of that name is in {sweep_dir.parent}: "
            "go on with it with --resume, or give another --name"
        )
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"--name {name}: {sweep_dir} exists and is not a sweep folder")
    spec = read_spec_file(args.config) if is_sweep_file(args.config) else SweepSpec(args.config)
    if args.seeds:
        spec.seeds = check_seeds(args.seeds, "--seeds")
    spec.grid.update(parse_grid(args.grid))
    spec.sets += args.sets
    if args.metric:
        spec.metric = args.metric
    trials = expand(spec, sweep_dir)
    from rlkit.launchers.launcher import check_run_inputs

    checked = set()
    for trial in trials:  # the env's own checks (task counts, start weights), per setting
        if trial.setting not in checked:
            check_run_inputs(trial.variant, f"{args.config} (setting {trial.setting})")
            checked.add(trial.setting)
    record = {
        "name": name,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "spec": spec.to_json(),
        "run_options": {key: getattr(args, key) for key in RUN_OPTIONS},
        "trials": [asdict(trial) for trial in trials],
    }
    return sweep_dir, record


def print_summary(rows: list[dict], summary: Path, image: Path | None) -> None:
    for row in rows:
        counts = ", ".join(
            f"{row[f'seeds_{state}']} {state}"
            for state in ("started", "finished", "diverged", "failed")
        )
        pooled = row["pooled_seeds"].split()
        if not pooled:
            stats = "no seed pooled"
        else:
            stats = (
                f"pooled seed{'s' if len(pooled) > 1 else ''} {' '.join(pooled)}: "
                f"mean {row['mean']:.4g} [{row['mean_ci_low']:.4g}, {row['mean_ci_high']:.4g}]  "
                f"IQM {row['iqm']:.4g} [{row['iqm_ci_low']:.4g}, {row['iqm_ci_high']:.4g}]"
            )
            if len(pooled) < 4:
                stats += " (below 4 seeds the IQM trims nothing: it is the mean)"
        left_out = ", ".join(
            f"{seed} ({why})" for seed, why in (e.split(":", 1) for e in row["not_pooled"].split())
        )
        print(
            f"{row['setting']}: {row['seeds']} seed{'s' if row['seeds'] != 1 else ''}, "
            f"{counts}; {stats}" + (f"; not pooled: {left_out}" if left_out else "")
        )
    print(f"summary: {summary}" + (f", curves: {image}" if image else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from rlkit.stats import StatisticsUnavailable
        from rlkit.sweep.summary import summarize

        try:
            if args.summarize:
                summary, image, rows = summarize(args.summarize, args.metric)
                print_summary(rows, summary, image)
                return 0
            sweep_dir, record = plan(args)
            return run(args, sweep_dir, record)
        except StatisticsUnavailable as err:
            raise ConfigError(str(err)) from None
    except ImportError as err:
        print(f"error: {err.name} is missing: pip install -e '.[sweep]'", file=sys.stderr)
        return USAGE_ERROR
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR


def run(args: argparse.Namespace, sweep_dir: Path, record: dict) -> int:
    from rlkit.sweep.summary import summarize
    from rlkit.sweep.tune_runner import (
        DIVERGED,
        LOG_FOLDER,
        check_resources,
        done_mark,
        mark,
        run_tune,
        start_ray,
        write_sweep_file,
    )

    start_ray(args.address)
    check_resources(args.cpus_per_trial, args.gpus_per_trial)
    if not args.resume:
        write_sweep_file(sweep_dir, record)
    (sweep_dir / LOG_FOLDER).mkdir(exist_ok=True)
    print(f"sweep {record['name']}: {len(record['trials'])} trials in {sweep_dir}", flush=True)
    run_tune(
        sweep_dir,
        record["trials"],
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        resume=args.resume,
        metric=record["spec"]["metric"],
    )
    summary, image, rows = summarize(sweep_dir)
    print_summary(rows, summary, image)
    names = [trial["name"] for trial in record["trials"]]
    diverged = [name for name in names if mark(sweep_dir, name, DIVERGED).exists()]
    unfinished = [
        name for name in names if name not in diverged and not done_mark(sweep_dir, name).exists()
    ]
    if diverged:
        print(
            f"{len(diverged)} of {len(names)} trials diverged ({', '.join(diverged)}): a loss "
            f"became NaN or inf; not retried (their logs are in {sweep_dir / LOG_FOLDER})",
            file=sys.stderr,
        )
    if unfinished:
        print(
            f"{len(unfinished)} of {len(names)} trials did not finish "
            f"({', '.join(unfinished)}; their logs are in {sweep_dir / LOG_FOLDER}); go on with: "
            f"python sweep.py --resume --name {record['name']} --storage {sweep_dir.parent}",
            file=sys.stderr,
        )
    return 1 if diverged or unfinished else 0


if __name__ == "__main__":
    sys.exit(main())

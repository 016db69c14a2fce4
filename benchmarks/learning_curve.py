"""Learning benchmark: a config (default configs/point-robot-quick.json) trained per seed.

Prints, per iteration, the minutes of training so far (the run's own clock), the env steps and
the two returns that show learning, then the final figures:
  AverageReturn_all_test_tasks        online adaptation from the agent's own exploration
  AverageTrainReturn_all_train_tasks  posterior from encoder-buffer context
and, for Meta-World, the meta-test success rate (SuccessRate_all_test_tasks) and the
train-posterior one (TrainSuccessRate_all_train_tasks), with the mean of the last three
meta-test evaluations.

    python benchmarks/learning_curve.py [--config C] [--seeds 0 1 2] [--set KEY=VALUE ...]
"""

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_machine  # noqa: E402

from rlkit.launchers.config import apply_override, load_config, validate  # noqa: E402
from rlkit.launchers.launcher import prepare, run_experiment  # noqa: E402

TEST = "AverageReturn_all_test_tasks"
TRAIN = "AverageTrainReturn_all_train_tasks"
SUCCESS = "SuccessRate_all_test_tasks"
TRAIN_SUCCESS = "TrainSuccessRate_all_train_tasks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/point-robot-quick.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--base-log-dir", default="output/benchmarks")
    args = parser.parse_args()

    print_machine()
    finals = []
    for seed in args.seeds:
        variant = load_config(args.config)
        for expression in [*args.overrides, f"util_params.seed={seed}"]:
            apply_override(variant, expression)
        apply_override(variant, f"util_params.base_log_dir={args.base_log_dir}")
        validate(variant, args.config)
        prepare(variant, args.config)
        start = time.perf_counter()
        run_dir = run_experiment(variant)
        wall = time.perf_counter() - start
        rows = list(csv.DictReader(open(run_dir / "progress.csv")))
        print(f"\nseed {seed}: {run_dir}")
        success = SUCCESS in rows[0]
        header = f"{'iter':>4} {'minutes':>8} {'env steps':>10} {'test':>8} {'train-posterior':>16}"
        print(
            header + (f" {'test success':>13} {'train-posterior success':>24}" if success else "")
        )
        for row in rows:
            minutes = float(row["Total Train Time (s)"]) / 60
            steps = int(float(row["Number of env steps total"]))
            test, train = float(row[TEST]), float(row[TRAIN])
            line = f"{row['Epoch']:>4} {minutes:8.1f} {steps:10d} {test:8.2f} {train:16.2f}"
            if success:
                line += f" {float(row[SUCCESS]):13.2f} {float(row[TRAIN_SUCCESS]):24.2f}"
            print(line)
        if success:
            last3 = [float(row[SUCCESS]) for row in rows[-3:]]
            print(f"mean meta-test success of the last {len(last3)} evaluations: ", end="")
            print(f"{sum(last3) / len(last3):.3f}")
        tests = [float(row[TEST]) for row in rows]
        trains = [float(row[TRAIN]) for row in rows]
        finals.append((seed, tests, trains, wall))
    print("\nper seed: test and train-posterior returns of the last iteration, their means over")
    print("the last 10 iterations, and the wall-clock minutes of the whole run")
    print(f"{'seed':>4} {'test':>8} {'train':>8} {'test~10':>8} {'train~10':>9} {'minutes':>8}")
    for seed, tests, trains, wall in finals:
        mean_test, mean_train = (
            sum(tests[-10:]) / len(tests[-10:]),
            sum(trains[-10:]) / len(trains[-10:]),
        )
        print(
            f"{seed:>4} {tests[-1]:8.2f} {trains[-1]:8.2f} {mean_test:8.2f} {mean_train:9.2f}"
            f" {wall / 60:8.1f}"
        )


if __name__ == "__main__":
    main()

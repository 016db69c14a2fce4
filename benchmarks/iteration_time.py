"""Seconds per PEARL iteration, split into sampling, training and evaluation, and the env steps
per second of collection and of evaluation.

Runs a config (default configs/cheetah-vel.json) for 2 iterations with fewer meta-gradient
steps per iteration (--train-steps, default 100): iteration 0 includes the initial collection
(num_initial_steps on every train task), iteration 1 is a steady-state iteration.

Then the same two iterations with the per-task-loop baseline (benchmarks/baseline.py: one env
at a time, the reference-style meta-gradient step), the ratio of the times (--skip-baseline
leaves it out), and both estimated for a steady-state iteration of the config's full length
(the same sampling and evaluation, the training time scaled to num_train_steps_per_itr).

    python benchmarks/iteration_time.py [--config C] [--train-steps 100] [--set KEY=VALUE ...]
                                        [--skip-baseline]
"""

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import per_task_loops  # noqa: E402
from machine import print_machine  # noqa: E402

from rlkit.launchers.config import apply_override, load_config, validate  # noqa: E402
from rlkit.launchers.launcher import prepare, run_experiment  # noqa: E402


def evaluation_steps(variant: dict) -> int:
    """Env steps of one evaluation (SPEC section 4): buffer-posterior trajectories on as many
    train tasks as eval tasks, then num_evals online runs on those and on the eval tasks."""
    algo = variant["algo_params"]
    n = variant["n_eval_tasks"]
    per_eval = algo["num_steps_per_eval"]
    buffer_posterior = n * (per_eval // algo["max_path_length"]) * algo["max_path_length"]
    return buffer_posterior + 2 * n * algo["num_evals"] * per_eval


def run_two_iterations(args, variant: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as base:
        for expression in [
            f"algo_params.num_train_steps_per_itr={args.train_steps}",
            "algo_params.num_iterations=2",
            "util_params.seed=0",
            f"util_params.base_log_dir={base}",
            *args.overrides,
        ]:
            apply_override(variant, expression)
        validate(variant, args.config)
        prepare(variant, args.config)
        run_dir = run_experiment(variant)
        return list(csv.DictReader(open(run_dir / "progress.csv")))


def full_iteration_seconds(row: dict, train_steps: int, full_steps: int) -> float:
    """An iteration's seconds with `full_steps` meta-gradient steps instead of `train_steps`:
    the same sampling and evaluation, the training time scaled."""
    sample, train = float(row["Sample Time (s)"]), float(row["Train Time (s)"])
    evaluation = float(row["Epoch Time (s)"]) - sample - train
    return sample + evaluation + train * full_steps / train_steps


def print_table(rows: list[dict], eval_steps: int, train_steps: int) -> list[float]:
    """The per-iteration split; returns each iteration's total seconds."""
    header = f"{'iteration':>9} {'sample s':>9} {'train s':>8} {'eval s':>7} {'total s':>8}"
    print(header + f" {'collection steps/s':>19} {'evaluation steps/s':>19} {'train steps/s':>14}")
    previous_steps = 0
    totals = []
    for i, row in enumerate(rows):
        sample, train = float(row["Sample Time (s)"]), float(row["Train Time (s)"])
        total = float(row["Epoch Time (s)"])
        evaluation = total - sample - train
        steps = int(float(row["Number of env steps total"]))
        collected, previous_steps = steps - previous_steps, steps
        print(
            f"{i:>9} {sample:9.1f} {train:8.1f} {evaluation:7.1f} {total:8.1f}"
            f" {collected / sample:19.0f} {eval_steps / evaluation:19.0f}"
            f" {train_steps / train:14.2f}"
        )
        totals.append(total)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cheetah-vel.json")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    print_machine()
    variant = load_config(args.config)
    full_steps = variant["algo_params"]["num_train_steps_per_itr"]  # before --train-steps
    rows = run_two_iterations(args, variant)
    eval_steps = evaluation_steps(variant)
    device = "cuda" if variant["util_params"]["use_gpu"] and torch.cuda.is_available() else "cpu"
    graph = " (steps replayed from a CUDA graph)" if variant["util_params"]["cuda_graph"] else ""
    print(
        f"\n{args.config}, {args.train_steps} meta-gradient steps per iteration, "
        f"device {device}{graph}"
    )
    totals = print_table(rows, eval_steps, args.train_steps)
    if args.skip_baseline:
        return
    with per_task_loops():
        baseline_rows = run_two_iterations(args, load_config(args.config))
    print("\nper-task-loop baseline (one env at a time, reference-style meta-gradient step):")
    baseline_totals = print_table(baseline_rows, eval_steps, args.train_steps)
    for i, (ours, theirs) in enumerate(zip(totals, baseline_totals, strict=True)):
        print(f"iteration {i}: {theirs / ours:.2f}x faster than the baseline")
    ours, theirs = (
        full_iteration_seconds(r[-1], args.train_steps, full_steps) for r in (rows, baseline_rows)
    )
    print(
        f"a steady-state iteration of the config ({full_steps} meta-gradient steps), from the "
        f"rates of iteration {len(rows) - 1}: {ours:.1f} s, baseline {theirs:.1f} s, "
        f"{theirs / ours:.2f}x"
    )


if __name__ == "__main__":
    main()

"""What a sweep costs over plain runs, measured side by side in one run of this script:

  Ray start-up      the seconds sweep.py spends before its first trial starts: a local Ray
                    instance started and stopped (ray.init, ray.shutdown), in a fresh process
  per trial         sweeps of 1 and of N one-iteration tiny trials, one at a time: the slope
                    is the time per trial, set against a plain launch_experiment.py run of the
                    same; the intercept is what a sweep costs once (Ray, checks, summary)
  throughput        two trials of the quick point-robot config (--iterations of them) as a
                    sweep on 1 CPU each, side by side, against the same two runs of
                    launch_experiment.py one after the other with all the machine's threads;
                    the ratio is (runs in turn) / (sweep): 1.0 = as fast, above = faster

    python benchmarks/sweep_overhead.py [--iterations 20] [--trials 4] [--only ...]

Run it on an idle machine: the figures are wall-clock times.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import print_machine  # noqa: E402

TINY = [
    "net_size=16",
    "n_train_tasks=6",
    "n_eval_tasks=4",
    "env_params.n_tasks=10",
    "algo_params.num_iterations=1",
    "algo_params.num_train_steps_per_itr=3",
    "algo_params.num_initial_steps=20",
    "algo_params.num_steps_prior=20",
    "algo_params.num_extra_rl_steps_posterior=20",
    "algo_params.num_tasks_sample=2",
    "algo_params.meta_batch=4",
    "algo_params.batch_size=16",
    "algo_params.embedding_batch_size=8",
    "algo_params.embedding_mini_batch_size=8",
    "algo_params.num_steps_per_eval=40",
]


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def set_args(expressions: list[str]) -> list[str]:
    return [arg for expression in expressions for arg in ("--set", expression)]


def ray_start_up() -> float:
    code = (
        "import time, logging; t = time.perf_counter(); import ray; "
        "ray.init(include_dashboard=False, logging_level=logging.WARNING); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(result.stdout.strip().splitlines()[-1])


def env_steps(run_dir: Path) -> int:
    with open(run_dir / "progress.csv", newline="") as f:
        return int(float(list(csv.DictReader(f))[-1]["Number of env steps total"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--only", choices=("overhead", "throughput"))
    args = parser.parse_args()
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        if args.only != "throughput":
            start_up = sum(ray_start_up() for _ in range(3)) / 3
            print(f"Ray start-up (init + shutdown, mean of 3): {start_up:.2f} s")
            seeds = [str(s) for s in range(args.trials)]
            plain = sum(
                timed(
                    [
                        "launch_experiment.py",
                        "configs/point-robot.json",
                        "--seed",
                        seed,
                        *set_args([*TINY, f"util_params.base_log_dir={work / 'plain'}"]),
                    ]
                )
                for seed in seeds
            ) / len(seeds)
            sweeps = {}
            for n in (1, args.trials):
                sweeps[n] = timed(
                    [
                        "sweep.py",
                        "configs/point-robot.json",
                        "--storage",
                        str(work),
                        "--name",
                        f"tiny{n}",
                        "--max-concurrent",
                        "1",
                        "--seeds",
                        *seeds[:n],
                        *set_args(TINY),
                    ]
                )
            per_trial = (sweeps[args.trials] - sweeps[1]) / (args.trials - 1)
            fixed = sweeps[1] - per_trial
            print(
                f"tiny one-iteration runs, one at a time: plain {plain:.1f} s each; sweep of 1 "
                f"trial {sweeps[1]:.1f} s, of {args.trials} trials {sweeps[args.trials]:.1f} s: "
                f"{per_trial:.1f} s per trial ({per_trial - plain:.1f} s more than a plain run), "
                f"{fixed:.1f} s once per sweep (Ray start-up, checks, summary)"
            )
        if args.only != "overhead":
            quick = ["configs/point-robot-quick.json"]
            iterations = f"algo_params.num_iterations={args.iterations}"
            in_turn = sum(
                timed(
                    [
                        "launch_experiment.py",
                        *quick,
                        "--seed",
                        seed,
                        *set_args([iterations, f"util_params.base_log_dir={work / 'turn'}"]),
                    ]
                )
                for seed in ("0", "1")
            )
            steps = sum(env_steps(p) for p in (work / "turn" / "point-robot").iterdir())
            side = timed(
                [
                    "sweep.py",
                    *quick,
                    "--storage",
                    str(work),
                    "--name",
                    "quick",
                    "--cpus-per-trial",
                    "1",
                    "--seeds",
                    "0",
                    "1",
                    *set_args([iterations]),
                ]
            )
            print(
                f"two point-robot-quick runs of {args.iterations} iterations ({steps} env steps "
                f"in all): one after the other {in_turn:.1f} s ({steps / in_turn:.0f} steps/s), "
                f"sweep side by side {side:.1f} s ({steps / side:.0f} steps/s); "
                f"throughput ratio {in_turn / side:.2f}x"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

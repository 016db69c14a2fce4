"""One sweep trial's process: python -m rlkit.sweep.trial RUN_DIR --device cpu|cuda, with the
trial's variant (JSON) on stdin.

A new trial is an ordinary new run written into RUN_DIR; a trial that was retried, or whose
sweep is resumed, finds RUN_DIR/variant.json and continues from RUN_DIR/checkpoint.pt with the
run's own settings, as `launch_experiment.py --resume RUN_DIR` does. The exit status: 0 done,
2 a bad config or checkpoint, 3 a diverged loss (the launcher's 1 is also Python's own status
for a crash, which is retried where a divergence is not), 130 stopped.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from rlkit.launchers.config import (
    ConfigError,
    apply_override,
    apply_resume_override,
    load_run_config,
    validate,
)

EXIT_TRIAL_DIVERGED = 3


def device_overrides(device: str) -> list[str]:
    """The device Ray gave the trial: with a GPU, CUDA_VISIBLE_DEVICES holds just its own, so
    the run uses device 0."""
    if device == "cuda":
        return ["util_params.use_gpu=true", "util_params.gpu_id=0"]
    return ["util_params.use_gpu=false"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlkit.sweep.trial")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    threads = os.environ.get("OMP_NUM_THREADS")
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from rlkit.launchers.launcher import (
        EXIT_DIVERGED,
        RunStopped,
        prepare,
        prepare_resume,
        run_experiment,
    )

    run_dir = args.run_dir
    try:
        if (run_dir / "variant.json").is_file():  # retried or resumed: the run's own settings
            variant, where = load_run_config(str(run_dir))
            for expression in device_overrides(args.device):
                apply_resume_override(variant, expression)
            validate(variant, where)
            run_experiment(variant, run_dir, prepare_resume(str(run_dir), variant, where))
        else:
            variant, where = json.loads(sys.stdin.read()), f"trial {run_dir.name}"
            for expression in device_overrides(args.device):
                apply_override(variant, expression)
            if threads:  # recorded, so that the trial's variant.json reproduces its rows
                apply_override(variant, f"util_params.num_threads={threads}")
            validate(variant, where)
            run_experiment(prepare(variant, where), new_dir=run_dir)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunStopped as err:
        print(str(err), file=sys.stderr)
        return EXIT_TRIAL_DIVERGED if err.exit_code == EXIT_DIVERGED else err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

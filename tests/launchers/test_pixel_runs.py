"""Pixel runs end to end through launch_experiment.py: each shipped pixel config runs one tiny
iteration, a SIGKILLed pixel run resumes to the uninterrupted rows with its frames stored as
uint8, and bad pixel settings stop with one line before anything is written."""

import csv
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import ROOT, TIME_COLUMNS, run_child, tiny_overrides
from test_resume import WRAPPER

from rlkit.core.checkpoint import DATA_FOLDER

CONFIGS = {
    "point-robot-pixels-quick": "configs/point-robot-pixels-quick.json",
    "sparse-point-robot-pixels": "configs/sparse-point-robot-pixels.json",
    "cheetah-vel-pixels": "configs/cheetah-vel-pixels.json",
    "cheetah-dir-pixels": "configs/cheetah-dir-pixels.json",
}
ITERATIONS = 4


def sets(expressions) -> list[str]:
    return [arg for expression in expressions for arg in ("--set", expression)]


def tiny(base_dir, iterations=1, *extra) -> list[str]:
    # 20-step paths, and as few extra-RL steps as prior ones: the cheetah configs' 600-1000
    # would render that many frames per task and take half of each run's time
    short = ["algo_params.max_path_length=20", "algo_params.num_extra_rl_steps_posterior=20"]
    return sets([*tiny_overrides(base_dir, iterations), *short, *extra])


def only_run(base_dir):
    (env_folder,) = base_dir.iterdir()
    (run_dir,) = env_folder.iterdir()
    return run_dir


def rows(run_dir, with_time=False):
    with open(run_dir / "progress.csv", newline="") as f:
        found = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if with_time or k not in TIME_COLUMNS} for r in found]


def resume_chain(folder):
    """A pixel point-robot run killed (SIGKILL) at its 2nd meta-gradient step of iteration
    2, then resumed; and the same run uninterrupted."""
    wrapper = folder / "wrapper.py"
    wrapper.write_text(WRAPPER)
    args = ["configs/point-robot.json", "--seed", "3"]
    pixel = ["pixels.enabled=true", "pixels.size=16", "pixels.frame_stack=2"]
    pixel += ["pixels.conv_layers=2", "pixels.conv_filters=4"]
    killed_base, plain_base = folder / "killed", folder / "plain"
    killed = run_child([wrapper, "training", 8, "SIGKILL", *args, *tiny(killed_base, 4, *pixel)])
    resumed = run_child(["launch_experiment.py", "--resume", only_run(killed_base)])
    plain = run_child(["launch_experiment.py", *args, *tiny(plain_base, 4, *pixel)])
    return killed, resumed, plain, only_run(killed_base), only_run(plain_base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pool = ThreadPoolExecutor(max_workers=2)

    def one_iteration(name):
        base = tmp_path_factory.mktemp(name)
        tasks = ["n_train_tasks=2", "n_eval_tasks=2"] if name == "cheetah-dir-pixels" else []
        args = ["launch_experiment.py", CONFIGS[name], "--seed", "0", *tiny(base, 1, *tasks)]
        return run_child(args), base

    started = {name: pool.submit(one_iteration, name) for name in CONFIGS}
    started["resume"] = pool.submit(resume_chain, tmp_path_factory.mktemp("resume"))
    yield {name: future.result for name, future in started.items()}
    pool.shutdown(wait=True)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_pixel_config_runs_one_tiny_iteration(runs, name):
    result, base = runs[name]()
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run(base)
    assert len(rows(run_dir)) == 1
    variant = json.loads((run_dir / "variant.json").read_text())
    shipped = json.loads((ROOT / CONFIGS[name]).read_text())["pixels"]
    assert variant["pixels"]["enabled"] is True
    assert all(variant["pixels"][k] == v for k, v in shipped.items())
    for network in ("trunk", "target_trunk", "policy", "context_encoder"):
        assert (run_dir / f"{network}.pth").is_file(), network
    (data_file, *_) = sorted((run_dir / DATA_FOLDER).iterdir())
    frames = torch.load(data_file)["frames"]
    size, stack = variant["pixels"]["size"], variant["pixels"]["frame_stack"]
    channels = 1 if variant["pixels"]["grayscale"] else 3
    assert frames.dtype == torch.uint8 and frames.shape[1:] == (channels, size, size)
    assert stack >= 1


def test_a_killed_pixel_run_resumes_to_the_uninterrupted_rows(runs):
    killed, resumed, plain, run_dir, plain_dir = runs["resume"]()
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "resumed after iteration 1: continuing with iteration 2" in (
        (run_dir / "debug.log").read_text()
    )
    assert rows(run_dir) == rows(plain_dir)
    assert len(rows(run_dir)) == ITERATIONS
    for name in ("trunk", "target_trunk", "qf1", "policy"):
        got, expected = (torch.load(d / f"{name}.pth") for d in (run_dir, plain_dir))
        assert all(torch.equal(got[k], expected[k]) for k in expected), name


@pytest.mark.parametrize(
    "expressions, words",
    [
        (["pixels.size=8"], "pixels.size 8 is too small for 4 conv layers"),
        (["pixels.frame_stack=0"], "pixels.frame_stack must be at least 1"),
        (["algo_params.recurrent=true"], "pixels.enabled with algo_params.recurrent"),
        (["pixels.augment_pad=8", "pixels.size=16", "pixels.conv_layers=2"], "augment_pad 8"),
        (["pixels.camera=top"], "pixels.camera: the point robots are drawn"),
    ],
    ids=["too-small", "no-frames", "recurrent", "big-shift", "camera"],
)
def test_bad_pixel_settings_stop_with_one_line_and_write_nothing(tmp_path, expressions, words):
    base = tmp_path / "out"
    args = ["configs/point-robot.json", *sets([f"util_params.base_log_dir={base}"])]
    result = run_child(
        ["launch_experiment.py", *args, *sets(["pixels.enabled=true", *expressions])]
    )
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line, line
    assert not base.exists()


def test_a_mujoco_pixel_run_without_offscreen_gl_stops_with_one_line(tmp_path):
    base = tmp_path / "out"
    args = ["configs/cheetah-vel-pixels.json", *sets([f"util_params.base_log_dir={base}"])]
    result = run_child(["launch_experiment.py", *args], env={"MUJOCO_GL": "disable"})
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert "pixels.enabled: MuJoCo cannot render with MUJOCO_GL=disable" in line, line
    assert not base.exists()

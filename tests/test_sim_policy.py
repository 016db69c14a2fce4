"""sim_policy.py on tiny trained runs: the per-trajectory report, the snapshot choice, the
pictures and the video, and clean errors."""

import json
import re
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import run_child
from matplotlib.image import imread

from rlkit.envs import ENVS

TINY = [
    "net_size=16",
    "algo_params.num_train_steps_per_itr=2",
    "algo_params.num_initial_steps=20",
    "algo_params.num_steps_prior=20",
    "algo_params.num_extra_rl_steps_posterior=20",
    "algo_params.num_tasks_sample=2",
    "algo_params.meta_batch=2",
    "algo_params.batch_size=8",
    "algo_params.embedding_batch_size=8",
    "algo_params.embedding_mini_batch_size=8",
    "algo_params.num_steps_per_eval=40",
    "algo_params.max_path_length=20",
    "util_params.use_gpu=false",
]
# name: (config, extra --set expressions)
RUNS = {
    "sparse-point": (
        "configs/sparse-point-robot.json",
        ["n_train_tasks=4", "n_eval_tasks=2", "util_params.snapshot_mode=all"],
    ),
    "cheetah": ("configs/cheetah-dir.json", []),
    # 5 eval tasks, one of each held-out class: the video's env switches class between them
    # Meta-World's evaluator on 20-step episodes
    "ml10": (
        "configs/metaworld-ml10.json",
        [
            "n_train_tasks=10",
            "n_eval_tasks=5",
            "algo_params.metaworld_eval_num_evals=1",
            "algo_params.metaworld_eval_adaptation_episodes=1",
            "algo_params.metaworld_eval_evaluation_episodes=1",
            "algo_params.metaworld_eval_max_episode_steps=20",
        ],
    ),
    "no-snapshots": (
        "configs/point-robot.json",
        ["n_train_tasks=4", "n_eval_tasks=2", "util_params.snapshot_mode=none"],
    ),
}


def python(script, *args):
    return run_child([script, *args])


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """Trains each run of RUNS for 2 iterations; maps its name to its run folder."""
    folders = {}
    for name, (config, extra) in RUNS.items():
        base = tmp_path_factory.mktemp(name)
        sets = [f"util_params.base_log_dir={base}", "algo_params.num_iterations=2", *TINY, *extra]
        args = [config, "--seed", "0", *(a for s in sets for a in ("--set", s))]
        proc = python("launch_experiment.py", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (folders[name],) = [p for p in base.glob("*/*") if p.is_dir()]
    return folders


def averages(stdout):
    """{trajectory index: average return} from sim_policy's report."""
    found = re.findall(r"trajectory (\d+), average return: (-?[\d.]+)", stdout)
    return {int(k): float(v) for k, v in found}


def test_reports_one_average_per_trajectory_index(run_dirs):
    proc = python("sim_policy.py", run_dirs["sparse-point"], "--num_trajs", 4)
    assert proc.returncode == 0, proc.stderr
    report = averages(proc.stdout)
    assert sorted(report) == [0, 1, 2, 3]
    # sparse returns over 20 steps lie in [0, 20]
    assert all(0 <= v <= 20 for v in report.values())
    assert "2 eval tasks, 4 trajectories each" in proc.stdout


def test_config_and_run_dir_form_gives_the_same_report(run_dirs):
    run_dir = run_dirs["sparse-point"]
    from_variant = python("sim_policy.py", run_dir, "--deterministic")
    with_config = python("sim_policy.py", run_dir / "variant.json", run_dir, "--deterministic")
    assert from_variant.returncode == with_config.returncode == 0, (
        from_variant.stderr[-3000:],
        with_config.stderr[-3000:],
    )
    assert averages(from_variant.stdout) == averages(with_config.stdout)
    assert len(averages(from_variant.stdout)) == 3  # the reference's default num_trajs


def test_itr_picks_a_numbered_snapshot(run_dirs, tmp_path):
    run_dir = run_dirs["sparse-point"]
    first = python("sim_policy.py", run_dir, "--itr", 0, "--deterministic")
    last = python("sim_policy.py", run_dir, "--itr", 1, "--deterministic")
    assert first.returncode == last.returncode == 0, (first.stderr[-3000:], last.stderr[-3000:])
    for name in ("context_encoder", "policy"):
        old, new = (torch.load(run_dir / f"{name}_itr_{k}.pth") for k in (0, 1))
        assert any(not torch.equal(old[key], new[key]) for key in old)
    # The two reports need not differ: snapshots two meta-gradient steps apart can well earn
    # the same sparse returns (often all 0). So in a copy of the run where every snapshot but
    # iteration K's is garbage (reading one is an error, exit status 2), --itr K must still
    # give the whole run's report: it read iteration K's files and no others.
    for itr, report in ((0, first), (1, last)):
        alone = tmp_path / f"only-itr-{itr}"
        shutil.copytree(run_dir, alone)
        for snapshot in alone.glob("*.pth"):
            if not snapshot.name.endswith(f"_itr_{itr}.pth"):
                snapshot.write_bytes(b"not a snapshot")
        proc = python("sim_policy.py", alone, "--itr", itr, "--deterministic")
        assert proc.returncode == 0, proc.stderr
        assert sorted(averages(proc.stdout)) == [0, 1, 2]
        assert averages(proc.stdout) == averages(report.stdout)
    missing = python("sim_policy.py", run_dir, "--itr", 7)
    assert missing.returncode == 2, missing.stderr[-3000:]
    assert missing.stderr.strip() == (
        f"error: {run_dir}: no snapshot of iteration 7 (numbered ones: 0, 1)"
    )


def test_no_success_rate_for_families_without_success(run_dirs):
    proc = python("sim_policy.py", run_dirs["cheetah"], "--num_trajs", 2)
    assert proc.returncode == 0, proc.stderr
    assert len(averages(proc.stdout)) == 2 and "success" not in proc.stdout


def test_point_robot_video_draws_one_picture_per_task(run_dirs):
    run_dir = run_dirs["sparse-point"]
    proc = python("sim_policy.py", run_dir, "--video", "--num_trajs", 3)
    assert proc.returncode == 0, proc.stderr
    pictures = sorted((run_dir / "sim_pictures").glob("task*.png"))
    assert [p.name for p in pictures] == ["task98.png", "task99.png"]
    for picture in pictures:
        pixels = imread(picture)
        assert pixels.std() > 0.05
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10
        assert f"wrote {picture}" in proc.stdout


def test_mujoco_video_has_a_frame_per_step_of_every_trajectory(run_dirs):
    run_dir = run_dirs["cheetah"]
    proc = python("sim_policy.py", run_dir, "--video", "--num_trajs", 2)
    assert proc.returncode == 0, proc.stderr
    video = run_dir / "sim_video.mp4"
    assert f"wrote {video}" in proc.stdout
    frames = iio.imread(video, plugin="FFMPEG")
    # 2 eval tasks x 2 trajectories x (reset + 20 steps): the cheetah never terminates
    assert frames.shape == (2 * 2 * 21, 240, 320, 3)
    assert frames.std() > 10
    assert not np.array_equal(frames[1], frames[20])


def test_metaworld_report_and_video_across_classes(run_dirs):
    run_dir = run_dirs["ml10"]
    proc = python("sim_policy.py", run_dir, "--video", "--num_trajs", 2)
    assert proc.returncode == 0, proc.stderr
    assert sorted(averages(proc.stdout)) == [0, 1]
    rates = re.findall(
        r"trajectory \d+, average return: [\d.]+, success rate: ([\d.]+)", proc.stdout
    )
    assert len(rates) == 2 and all(0 <= float(r) <= 1 for r in rates)
    frames = iio.imread(run_dir / "sim_video.mp4", plugin="FFMPEG")
    # 5 tasks (5 classes) x 2 trajectories x (reset + 20 steps)
    assert frames.shape == (5 * 2 * 21, 240, 320, 3)
    firsts = frames[:: 2 * 21].astype(float)  # each task's first frame: another scene
    assert min(np.abs(a - b).mean() for a, b in zip(firsts, firsts[1:], strict=False)) > 0.5


def test_metaworld_eval_reports_each_held_out_class(run_dirs):
    run_dir = run_dirs["ml10"]
    proc = python("sim_policy.py", run_dir, "--metaworld-eval", "--adaptation-episodes", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    headline = re.search(r"5 eval tasks: success rate ([\d.]+), mean return ([\d.]+)", proc.stdout)
    assert headline and 0 <= float(headline[1]) <= 1 and float(headline[2]) > 0
    classes = dict(re.findall(r"^(\S+-v3): success rate ([\d.]+)$", proc.stdout, re.M))
    variant = json.loads((run_dir / "variant.json").read_text())
    assert sorted(classes) == ENVS[variant["env_name"]]().test_classes
    assert all(0 <= float(rate) <= 1 for rate in classes.values())


def test_metaworld_eval_of_another_family_is_a_clear_error(run_dirs):
    run_dir = run_dirs["sparse-point"]
    proc = python("sim_policy.py", run_dir, "--metaworld-eval")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == (
        f"error: {run_dir}: Meta-World's evaluator needs a Meta-World run, this one's "
        "env_name is 'sparse-point-robot'"
    )


def test_run_without_snapshots_is_a_clear_error(run_dirs):
    run_dir = run_dirs["no-snapshots"]
    proc = python("sim_policy.py", run_dir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == (
        f"error: {run_dir}: no policy.pth or policy_itr_K.pth snapshot (was snapshot_mode 'none'?)"
    )


def test_missing_run_dir_is_a_clear_error(tmp_path):
    proc = python("sim_policy.py", tmp_path / "nowhere")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such run folder"

"""Checkpoints in process: atomic files, the algorithm's full state, resuming mid-iteration
exactly, and stopping on a NaN or inf loss with the last good checkpoint kept."""

import csv
import shutil

import numpy as np
import pytest
import torch
from checkpoint_cost import single_file_state
from conftest import TIME_COLUMNS, online_return_pickles

from rlkit.core.checkpoint import DATA_FOLDER, atomic_torch_save, checkpoint_path, load_checkpoint
from rlkit.core.logger import RunLogger
from rlkit.core.pearl_algorithm import TrainingDiverged
from rlkit.launchers.config import ConfigError
from rlkit.launchers.launcher import restore


def progress_rows(run_dir):
    with open(run_dir / "progress.csv", newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)
        ]


def test_atomic_save_keeps_the_old_file_whole_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"epoch": 1}, path)
    original = torch.save

    def torn(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("killed while writing")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError):
        atomic_torch_save({"epoch": 2}, path)
    assert torch.load(path) == {"epoch": 1}
    monkeypatch.setattr(torch, "save", original)
    atomic_torch_save({"epoch": 2}, path)  # the torn temporary file is simply replaced
    assert torch.load(path) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def stop_at_step(monkeypatch, algo, call):
    """Ask `algo` to stop during its `call`-th meta-gradient step, as Ctrl-C does."""
    calls = []
    original = algo.trainer.take_step

    def take_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            algo.stop_requested = True
        return original(*args, **kwargs)

    monkeypatch.setattr(algo.trainer, "take_step", take_step)


def test_checkpoint_after_every_iteration(make_algorithm):
    algo = make_algorithm("algo_params.num_iterations=1")
    run_dir = algo.logger.run_dir
    algo.train()
    first = load_checkpoint(run_dir)
    size_first = checkpoint_path(run_dir).stat().st_size
    assert first["epoch"] == 1 and first["steps_done"] is None
    assert set(first["networks"]) == set(algo.trainer.networks)
    assert len(first["optimizers"]) == 5
    assert len(first["env_rngs"]) == len(algo._envs)
    algo.num_iterations = 3
    assert algo.train()
    last = load_checkpoint(run_dir)
    assert last["epoch"] == 3
    assert last["counters"]["n_train_steps_total"] == algo.n_train_steps_total == 6
    assert last["logger"]["sizes"]["progress.csv"] == (run_dir / "progress.csv").stat().st_size
    # the checkpoint itself stays small: the transitions are in the data files
    assert checkpoint_path(run_dir).stat().st_size < size_first + 10_000
    for name, net in algo.trainer.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(last["networks"][name][key], value)


# before iteration 1's first step; in iteration 2; in iteration 2 with the learned temperature
# (its log alpha, a bare tensor, and its optimizer go through the checkpoint)
@pytest.mark.parametrize(
    ("stop_call", "auto_alpha"), [(3, False), (5, False), (5, True)], ids=["3", "5", "5-auto_alpha"]
)
def test_resumed_run_reproduces_the_uninterrupted_one(
    make_algorithm, monkeypatch, stop_call, auto_alpha
):
    settings = ("algo_params.num_iterations=3", "algo_params.num_steps_posterior=20")
    if auto_alpha:
        settings += ("algo_params.auto_alpha=true", "algo_params.alpha_lr=0.01")
    reference = make_algorithm(*settings)
    assert reference.train()

    stopped = make_algorithm(*settings)
    run_dir = stopped.logger.run_dir
    stop_at_step(monkeypatch, stopped, stop_call)
    assert not stopped.train()
    saved = load_checkpoint(run_dir)
    # TINY: 2 meta-gradient steps per iteration; the stop comes after the current step
    assert (saved["epoch"], saved["steps_done"]) == divmod(stop_call, 2)
    assert len(saved["optimizers"]) == 5 + auto_alpha
    assert ("log_alpha" in saved) == auto_alpha
    # rows and returns written after the checkpoint (a kill before the next one) are cut off
    with open(run_dir / "progress.csv", "a") as f:
        f.write("a row the checkpoint never saw\n")
    with open(run_dir / "online_returns.jsonl", "a") as f:
        f.write('{"epoch": 99}\n')
    # and so are the online-return pickles of iterations the checkpoint has not finished, even
    # of one the resumed run does not redo, and a torn temporary pickle
    for name in (f"online-test-epoch{saved['epoch']}.pkl", "online-train-epoch99.pkl"):
        (run_dir / name).write_bytes(b"a pickle the checkpoint never saw")
    (run_dir / "online-test-epoch0.pkl.tmp").write_bytes(b"half a pickle")
    # data files of a checkpoint that was never renamed in (a kill), one of them torn
    stale = [run_dir / DATA_FOLDER / name for name in ("replay_buffer-000999.pt", "x.pt.tmp")]
    for path in stale:
        path.write_bytes(b"data no checkpoint names")

    resumed = make_algorithm(*settings)
    resumed.logger.close()
    resumed.logger = RunLogger(run_dir, echo=False)  # a new process on the same folder
    resumed.load_state_dict(saved)
    assert not any(path.exists() for path in stale)
    assert resumed.train()
    resumed.logger.close()
    assert progress_rows(run_dir) == progress_rows(reference.logger.run_dir)
    assert [r["Epoch"] for r in progress_rows(run_dir)] == ["0", "1", "2"]
    ref_returns = (reference.logger.run_dir / "online_returns.jsonl").read_text()
    assert (run_dir / "online_returns.jsonl").read_text() == ref_returns
    assert online_return_pickles(run_dir) == online_return_pickles(reference.logger.run_dir)
    for name, net in resumed.trainer.networks.items():
        expected = reference.trainer.networks[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, expected[key]), name
    if auto_alpha:
        assert float(resumed.trainer.log_alpha.detach()) != 0.0
        assert torch.equal(resumed.trainer.log_alpha, reference.trainer.log_alpha)
        assert "Alpha" in progress_rows(run_dir)[0]
    assert resumed.rng.bit_generator.state == reference.rng.bit_generator.state


def poison_qf(trainer):
    with torch.no_grad():
        next(trainer.qf1.parameters()).view(-1)[0] = float("inf")


def poison_vf(trainer):
    with torch.no_grad():
        next(trainer.vf.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize(
    ("poison", "loss"),
    [
        (poison_qf, "QF Loss"),
        (lambda trainer: setattr(trainer, "kl_lambda", float("inf")), "KL Loss"),
        (poison_vf, "VF Loss"),
        (lambda trainer: setattr(trainer, "policy_mean_reg_weight", float("inf")), "Policy Loss"),
        # auto_alpha: the temperature steps before V and the policy, whose losses it then spoils
        (lambda trainer: setattr(trainer, "target_entropy", float("inf")), "Alpha Loss"),
    ],
)
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
    make_algorithm, poison, loss
):
    auto_alpha = str(loss == "Alpha Loss").lower()
    algo = make_algorithm("algo_params.num_iterations=1", f"algo_params.auto_alpha={auto_alpha}")
    run_dir = algo.logger.run_dir
    assert algo.train()
    good = checkpoint_path(run_dir).read_bytes()
    rows = (run_dir / "progress.csv").read_text()
    poison(algo.trainer)
    algo.num_iterations = 3
    with pytest.raises(TrainingDiverged, match=f"^{loss} became NaN or inf at .*iteration 1$"):
        algo.train()
    assert checkpoint_path(run_dir).read_bytes() == good
    assert (run_dir / "progress.csv").read_text() == rows
    assert (algo.saved_epoch, algo.saved_steps_done) == (1, None)


def test_the_first_bad_step_is_named(make_algorithm):
    """The step index read by the gradient check lives on the device (a step replayed from a
    CUDA graph reads it there): a loss going bad at the third step is reported as step 2."""
    algo = make_algorithm("algo_params.num_iterations=1", "algo_params.num_train_steps_per_itr=4")
    assert algo.train()
    take_step = algo.trainer.take_step
    calls = 0

    def poisoned_from_the_third_step(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            poison_vf(algo.trainer)
        return take_step(*args, **kwargs)

    algo.trainer.take_step = poisoned_from_the_third_step
    algo.num_iterations = 2
    with pytest.raises(
        TrainingDiverged, match="^VF Loss became NaN or inf at meta-gradient step 2 of iteration 1$"
    ):
        algo.train()


def data_files(run_dir):
    return {path.name: path.stat().st_size for path in (run_dir / DATA_FOLDER).iterdir()}


def count_added(monkeypatch, algo):
    """{buffer name: transitions added since the last reset}, counted at add_path."""
    added = dict.fromkeys(algo._buffers, 0)
    for name, buffer in algo._buffers.items():
        original = buffer.add_path

        def add_path(task, path, name=name, original=original):
            added[name] += len(path)
            return original(task, path)

        monkeypatch.setattr(buffer, "add_path", add_path)
    return added


def test_checkpoints_write_only_the_transitions_added_since_the_last(make_algorithm, monkeypatch):
    algo = make_algorithm("algo_params.num_iterations=1")
    run_dir = algo.logger.run_dir
    added = count_added(monkeypatch, algo)
    before = set()
    for iterations in (1, 2, 3):
        algo.num_iterations = iterations
        assert algo.train()
        now = data_files(run_dir)
        new = {name: now[name] for name in set(now) - before}
        stored = {}
        for name in new:
            content = torch.load(run_dir / DATA_FOLDER / name, weights_only=True)
            buffer = name.rsplit("-", 1)[0]
            stored[buffer] = stored.get(buffer, 0) + len(content["rewards"])
        # the RL buffer (large, never cleared) keeps every transition added: its new file
        # holds exactly those; the encoder buffer's at most those (a task drawn twice in an
        # iteration is cleared twice)
        assert stored["replay_buffer"] == added["replay_buffer"] > 0
        assert 0 < stored["enc_replay_buffer"] <= added["enc_replay_buffer"]
        payload = sum(stored.values()) * algo.replay_buffer.bytes_per_transition
        assert payload <= sum(new.values()) <= payload + 10_000 * len(new)
        before = set(now)
        added.update(dict.fromkeys(added, 0))


def test_data_no_buffer_needs_is_deleted(make_algorithm):
    # a small RL buffer (its FIFO overwrites old data) and many encoder-buffer clears
    settings = (
        "algo_params.num_iterations=1",
        "algo_params.replay_buffer_size=60",
        "algo_params.num_tasks_sample=12",
    )
    algo = make_algorithm(*settings)
    run_dir = algo.logger.run_dir
    seen = set()
    for iterations in (1, 2, 3, 4):
        algo.num_iterations = iterations
        assert algo.train()
        now = set(data_files(run_dir))
        # the folder holds exactly what the checkpoint on disk names
        assert now == {path.name for path in algo._needed_data_files()}
        seen |= now
    assert seen - now  # files were deleted once no buffer needed them
    # and what is left restores the buffers exactly
    resumed = make_algorithm(*settings)
    resumed.logger.close()
    resumed.logger = RunLogger(run_dir, echo=False)
    resumed.load_state_dict(load_checkpoint(run_dir))
    resumed.logger.close()
    for name, buffer in algo._buffers.items():
        copy = resumed._buffers[name]
        tasks = [t for t in buffer.tasks if buffer.size(t)]
        assert [copy.size(t) for t in tasks] == [buffer.size(t) for t in tasks]
        for method in ("random_batch", "random_sequences"):
            expected = getattr(buffer, method)(tasks, 50, np.random.default_rng(0))
            got = getattr(copy, method)(tasks, 50, np.random.default_rng(0))
            for field in expected:
                np.testing.assert_array_equal(got[field], expected[field])


def test_a_missing_data_file_is_named(make_algorithm):
    algo = make_algorithm("algo_params.num_iterations=1")
    algo.train()
    run_dir = algo.logger.run_dir
    saved = load_checkpoint(run_dir)
    (victim,) = [p for p in (run_dir / DATA_FOLDER).iterdir() if p.name.startswith("enc")]
    victim.unlink()
    resumed = make_algorithm("algo_params.num_iterations=1")
    resumed.logger.close()
    resumed.logger = RunLogger(run_dir, echo=False)
    with pytest.raises(ConfigError, match=f"{victim}: missing"):
        restore(resumed, saved, run_dir)
    resumed.logger.close()


def test_a_single_file_checkpoint_is_resumed(make_algorithm, monkeypatch):
    """Run folders from before data files: the buffers' transitions inside checkpoint.pt."""
    settings = ("algo_params.num_iterations=3", "algo_params.num_steps_posterior=20")
    reference = make_algorithm(*settings)
    assert reference.train()
    stopped = make_algorithm(*settings)
    run_dir = stopped.logger.run_dir
    stop_at_step(monkeypatch, stopped, 3)
    assert not stopped.train()
    # the checkpoint as it was written before data files
    saved = load_checkpoint(run_dir)
    for name, buffer in stopped._buffers.items():
        saved[name] = single_file_state(buffer)
    del saved["next_data_file"]
    shutil.rmtree(run_dir / DATA_FOLDER)
    atomic_torch_save(saved, checkpoint_path(run_dir))

    resumed = make_algorithm(*settings)
    resumed.logger.close()
    resumed.logger = RunLogger(run_dir, echo=False)
    resumed.load_state_dict(load_checkpoint(run_dir))
    assert resumed.train()
    resumed.logger.close()
    assert progress_rows(run_dir) == progress_rows(reference.logger.run_dir)
    # its checkpoints are the new kind from then on
    assert "data" not in load_checkpoint(run_dir)["replay_buffer"]
    assert {p.name for p in resumed._needed_data_files()} == set(data_files(run_dir))

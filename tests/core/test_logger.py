"""The run folder: unique names, fixed progress.csv columns, the online-return files, snapshot
modes, start weights."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import TINY, online_return_pickles

from rlkit.core.logger import RunLogger, create_run_dir
from rlkit.launchers.config import ConfigError, apply_override, load_config
from rlkit.launchers.launcher import prepare


def test_run_folders_are_never_reused(tmp_path):
    first = create_run_dir(tmp_path, "point-robot")
    second = create_run_dir(tmp_path, "point-robot")
    assert first != second and first.parent == second.parent == tmp_path / "point-robot"
    assert create_run_dir(tmp_path, "point-robot", debug=True).name == "debug"
    assert create_run_dir(tmp_path, "point-robot", debug=True).name == "debug_2"


def test_progress_columns_cannot_change(tmp_path):
    logger = RunLogger(tmp_path, echo=False)
    logger.record_row(OrderedDict(a=1, b=2))
    logger.record_row(OrderedDict(a=3, b=4))
    assert (tmp_path / "progress.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]
    with pytest.raises(ValueError, match="columns changed"):
        logger.record_row(OrderedDict(b=5, a=6))
    logger.close()


def test_online_returns_pickled_as_the_reference_and_cut_back_on_restore(tmp_path):
    logger = RunLogger(tmp_path, echo=False)
    logger.save_online_returns(0, np.array([-3.5, -1.25]), np.array([-2.0, -0.5]))
    position = logger.position()
    logger.save_online_returns(1, np.array([0.1, 0.2]), np.array([0.3, 1 / 3]))
    assert sorted(online_return_pickles(tmp_path)) == [
        f"online-{split}-epoch{epoch}.pkl" for split in ("test", "train") for epoch in (0, 1)
    ]
    with open(tmp_path / "online-test-epoch1.pkl", "rb") as f:
        assert pickle.load(f).tolist() == [0.3, 1 / 3]
    # a resume after epoch 0: epoch 1's record and pickles are gone, epoch 0's stay
    logger.restore(position, 1)
    assert sorted(online_return_pickles(tmp_path)) == [
        "online-test-epoch0.pkl",
        "online-train-epoch0.pkl",
    ]
    logger.restore(None, 0)
    assert not list(tmp_path.glob("online*"))
    logger.close()


@pytest.mark.parametrize(
    "mode, gap, expected",
    [
        ("last", 1, {"net.pth"}),
        ("all", 1, {"net_itr_0.pth", "net_itr_1.pth", "net_itr_2.pth"}),
        ("gap", 2, {"net_itr_0.pth", "net_itr_2.pth"}),
        ("gap_and_last", 2, {"net.pth", "net_itr_0.pth", "net_itr_2.pth"}),
        ("none", 1, set()),
    ],
)
def test_snapshot_modes(tmp_path, mode, gap, expected):
    logger = RunLogger(tmp_path, echo=False)
    net = torch.nn.Linear(2, 2)
    for epoch in range(3):
        with torch.no_grad():
            net.weight.fill_(epoch)
        logger.save_snapshot(epoch, {"net": net}, mode, gap)
    logger.close()
    assert {p.name for p in tmp_path.glob("*.pth")} == expected
    if "net.pth" in expected:  # 'last' holds the latest weights
        assert torch.all(torch.load(tmp_path / "net.pth")["weight"] == 2)


def test_path_to_weights_starts_every_network_from_the_files(make_algorithm, tmp_path):
    trained = make_algorithm()
    with torch.no_grad():
        for net in trained.trainer.networks.values():
            for p in net.parameters():
                p.add_(1.0)
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, net in trained.trainer.networks.items():
        torch.save(net.state_dict(), folder / f"{name}.pth")
    loaded = make_algorithm(f"path_to_weights={folder}")
    for name, net in loaded.trainer.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, trained.trainer.networks[name].state_dict()[key]), name


def test_start_weights_that_do_not_fit_are_refused_before_the_run(make_algorithm, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, net in make_algorithm().trainer.networks.items():  # net_size 16
        torch.save(net.state_dict(), folder / f"{name}.pth")
    variant = load_config("configs/point-robot.json")
    for expression in [
        *TINY,
        f"path_to_weights={folder}",
        f"util_params.base_log_dir={tmp_path}/out",
    ]:
        apply_override(variant, expression)
    prepare(variant, "cfg.json")  # they fit
    apply_override(variant, "net_size=32")
    with pytest.raises(
        ConfigError,
        match=r"policy\.pth: does not fit the config's policy \(size mismatch for fc0\.weight",
    ):
        prepare(variant, "cfg.json")
    apply_override(variant, "net_size=16")
    (folder / "qf2.pth").write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match=r"qf2\.pth: does not fit the config's qf2"):
        prepare(variant, "cfg.json")
    assert not (tmp_path / "out").exists()

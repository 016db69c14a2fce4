"""The run folder: unique names, fixed progress.csv columns, snapshot modes, start weights."""

from collections import OrderedDict

import pytest
import torch

from rlkit.core.logger import RunLogger, create_run_dir


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

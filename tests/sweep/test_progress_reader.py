"""The trial's reader of a growing progress.csv (appended bytes only, a file cut back and
written again by a resume) and its reporter to Tune: each iteration once, when its row is
final, with the values the run folder keeps."""

import os

import pytest

from rlkit.sweep import tune_runner
from rlkit.sweep.tune_runner import ProgressReader, TrialReporter

HEADER = "Epoch,Train Time (s),Return\n"


def line(epoch: int, seconds: str) -> str:
    return f"{epoch},{seconds},{-epoch * 1.5}\n"


def test_rows_are_parsed_and_half_written_lines_wait(tmp_path):
    path = tmp_path / "progress.csv"
    reader = ProgressReader(path)
    assert reader.read() == []  # no file yet
    path.write_text(HEADER + line(0, "1.25"))
    assert reader.read() == [{"Epoch": 0.0, "Train Time (s)": 1.25, "Return": -0.0}]
    with open(path, "a") as f:
        f.write(line(1, "1.5") + "2,1.7")  # the third row half written
    assert [r["Epoch"] for r in reader.read()] == [0.0, 1.0]
    with open(path, "a") as f:
        f.write(",-3.0\n")
    assert reader.read()[-1] == {"Epoch": 2.0, "Train Time (s)": 1.7, "Return": -3.0}
    assert len(reader.read()) == 3


def test_a_file_cut_back_and_rewritten_is_read_as_it_is_now(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text(HEADER + "".join(line(e, "1.0") for e in range(4)))
    reader = ProgressReader(path)
    assert len(reader.read()) == 4
    # a resume from the checkpoint after epoch 1: epochs 2 and 3 written again with other
    # times of other lengths, then epoch 4
    os.truncate(path, len(HEADER + line(0, "1.0") + line(1, "1.0")))
    with open(path, "a") as f:
        f.write(line(2, "0.123456") + line(3, "0.9") + line(4, "0.95"))
    rows = reader.read()
    assert [r["Epoch"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r["Train Time (s)"] for r in rows] == [1.0, 1.0, 0.123456, 0.9, 0.95]


@pytest.fixture
def reported(monkeypatch):
    """What the reporter sends to Tune: (row, the count its checkpoint holds)."""
    sent = []
    monkeypatch.setattr(tune_runner, "_report_with_count", lambda row, n: sent.append((row, n)))
    return sent


def test_a_row_is_reported_once_its_successor_is_on_disk(tmp_path, reported):
    path = tmp_path / "progress.csv"
    reporter = TrialReporter(path, reported=0)
    path.write_text(HEADER + line(0, "1.0"))
    reporter.report(all_final=False)
    assert reported == []  # its checkpoint may not be on disk yet
    with open(path, "a") as f:
        f.write(line(1, "1.0") + line(2, "1.0"))
    reporter.report(all_final=False)
    assert [(row["Epoch"], n) for row, n in reported] == [(0.0, 1), (1.0, 2)]
    reporter.report(all_final=True)  # the process finished: its last row is final
    reporter.report(all_final=True)
    assert [(row["Epoch"], n) for row, n in reported] == [(0.0, 1), (1.0, 2), (2.0, 3)]


def test_a_row_redone_by_a_resume_is_reported_with_its_new_values(tmp_path, reported):
    path = tmp_path / "progress.csv"
    reporter = TrialReporter(path, reported=0)
    path.write_text(HEADER + line(0, "1.0") + line(1, "1.0"))
    reporter.report(all_final=False)
    # killed before the checkpoint of epoch 1: the resume cuts its row and writes it again
    os.truncate(path, len(HEADER + line(0, "1.0")))
    with open(path, "a") as f:
        f.write(line(1, "0.75") + line(2, "0.5"))
    reporter.report(all_final=False)
    assert [(row["Epoch"], row["Train Time (s)"]) for row, _ in reported] == [
        (0.0, 1.0),
        (1.0, 0.75),
    ]


def test_a_retried_trial_goes_on_after_the_rows_tune_has(tmp_path, reported):
    path = tmp_path / "progress.csv"
    path.write_text(HEADER + "".join(line(e, "1.0") for e in range(5)))
    TrialReporter(path, reported=3).report(all_final=True)
    assert [(row["Epoch"], n) for row, n in reported] == [(3.0, 4), (4.0, 5)]

"""The trial's reader of a growing progress.csv: each row once, appended bytes only, and a
file cut back and written again by a resume."""

import os

from rlkit.sweep.tune_runner import ProgressReader


def line(epoch: int, seconds: str) -> str:
    return f"{epoch},{seconds},{-epoch * 1.5}\n"


def test_rows_are_read_once_and_half_written_lines_wait(tmp_path):
    path = tmp_path / "progress.csv"
    reader = ProgressReader(path)
    assert reader.new_rows() == []  # no file yet
    path.write_text("Epoch,Train Time (s),Return\n" + line(0, "1.25"))
    assert reader.new_rows() == [{"Epoch": 0.0, "Train Time (s)": 1.25, "Return": -0.0}]
    assert reader.new_rows() == []
    with open(path, "a") as f:
        f.write(line(1, "1.5") + "2,1.7")  # the second row half written
    assert [r["Epoch"] for r in reader.new_rows()] == [1.0]
    with open(path, "a") as f:
        f.write(",-3.0\n")
    assert reader.new_rows() == [{"Epoch": 2.0, "Train Time (s)": 1.7, "Return": -3.0}]
    assert reader.rows_read == 3


def test_a_file_cut_back_and_rewritten_gives_no_row_twice(tmp_path):
    path = tmp_path / "progress.csv"
    header = "Epoch,Train Time (s),Return\n"
    path.write_text(header + "".join(line(e, "1.0") for e in range(4)))
    reader = ProgressReader(path)
    assert len(reader.new_rows()) == 4
    # a resume from the checkpoint after epoch 1: epochs 2 and 3 are written again, with other
    # times of other lengths, then epoch 4 is new
    os.truncate(path, len(header + line(0, "1.0") + line(1, "1.0")))
    with open(path, "a") as f:
        f.write(line(2, "0.123456") + line(3, "0.9") + line(4, "0.95"))
    rows = reader.new_rows()
    assert [r["Epoch"] for r in rows] == [4.0] and rows[0]["Train Time (s)"] == 0.95
    os.truncate(path, 0)  # started again from nothing: rows come back only past those read
    path.write_text(header + "".join(line(e, "2.0") for e in range(6)))
    assert [r["Epoch"] for r in reader.new_rows()] == [5.0]

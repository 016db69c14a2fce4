"""Training curves in TensorBoard and Weights & Biases (optional extras: docs/logging.md).

Both log the numeric columns of every progress.csv row under the column's own name, with the
value progress.csv shows, against `Number of env steps total`. progress.csv stays the record:
a resumed run cuts it back to its checkpoint and writes the iterations after that again, and
the trackers follow it so that each iteration is one point:
- TensorBoard: RUN_DIR/tensorboard/ is written again from progress.csv at every start, then
  each new row is added;
- W&B: the run's id and the number of rows a cleanly finished W&B run has sent are kept in
  RUN_DIR/wandb.json; a resumed run continues the same W&B run and sends the rows after that
  count, at W&B step = iteration (W&B keeps the first point of a step it already has).
"""

import csv
import json
import math
import secrets
from collections.abc import Mapping
from pathlib import Path

from rlkit.core.checkpoint import atomic_write
from rlkit.core.logger import PROGRESS

STEP_COLUMN = "Number of env steps total"
TENSORBOARD_FOLDER = "tensorboard"
WANDB_STATE = "wandb.json"


def numeric_columns(row: Mapping[str, object]) -> dict[str, float]:
    """The row's numeric columns as progress.csv shows them (the text the csv module writes,
    read back), so that every tracker holds exactly the file's values; NaN (a column not
    measured in that iteration, e.g. Meta-World's evaluator between its scorings) is left
    out, so the curve has points where there are numbers."""
    values = {}
    for column, value in row.items():
        try:
            number = float(str(value))
        except ValueError:
            continue
        if not math.isnan(number):
            values[column] = number
    return values


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class TensorBoardTracker:
    """Scalars in RUN_DIR/tensorboard, in double precision, one event file."""

    def __init__(self, run_dir: Path, rows: list[Mapping[str, object]]):
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run_dir) / TENSORBOARD_FOLDER
        folder.mkdir(exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):  # rows of iterations now redone
            old.unlink()
        self._writer = SummaryWriter(str(folder), flush_secs=3600)
        for row in rows:
            self.write(row, flush=False)
        self._writer.flush()

    def write(self, row: Mapping[str, object], flush: bool = True) -> None:
        values = numeric_columns(row)
        step = int(values[STEP_COLUMN])
        for column, value in values.items():
            self._writer.add_scalar(column, value, step, new_style=True, double_precision=True)
        if flush:
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbTracker:
    """One W&B run per run folder: its config is variant.json, its id is kept in the folder.

    W&B's own process buffers what it is given and loses it when the run's process is killed,
    so a row counts as sent only once a W&B run that logged it has finished cleanly
    (`rows_finished` in wandb.json). A start after a kill sends again the rows after that
    count, each at W&B step = its iteration: W&B ignores a step it already holds, so no
    iteration is lost and none is shown twice.
    """

    def __init__(self, run_dir: Path, variant: dict, rows: list[Mapping[str, object]]):
        import wandb

        self._state_path = Path(run_dir) / WANDB_STATE
        if self._state_path.is_file():
            state = json.loads(self._state_path.read_text())
        else:
            state = {"id": secrets.token_hex(6), "rows_finished": 0}
            self._save(state)
        self._state = state
        settings = variant["util_params"]["wandb"]
        self.run = wandb.init(
            project=settings["project"],
            entity=settings["entity"],
            group=settings["group"],
            tags=settings["tags"] or None,
            mode=settings["mode"],
            id=state["id"],
            resume="allow",
            name=f"{variant['env_name']}/{Path(run_dir).name}",
            dir=str(run_dir),
            config=variant,
            settings=wandb.Settings(console="off", quiet=True),
        )
        self.run.define_metric("*", step_metric=STEP_COLUMN)
        self._rows = 0
        for row in rows:
            self.write(row)

    def _save(self, state: dict) -> None:
        text = json.dumps(state).encode()
        atomic_write(self._state_path, lambda f: f.write(text))

    def write(self, row: Mapping[str, object]) -> None:
        index, self._rows = self._rows, self._rows + 1
        if index >= self._state["rows_finished"]:
            self.run.log(numeric_columns(row), step=index)

    def close(self) -> None:
        self.run.finish()
        self._state["rows_finished"] = max(self._rows, self._state["rows_finished"])
        self._save(self._state)


def open_trackers(variant: dict, run_dir: Path) -> list:
    """The trackers the config asks for, each given the rows progress.csv holds now; when one
    fails to start, those started are closed."""
    util = variant["util_params"]
    rows = read_rows(Path(run_dir) / PROGRESS)
    trackers = []
    try:
        if util["tensorboard"]:
            trackers.append(TensorBoardTracker(run_dir, rows))
        if util["wandb"]["mode"] != "disabled":
            trackers.append(WandbTracker(run_dir, variant, rows))
    except BaseException:
        for tracker in trackers:
            tracker.close()
        raise
    return trackers

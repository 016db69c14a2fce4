"""PEARL learns on the point robot: the first 30 iterations of configs/point-robot-quick.json.

About 2 minutes on a 2-core CPU. With seed 1 the return with a posterior inferred from
encoder-buffer context climbs from about -21 (random) to about -9 by iterations 25-29 (seed 2:
about -8.5). A policy that cannot infer the goal (encoder disconnected: z from the prior) at
best walks to the centre, about -16, and stays below -14 here; the bound sits between the two.
"""

import csv

import numpy as np
import torch

from rlkit.core.logger import RunLogger
from rlkit.launchers.config import apply_override, load_config
from rlkit.launchers.launcher import build_algorithm


def test_point_robot_quick_config_learns_to_use_the_context(tmp_path):
    variant = load_config("configs/point-robot-quick.json")
    for expression in ("util_params.seed=1", "algo_params.num_iterations=30"):
        apply_override(variant, expression)
    logger = RunLogger(tmp_path, echo=False)
    build_algorithm(variant, logger, torch.device("cpu")).train()
    logger.close()
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    train_posterior = [float(r["AverageTrainReturn_all_train_tasks"]) for r in rows]
    assert np.mean(train_posterior[:3]) < -18  # it starts out unable to reach the goals
    assert np.mean(train_posterior[-5:]) > -12, train_posterior

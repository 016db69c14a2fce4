"""Aggregate statistics over runs as rliable computes them (Agarwal et al., "Deep RL at the
Edge of the Statistical Precipice", NeurIPS 2021): the mean, the interquartile mean (the mean
of the middle 50% of scores, scipy's trim_mean(0.25)) and 95% percentile confidence intervals
from a stratified bootstrap (runs resampled with replacement within each task; here one task,
so over seeds). The rliable package does the work; it comes with the `sweep` extra.
"""

import warnings

import numpy as np

FINAL_REPS = 10_000  # rliable's default is 50,000: 7 s per setting here, for a third digit
CURVE_REPS = 2_000  # one bootstrap for all iterations of a curve at once
CONFIDENCE = 0.95


class StatisticsUnavailable(Exception):
    """rliable is not installed."""


def _bootstrap(library, scores, aggregate, reps, seed):
    with warnings.catch_warnings():  # arch warns about rliable's use of random_state
        warnings.simplefilter("ignore", FutureWarning)
        points, intervals = library.get_interval_estimates(
            {"runs": scores},
            aggregate,
            reps=reps,
            confidence_interval_size=CONFIDENCE,
            random_state=np.random.RandomState(seed),
        )
    return points["runs"], intervals["runs"]


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError:
        raise StatisticsUnavailable(
            "confidence intervals need rliable: pip install -e '.[sweep]'"
        ) from None
    return library, metrics


def final_estimates(scores, seed: int = 0, reps: int = FINAL_REPS) -> dict[str, tuple]:
    """{'mean': (point, low, high), 'iqm': (point, low, high)} of one score per run."""
    library, metrics = _rliable()
    scores = np.asarray(scores, dtype=np.float64).reshape(-1, 1)  # (runs, one task)

    def aggregate(x):
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    point, interval = _bootstrap(library, scores, aggregate, reps, seed)
    return {
        name: (float(point[i]), float(interval[0, i]), float(interval[1, i]))
        for i, name in enumerate(("mean", "iqm"))
    }


def curve_interval(values, seed: int = 0, reps: int = CURVE_REPS):
    """The 95% interval of the mean over runs at each iteration, `values` (runs, iterations):
    (low, high), each (iterations,)."""
    library, _ = _rliable()
    values = np.asarray(values, dtype=np.float64)
    # (runs, one task, iterations)
    _, interval = _bootstrap(library, values[:, None, :], lambda x: x.mean(axis=(0, 1)), reps, seed)
    return interval[0], interval[1]

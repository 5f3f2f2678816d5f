"""Statistics shared by the experiments' table scripts (`experiments/<method>/make_table.py`).

Every `run_table.py` appends one JSON line per (row, seed) run; `load_runs` reads them back, `mean_std` prints
a row's spread over seeds, and the paired intervals compare two rows run with the same seeds:
`paired_bootstrap` when per-example scores are stored (resampling seeds and examples), `paired_t_interval`
when only one number per seed is.

The table scripts are run by path (`python experiments/<method>/make_table.py`); each puts this folder on
`sys.path` to import this module.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
from scipy import stats

__all__ = [
    "done_runs",
    "load_runs",
    "logged_eval_metric",
    "mean_std",
    "paired_bootstrap",
    "paired_t_interval",
    "train_command",
]


def load_runs(path: str) -> dict[str, dict[int, dict]]:
    """{row: {seed: record}} from a JSON-lines file of run records with "row" and "seed" (a later line for
    the same row and seed, a rerun, replaces the earlier one)."""
    runs: dict[str, dict[int, dict]] = collections.defaultdict(dict)
    with open(path) as file:
        for line in file:
            if line.strip():
                record = json.loads(line)
                runs[record["row"]][record["seed"]] = record
    return runs


def done_runs(path: str) -> set[tuple[str, int, str]]:
    """The (row, seed, scale) of every run recorded in `path` (empty when the file does not exist yet), so a
    `run_table.py` that was stopped skips what it already ran."""
    if not os.path.exists(path):
        return set()
    with open(path) as file:
        records = [json.loads(line) for line in file if line.strip()]
    return {(record["row"], record["seed"], record["scale"]) for record in records}


def logged_eval_metric(workdir: str, step: int, name: str = "nme") -> float | None:
    """`name` of the evaluation a run logged at `step` in its metrics.jsonl (None if it logged none there)."""
    from landmarkjax.training.metric_writer import read_metrics

    for record in read_metrics(workdir, "eval"):
        if record["step"] == step:
            return float(record[name])
    return None


def _flag_value(value) -> str:
    if isinstance(value, tuple):
        return "'(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")'"
    return str(value)


def train_command(config_path: str, overrides: dict, workdir: str) -> str:
    """The `python train.py` command of a run: `config_path` with every dotted override as a --config flag."""
    flags = " ".join(f"--config.{key}={_flag_value(value)}" for key, value in overrides.items())
    return f"python train.py --config={config_path} --workdir={workdir} --progress=false {flags}"


def mean_std(values, digits: int) -> str:
    """"mean +- std" (sample std, ddof=1) with `digits` decimals; the value alone for a single seed."""
    values = np.asarray(values, np.float64)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} +- {values.std(ddof=1):.{digits}f}"


def paired_bootstrap(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b and its 95 % percentile interval; `a`, `b` [seeds, examples] paired by seed and by example
    (the same test set), resampling seeds and examples with replacement, `draws` times."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if diff.ndim != 2:
        raise ValueError(f"a and b must be [seeds, examples]; got shape {diff.shape}.")
    rng = np.random.default_rng(seed)
    num_seeds, num_examples = diff.shape
    seed_draws = rng.integers(0, num_seeds, size=(draws, num_seeds))
    example_draws = rng.integers(0, num_examples, size=(draws, num_examples))
    means = np.array([diff[s][:, e].mean() for s, e in zip(seed_draws, example_draws)])
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def paired_t_interval(a, b) -> tuple[float, float, float]:
    """Mean of a - b and its 95 % Student-t interval over the pairs (one score per seed in each)."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)

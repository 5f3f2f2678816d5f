"""Runs: train a config, evaluate a run's workdir, restore a trained model. The one code path that
`train.py`, `eval.py`, notebooks and TPU-pod scripts share.

    from landmarkjax import runs
    from landmarkjax.configs.supervised import get_config
    runs.train_and_evaluate(get_config(), "workdir/supervised")
    result = runs.evaluate_run("workdir/supervised")       # uses the run's own config.json
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from landmarkjax.methods import build_method
from landmarkjax.training import loop, sharding
from landmarkjax.training.method import Method
from landmarkjax.training.progress import ReportFn
from landmarkjax.training.run_config import load_config

__all__ = ["RestoredRun", "evaluate_run", "export_vgg_weights", "restore_run", "train_and_evaluate"]


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str],
    *,
    report: ReportFn | None = None,
    method: Method | None = None,
) -> dict[str, float]:
    """Trains `config.method` in `workdir` (resuming if it holds checkpoints) and evaluates it.

    Args:
      config: a method config (see `landmarkjax/configs/`).
      workdir: the run's directory; it receives `config.json`, checkpoints and metrics.
      report: optional `ProgressUpdate` callback (e.g. `landmarkjax.training.progress.TqdmProgress()`).
      method: a `Method` to train instead of `build_method(config)` (one defined outside the package).

    Returns:
      The final evaluation metrics, plus "step".
    """
    return loop.train(method or build_method(config), workdir, report=report)


def _config_of(workdir: str | os.PathLike[str], config: ml_collections.ConfigDict | None):
    return load_config(workdir) if config is None else config


def evaluate_run(
    workdir: str | os.PathLike[str],
    *,
    config: ml_collections.ConfigDict | None = None,
    step: int | None = None,
    method: Method | None = None,
) -> loop.EvaluationResult:
    """Evaluates a checkpoint of the run in `workdir` (default: the best one).

    Args:
      workdir: the run's directory.
      config: the config to evaluate with; default the run's own `config.json`.
      step: a checkpoint step instead of the best.
      method: a `Method` instead of `build_method(config)`.

    Raises:
      FileNotFoundError: no config.json (and no `config` given), or no checkpoint.
    """
    method = method or build_method(_config_of(workdir, config))
    return loop.evaluate_checkpoint(method, workdir, step=step)


@dataclasses.dataclass(frozen=True)
class RestoredRun:
    """A trained run, ready for inference: its method, checkpoint step, train state and frozen inputs."""

    method: Method
    step: int
    state: Any
    frozen: Any


def restore_run(
    workdir: str | os.PathLike[str],
    *,
    config: ml_collections.ConfigDict | None = None,
    step: int | None = None,
) -> RestoredRun:
    """Restores the best (or `step`'s) checkpoint of the run in `workdir` with the run's own config.

    Raises:
      FileNotFoundError: no config.json (and no `config` given), or no checkpoint.
    """
    method = build_method(_config_of(workdir, config))
    chosen, state = loop.restore_checkpoint(method, workdir, step=step)
    return RestoredRun(method, chosen, state, loop.place_frozen_inputs(method, sharding.make_data_mesh()))


def export_vgg_weights(
    workdir: str | os.PathLike[str], path: str | os.PathLike[str], *, step: int | None = None
) -> str:
    """Saves the VGG trunk of a trained colourisation run as a torchvision-layout `.npz`.

    `landmarkjax.models.vgg.load_vgg_params(path, depth)` reads it back to the trained arrays exactly;
    use it in IMM with `--config.imm.perceptual=vgg_file --config.imm.vgg_weights_path=PATH
    --config.imm.vgg_preprocess=colorization` (and `--config.imm.vgg_depth` = the run's `model.vgg_depth`).

    Args:
      workdir: the colourisation run's directory (its `config.json` and checkpoints).
      path: the `.npz` file to write (atomically).
      step: the checkpoint to export; default the run's best (`config.best_metric`, ab_error).

    Returns:
      `path` as a string.

    Raises:
      FileNotFoundError: no config.json or no checkpoint in `workdir`.
      ValueError: the run is not a colourisation run, or `path` does not end in ".npz".
    """
    restored = restore_run(workdir, step=step)
    export = getattr(restored.method, "export_trunk", None)
    if restored.method.name != "colorization" or export is None:
        raise ValueError(f"{os.fspath(workdir)} holds a {restored.method.name!r} run, not a colourisation run.")
    return export(restored.state, path)

"""Evaluate a run's best checkpoint: writes <workdir>/eval.json and <workdir>/predictions.png.

    python eval.py                                     # the default run of `python train.py`
    python eval.py --workdir=./workdir/supervised --step=500
    python eval.py --workdir=W --config.eval.threshold=0.1    # the run's config with an override

The run's own config (`<workdir>/config.json`, written by train.py) is used, so no training flag has to
be repeated; `--config.<field>=...` overrides apply on top of it. `--config=FILE` evaluates with another
config file instead.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image

from landmarkjax.configs.defaults import DEFAULT_METHOD, default_config_path, saved_config_path
from landmarkjax.training.distributed import maybe_initialize_distributed


def _flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name=V` or `--name V` in `argv` (None if absent); read before absl parses flags."""
    for index, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _workdir(argv: list[str]) -> str:
    return _flag_value(argv, "workdir") or os.path.join("workdir", DEFAULT_METHOD)


def _default_config(argv: list[str]) -> str:
    """The run's saved config when `--config` is not given and the workdir has one; else the default."""
    saved = saved_config_path(_workdir(argv))
    return saved if saved is not None and _flag_value(argv, "config") is None else default_config_path()


_CONFIG = config_flags.DEFINE_config_file(
    "config", _default_config(sys.argv), "Config file; default: the run's own <workdir>/config.json."
)
_WORKDIR = flags.DEFINE_string("workdir", None, f"Run directory; default ./workdir/{DEFAULT_METHOD}.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default: the best.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first.")

EVAL_FILENAME = "eval.json"
PREDICTIONS_FILENAME = "predictions.png"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the output readable; --verbosity=0 for INFO
    maybe_initialize_distributed(_DISTRIBUTED.value)
    import jax

    from landmarkjax.runs import evaluate_run

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("workdir", DEFAULT_METHOD)
    result = evaluate_run(workdir, config=config, step=_STEP.value)
    if jax.process_index() != 0:
        return
    record = {"step": result.step, "method": config.method, **result.metrics}
    with open(os.path.join(workdir, EVAL_FILENAME), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
    Image.fromarray(result.image).save(os.path.join(workdir, PREDICTIONS_FILENAME))
    print(json.dumps(record))


if __name__ == "__main__":
    app.run(main)

"""Evaluate a run's best checkpoint: writes <workdir>/eval.json and <workdir>/predictions.png.

    python eval.py                                     # the default run of `python train.py`
    python eval.py --config=landmarkjax/configs/supervised.py --workdir=./workdir/supervised --step=500

Use the same --config (and overrides) the run was trained with.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image

from landmarkjax.configs.defaults import default_config_path
from landmarkjax.training.distributed import maybe_initialize_distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", default_config_path(), "Method config file (ml_collections)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default ./workdir/<config.method>.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default: the best.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first.")

EVAL_FILENAME = "eval.json"
PREDICTIONS_FILENAME = "predictions.png"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the progress bar readable; --verbosity=0 for INFO
    maybe_initialize_distributed(_DISTRIBUTED.value)
    import jax

    from landmarkjax.training.loop import evaluate_checkpoint

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("workdir", config.method)
    result = evaluate_checkpoint(config, workdir, step=_STEP.value)
    if jax.process_index() != 0:
        return
    record = {"step": result.step, "method": config.method, **result.metrics}
    with open(os.path.join(workdir, EVAL_FILENAME), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
    Image.fromarray(result.image).save(os.path.join(workdir, PREDICTIONS_FILENAME))
    print(json.dumps(record))


if __name__ == "__main__":
    app.run(main)

"""Train a method and print its evaluation metrics as JSON lines.

    python train.py                                    # SBR on synthetic 64x64 faces and face clips
    python train.py --config=landmarkjax/configs/supervised.py --workdir=./workdir/supervised \
        --config.total_steps=2000 --config.batch_size=64

Re-running with the same --workdir resumes from its newest intact checkpoint. For a multi-process run
start one copy per process with --distributed (or LANDMARKJAX_DISTRIBUTED=1); on Cloud TPU, SLURM and
similar clusters JAX finds the other processes itself, elsewhere also pass --coordinator_address,
--num_processes and --process_id.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

from landmarkjax.configs.defaults import default_config_path
from landmarkjax.training.distributed import maybe_initialize_distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", default_config_path(), "Method config file (ml_collections)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default ./workdir/<config.method>.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar (evaluations are printed either way).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the progress bar readable; --verbosity=0 for INFO
    maybe_initialize_distributed(
        _DISTRIBUTED.value,
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
    )
    # Imported after the distributed runtime is up: nothing may touch a JAX backend before it.
    import jax

    from landmarkjax.runs import train_and_evaluate
    from landmarkjax.training.progress import TqdmProgress

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("workdir", config.method)
    is_main = jax.process_index() == 0
    progress = TqdmProgress(show_bar=_PROGRESS.value) if is_main else None
    try:
        metrics = train_and_evaluate(config, workdir, report=progress)
    finally:
        if progress is not None:
            progress.close()
    if is_main:
        print(json.dumps({"split": "final", "workdir": os.path.abspath(workdir), **metrics}))


if __name__ == "__main__":
    app.run(main)

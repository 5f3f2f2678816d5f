"""The config a run was trained with, read back from its workdir (`<workdir>/config.json`).

    python eval.py --workdir=W                                   # uses this file implicitly
    python eval.py --config=landmarkjax/configs/saved.py:W       # the same, spelled out
    python train.py --config=landmarkjax/configs/saved.py:W --config.total_steps=2000   # continue W longer
"""

from __future__ import annotations

import ml_collections

from landmarkjax.training.run_config import load_config


def get_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config saved by `train` in `workdir` (FileNotFoundError if there is none)."""
    return load_config(workdir)

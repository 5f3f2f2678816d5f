"""Run provenance: the resolved config of a run, written into its workdir and read back.

`train` writes `<workdir>/config.json` (every field after command-line overrides) when it starts, so
`python eval.py --workdir=W` evaluates exactly what was trained without repeating any flag.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

__all__ = ["CONFIG_FILENAME", "load_config", "save_config"]

CONFIG_FILENAME = "config.json"


def save_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike[str]) -> str:
    """Writes `config` as `<workdir>/config.json` (process 0; atomically) and returns the path."""
    path = os.path.join(os.fspath(workdir), CONFIG_FILENAME)
    if jax.process_index() == 0:
        os.makedirs(os.fspath(workdir), exist_ok=True)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)
    return path


def load_config(workdir: str | os.PathLike[str]) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was trained with.

    JSON has no tuples: every list is read back as a tuple (the type config files use for sequences, and
    one that `--config.field=...` command-line overrides accept).

    Raises:
      FileNotFoundError: if the workdir holds no `config.json` (not a landmarkjax run, or one written
        before runs recorded their config).
    """
    path = os.path.join(os.fspath(workdir), CONFIG_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILENAME} in {os.fspath(workdir)}: pass the run's config explicitly "
            "(--config=landmarkjax/configs/<method>.py plus the overrides it was trained with)."
        )
    with open(path, encoding="utf-8") as file:
        return ml_collections.ConfigDict(_lists_to_tuples(json.load(file)))


def _lists_to_tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists_to_tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_lists_to_tuples(item) for item in value)
    return value

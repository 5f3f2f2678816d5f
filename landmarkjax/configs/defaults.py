"""Which config `train.py` and `eval.py` use when `--config` is not given."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_METHOD", "config_path", "default_config_path", "flag_value", "saved_config_path"]

# The default method of the command-line tools.
DEFAULT_METHOD = "sbr"


def config_path(method: str) -> str:
    """Path of the config file of `method` (`landmarkjax/configs/<method>.py`).

    Raises:
      FileNotFoundError: if there is no such config file.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{method}.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No config file for method {method!r} at {path}.")
    return path


def default_config_path() -> str:
    """Path of the default method's config file."""
    return config_path(DEFAULT_METHOD)


def saved_config_path(workdir: str) -> str | None:
    """`landmarkjax/configs/saved.py:<workdir>` (a config-file flag value that loads the run's own
    `config.json`) if `workdir` holds one, else None."""
    if not os.path.exists(os.path.join(workdir, "config.json")):
        return None
    return f"{config_path('saved')}:{workdir}"


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name=V` or `--name V` in `argv` (None if absent): lets a CLI choose its config-file
    flag's default (e.g. the run's saved config) before absl parses the flags."""
    for index, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and index + 1 < len(argv):
            return argv[index + 1]
    return None

"""The learning methods, each a module implementing `landmarkjax.training.method.Method`.

`METHODS` is the registry: a config's `method` field names one of its keys. Modules in this package
that are not listed (shared helpers) are not methods.
"""

from __future__ import annotations

import importlib

import ml_collections

from landmarkjax.training.method import Method

__all__ = ["METHODS", "available_methods", "build_method"]

#: Method name -> the module whose `build(config)` returns it.
METHODS: dict[str, str] = {
    "supervised": "landmarkjax.methods.supervised",
    "sbr": "landmarkjax.methods.sbr",
    "semisup": "landmarkjax.methods.semisup",
    "imm": "landmarkjax.methods.imm",
    "vos": "landmarkjax.methods.vos",
    "colorization": "landmarkjax.methods.colorization",
    "hmr": "landmarkjax.methods.hmr",
}


def available_methods() -> list[str]:
    """The registered method names, sorted."""
    return sorted(METHODS)


def build_method(config: ml_collections.ConfigDict) -> Method:
    """`build(config)` of the module registered for `config.method`.

    Raises:
      ValueError: if `config.method` is not a registered method.
    """
    name = config.get("method")
    if name not in METHODS:
        raise ValueError(f"config.method must be one of {available_methods()}; got {name!r}.")
    return importlib.import_module(METHODS[name]).build(config)

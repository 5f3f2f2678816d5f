"""The interface between a learning method and the method-agnostic training loop.

A method module (`landmarkjax.methods.<name>`) defines `build(config) -> Method`. The loop
(`landmarkjax.training.loop`) only ever calls the members of `Method`:

  * `init_state(rng)`: the initial train state (a pytree of arrays; the loop jits it and replicates it);
  * `train_step(state, batch, rng, *, axis_name=None) -> (state, metrics)`: one pure optimisation step on
    a batch; `metrics` is a dict of scalars that includes `"loss"`. With `axis_name` set, gradients and
    metrics are averaged over that mapped axis, so the same function works under `jax.pmap`;
  * `eval_step(state, batch) -> dict of per-example arrays` (leading dimension = batch);
  * `evaluate(state, batches) -> dict[str, float]`: metrics over a whole evaluation set;
  * `train_loader(batch_size)` / `eval_loader(batch_size)`: this process's data (dicts of numpy arrays
    with a leading batch dimension); the training iterator has `get_state()` / `set_state()` so the
    loop can checkpoint its position;
  * `visualize(state, batch) -> uint8 image` for `eval.py`.

`Method` implements `evaluate` once for every method on top of `eval_step` and `summarize`.
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
from typing import Any, Iterable, Iterator, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarkjax.training.sharding import EXAMPLE_MASK_KEY, to_host

__all__ = ["TrainState", "Method", "build_method", "available_methods", "mean_over_axis"]

_NOT_METHODS = {"base"}


@flax.struct.dataclass
class TrainState:
    """The state most methods train: step counter, model parameters, optimiser state.

    Attributes:
      step: int32 scalar, optimisation steps taken.
      params: model parameters (a pytree of arrays).
      opt_state: the optax optimiser state for `params`.
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any


def mean_over_axis(tree: Any, axis_name: str | None) -> Any:
    """`jax.lax.pmean` of every leaf over `axis_name` (identity when it is None)."""
    if axis_name is None:
        return tree
    return jax.lax.pmean(tree, axis_name)


class Method(abc.ABC):
    """Base class of a learning method (see the module docstring for the contract)."""

    name: str = ""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self._eval_step_jit = jax.jit(self.eval_step)

    @abc.abstractmethod
    def init_state(self, rng: jax.Array) -> Any:
        """The initial train state from a PRNG key (pure; jittable)."""

    @abc.abstractmethod
    def train_step(
        self, state: Any, batch: Mapping[str, jax.Array], rng: jax.Array, *, axis_name: str | None = None
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One optimisation step (pure). Returns the new state and scalar metrics including "loss"."""

    @abc.abstractmethod
    def eval_step(self, state: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Per-example evaluation outputs (pure): each value has the batch as leading dimension."""

    @abc.abstractmethod
    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Metrics of a whole evaluation set from the concatenated `eval_step` outputs (numpy)."""

    @abc.abstractmethod
    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Endless iterator over this process's training batches of `batch_size` (checkpointable)."""

    @abc.abstractmethod
    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """One pass over this process's share of the evaluation set (the last batch may be smaller)."""

    @abc.abstractmethod
    def visualize(self, state: Any, batch: Mapping[str, Any]) -> np.ndarray:
        """A uint8 `[H, W, 3]` picture of the model's predictions on `batch`."""

    def evaluate(self, state: Any, batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
        """Runs `eval_step` over `batches` and summarises all outputs.

        Args:
          state: the train state.
          batches: dicts of arrays (host numpy or global `jax.Array`s). An optional
            `EXAMPLE_MASK_KEY` entry `[B]` marks padding rows (0) that are left out.

        Returns:
          `summarize` of the outputs of every real example.
        """
        collected: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            mask = batch.get(EXAMPLE_MASK_KEY)
            inputs = {key: value for key, value in batch.items() if key != EXAMPLE_MASK_KEY}
            outputs = to_host(self._eval_step_jit(state, inputs))
            keep = slice(None) if mask is None else to_host(mask) > 0
            for key, value in outputs.items():
                collected.setdefault(key, []).append(np.asarray(value)[keep])
        if not collected:
            raise ValueError("batches must contain at least one batch.")
        return self.summarize({key: np.concatenate(parts) for key, parts in collected.items()})


def available_methods() -> list[str]:
    """Names of the method modules in `landmarkjax.methods`."""
    package = importlib.import_module("landmarkjax.methods")
    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__) if info.name not in _NOT_METHODS
    )


def build_method(config: ml_collections.ConfigDict) -> Method:
    """`landmarkjax.methods.<config.method>.build(config)`.

    Raises:
      ValueError: if `config.method` names no method module.
    """
    name = config.get("method")
    known = available_methods()
    if name not in known:
        raise ValueError(f"config.method must be one of {known}; got {name!r}.")
    module = importlib.import_module(f"landmarkjax.methods.{name}")
    return module.build(config)

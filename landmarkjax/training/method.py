"""The Method contract: what a learning method gives the method-agnostic training loop.

The training layer owns this contract; every method (`landmarkjax.methods.<name>`, listed in
`landmarkjax.methods.METHODS`) implements it, and nothing in `landmarkjax.training` imports a concrete
method. The loop (`landmarkjax.training.loop.train`) only ever calls these members of `Method`:

  * `init_state(rng) -> state`: the initial train state, a pytree of arrays (usually `TrainState`); the
    loop jits it and replicates it over the mesh.
  * `frozen_inputs() -> pytree`: non-trainable arrays the method needs (pretrained perceptual-network
    weights, a body model, ...). The loop calls it once, places the arrays replicated on the mesh and
    passes them to every jitted call as an argument: they are not compiled into the program as
    constants, not part of the optimiser state and not saved in checkpoints (a method that wants an
    array checkpointed keeps it in its state instead). Default: `{}`.
  * `phases() -> tuple[Phase, ...]`: the training phases in order (SBR's supervised stage, then its
    registration stage; a warm-up that switches a loss on; a GAN's schedule). Each step belongs to one
    phase; the loop compiles one train step per phase, logs the phase with every train record and an
    event when a phase starts, and checkpoints the phase in force with the data position. Default: one
    phase, "train".
  * `train_loader(batch_size) -> iterator`: this process's training data, an iterator (or several
    streams, see `Streams`) with `get_state()` / `set_state()` so the loop can checkpoint its position;
    `next_batch(data, phase) -> batch` draws the batch a phase trains on (default: `next(data)`).
  * `train_step(state, batch, rng, frozen, *, phase, axis_name=None) -> (state, metrics)`: one pure
    optimisation step. `phase` is a static string; `metrics` is a dict of scalars that includes
    `"loss"`. Every metric named `"loss"` or `"*_loss"` is watched by the loop's NaN guard. With
    `axis_name` set, gradients and metrics are averaged over that mapped axis (`mean_over_axis`), so the
    same function also runs under `jax.pmap`. Several optimisers live in one `TrainState` as dicts keyed
    by part (`init_optimizer_states`, `apply_gradients(..., part=name)`).
  * `evaluate(state, frozen, context) -> dict[str, float]`: metrics over the evaluation set. The default
    runs the jitted `eval_step(state, batch, frozen)` (per-example outputs) over
    `eval_loader(batch_size)` and `summarize`s them. A method may override `evaluate` and own its loop:
    whole videos of any length with a memory carried across frames, or two passes (fit on training-set
    predictions, then score the test set); `EvalContext` turns host batches into global arrays.
  * `visualize(state, batch, frozen) -> uint8 [H, W, 3]`: a picture of predictions for `eval.py`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from landmarkjax.training import sharding

__all__ = [
    "DEFAULT_PHASE",
    "EvalContext",
    "Method",
    "Phase",
    "TrainState",
    "apply_gradients",
    "gradient_step",
    "init_optimizer_states",
    "is_loss_name",
    "mean_over_axis",
]

DEFAULT_PHASE = "train"


@flax.struct.dataclass
class TrainState:
    """The state most methods train: step counter, model parameters, optimiser state.

    With several optimisers (a generator and a discriminator), `params` and `opt_state` are dicts keyed
    by the same part names (see `init_optimizer_states` and `apply_gradients`).

    Attributes:
      step: int32 scalar, optimisation steps taken.
      params: model parameters (a pytree of arrays).
      opt_state: the optax optimiser state for `params`.
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any


def init_optimizer_states(
    optimizers: Mapping[str, optax.GradientTransformation], params: Mapping[str, Any]
) -> dict[str, Any]:
    """One optimiser state per part: `{name: optimizers[name].init(params[name])}`.

    Raises:
      ValueError: if the parts of `optimizers` and `params` differ.
    """
    if set(optimizers) != set(params):
        raise ValueError(
            f"optimizers and params must have the same parts; got {sorted(optimizers)} and {sorted(params)}."
        )
    return {name: optimizers[name].init(params[name]) for name in optimizers}


def apply_gradients(
    state: TrainState, grads: Any, optimizer: optax.GradientTransformation, *, part: str | None = None
) -> TrainState:
    """Applies one optimiser update; the step counter is left alone (a step may update several parts).

    Args:
      state: the train state.
      grads: gradients shaped like `state.params` (or like `state.params[part]`).
      optimizer: the optax transformation of those parameters.
      part: with several optimisers, the part (key of `state.params` and `state.opt_state`) to update;
        the other parts are returned unchanged.

    Returns:
      The state with updated parameters and optimiser state.
    """
    params = state.params if part is None else state.params[part]
    opt_state = state.opt_state if part is None else state.opt_state[part]
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if part is None:
        return state.replace(params=params, opt_state=opt_state)
    return state.replace(
        params={**state.params, part: params}, opt_state={**state.opt_state, part: opt_state}
    )


def gradient_step(
    state: TrainState,
    objective: Callable[..., tuple[jax.Array, dict[str, jax.Array]]],
    optimizer: optax.GradientTransformation,
    *args: Any,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser step on `objective(params, *args) -> (loss, parts)`: the body of most train steps.

    Gradients (and the reported metrics) are averaged over `axis_name` when it is set (`jax.pmap`).

    Returns:
      The state one step on, and the metrics `{"loss", **parts, "grad_norm"}` (scalars).
    """
    (loss, parts), grads = jax.value_and_grad(objective, has_aux=True)(state.params, *args)
    grads = mean_over_axis(grads, axis_name)
    new_state = apply_gradients(state, grads, optimizer).replace(step=state.step + 1)
    metrics = mean_over_axis({"loss": loss, **parts}, axis_name)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return new_state, metrics


def mean_over_axis(tree: Any, axis_name: str | None) -> Any:
    """`jax.lax.pmean` of every leaf over `axis_name` (identity when it is None)."""
    if axis_name is None:
        return tree
    return jax.lax.pmean(tree, axis_name)


def is_loss_name(name: str) -> bool:
    """Whether the loop's NaN guard watches the metric `name` ("loss" and every "*_loss")."""
    return name == "loss" or name.endswith("_loss")


@dataclasses.dataclass(frozen=True)
class Phase:
    """A training phase: a name (static inside the train step) and its length.

    Attributes:
      name: the phase's name, passed to `train_step` and `next_batch` and logged.
      num_steps: steps in the phase; None for the last phase (until `total_steps`).
    """

    name: str
    num_steps: int | None = None


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What a method's `evaluate` needs to read its data onto the mesh.

    Attributes:
      mesh: the data mesh (axis `data` over every device of every process).
      host_batch_size: this process's share of `config.eval_batch_size`.
    """

    mesh: Mesh
    host_batch_size: int

    def global_batches(self, host_batches: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, jax.Array]]:
        """Host batches as global arrays, each padded to `host_batch_size` rows with
        `sharding.EXAMPLE_MASK_KEY` marking the real rows (every process must yield as many batches)."""
        return sharding.global_batches(host_batches, self.mesh, self.host_batch_size)

    def to_global(self, host_batch: Mapping[str, Any]) -> dict[str, jax.Array]:
        """One host batch (leading dimension split over the devices) as global arrays."""
        return sharding.host_local_to_global(host_batch, self.mesh)

    @staticmethod
    def to_host(tree: Any) -> Any:
        """A pytree of (possibly multi-process) arrays as numpy arrays of the global values."""
        return sharding.to_host(tree)


class Method(abc.ABC):
    """Base class of a learning method (see the module docstring for the contract)."""

    name: str = ""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self._eval_step_jit = jax.jit(self.eval_step)

    @abc.abstractmethod
    def init_state(self, rng: jax.Array) -> Any:
        """The initial train state from a PRNG key (pure; jittable)."""

    def frozen_inputs(self) -> Any:
        """Non-trainable arrays passed to every step (host numpy or jax arrays); default none."""
        return {}

    def phases(self) -> tuple[Phase, ...]:
        """The training phases in order; default one phase, `DEFAULT_PHASE`, for the whole run."""
        return (Phase(DEFAULT_PHASE),)

    @abc.abstractmethod
    def train_loader(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """This process's training data of `batch_size` per batch (checkpointable: get/set_state)."""

    def next_batch(self, data: Any, phase: str) -> dict[str, np.ndarray]:
        """The next host batch that `phase` trains on, drawn from `train_loader`'s data."""
        del phase
        return next(data)

    @abc.abstractmethod
    def train_step(
        self,
        state: Any,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One optimisation step (pure). Returns the new state and scalar metrics including "loss"."""

    @abc.abstractmethod
    def eval_step(self, state: Any, batch: Mapping[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Per-example evaluation outputs (pure): each value has the batch as leading dimension."""

    @abc.abstractmethod
    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Metrics of a whole evaluation set from the concatenated `eval_step` outputs (numpy)."""

    @abc.abstractmethod
    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """One pass over this process's share of the evaluation set (the last batch may be smaller)."""

    @abc.abstractmethod
    def visualize(self, state: Any, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        """A uint8 `[H, W, 3]` picture of the model's predictions on a host `batch`."""

    def evaluate(self, state: Any, frozen: Any, context: EvalContext) -> dict[str, float]:
        """Metrics over the evaluation set: `evaluate_batches` over `eval_loader` (override to own the loop)."""
        return self.evaluate_batches(
            state, frozen, context.global_batches(self.eval_loader(context.host_batch_size))
        )

    def evaluate_batches(
        self, state: Any, frozen: Any, batches: Iterable[Mapping[str, Any]]
    ) -> dict[str, float]:
        """Runs `eval_step` over `batches` and summarises all outputs.

        Args:
          state: the train state.
          frozen: the frozen inputs.
          batches: dicts of arrays (host numpy or global `jax.Array`s). An optional
            `sharding.EXAMPLE_MASK_KEY` entry `[B]` marks padding rows (0) that are left out.

        Returns:
          `summarize` of the outputs of every real example.

        Raises:
          ValueError: if `batches` is empty.
        """
        collected: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            mask = batch.get(sharding.EXAMPLE_MASK_KEY)
            inputs = {key: value for key, value in batch.items() if key != sharding.EXAMPLE_MASK_KEY}
            outputs = sharding.to_host(self._eval_step_jit(state, inputs, frozen))
            keep = slice(None) if mask is None else sharding.to_host(mask) > 0
            for key, value in outputs.items():
                collected.setdefault(key, []).append(np.asarray(value)[keep])
        if not collected:
            raise ValueError("batches must contain at least one batch.")
        return self.summarize({key: np.concatenate(parts) for key, parts in collected.items()})


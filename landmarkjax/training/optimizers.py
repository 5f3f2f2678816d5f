"""Optimisers from a config: optax Adam/AdamW/SGD with warm-up, a decay schedule and clipping."""

from __future__ import annotations

import ml_collections
import optax

__all__ = ["learning_rate_schedule", "make_optimizer"]


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warm-up over `config.warmup_steps`, then `config.schedule`: "constant" or "cosine".

    Args:
      config: has `learning_rate`, `warmup_steps` and `schedule`.
      total_steps: length of the run (the cosine decays to 0 at its end).
    """
    if config.schedule not in ("constant", "cosine"):
        raise ValueError(f"optimizer.schedule must be 'constant' or 'cosine'; got {config.schedule!r}.")
    warmup = max(int(config.warmup_steps), 0)
    if config.schedule == "constant":
        after = optax.constant_schedule(config.learning_rate)
    else:
        after = optax.cosine_decay_schedule(config.learning_rate, max(total_steps - warmup, 1))
    if warmup == 0:
        return after
    ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return optax.join_schedules([ramp, after], [warmup])


def make_optimizer(
    config: ml_collections.ConfigDict, total_steps: int, schedule: optax.Schedule | None = None
) -> optax.GradientTransformation:
    """The optimiser described by `config`.

    Args:
      config: `name` ("adam", "adamw" or "sgd"), `learning_rate`, `warmup_steps`, `schedule`,
        `weight_decay` (decoupled for adamw, L2-in-gradient for adam/sgd, as in the SBR reference),
        `momentum` (sgd), `grad_clip_norm` (0 disables clipping).
      total_steps: length of the run, for the schedule.
      schedule: a learning rate per step that replaces `learning_rate_schedule(config, total_steps)`
        (a method with phases joins one schedule per phase, as SBR does).
    """
    if schedule is None:
        schedule = learning_rate_schedule(config, total_steps)
    if config.name == "adamw":
        core = optax.adamw(schedule, weight_decay=config.weight_decay)
    elif config.name in ("adam", "sgd"):
        step = optax.adam(schedule) if config.name == "adam" else optax.sgd(schedule, config.momentum)
        decay = [optax.add_decayed_weights(config.weight_decay)] if config.weight_decay else []
        core = optax.chain(*decay, step)
    else:
        raise ValueError(f"optimizer.name must be 'adam', 'adamw' or 'sgd'; got {config.name!r}.")
    if config.grad_clip_norm:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), core)
    return core

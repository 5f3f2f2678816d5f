"""Progress reports from the training loop, and a tqdm progress bar for command lines.

The loop never prints: it calls an optional `report(update)` callback. `TqdmProgress` is such a callback
for CLIs and notebooks: a bar with steps/s, loss and ETA, and every evaluation printed as one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping

__all__ = ["ProgressUpdate", "ReportFn", "TqdmProgress"]


@dataclasses.dataclass(frozen=True)
class ProgressUpdate:
    """One report from the loop.

    Attributes:
      kind: "start" (before the first step; `step` is the resumed step), "train" (metrics averaged
        since the previous train update), "eval" (evaluation metrics), or "message" (e.g. a skipped
        corrupt checkpoint).
      step: steps completed.
      total_steps: steps the run will take in all.
      metrics: the numbers of a "train" or "eval" update.
      steps_per_second: training speed since the previous "train" update, when known.
      message: text of a "message" update.
      phase: the training phase in force (see `landmarkjax.training.method.Phase`), when known.
    """

    kind: str
    step: int
    total_steps: int
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    steps_per_second: float | None = None
    message: str | None = None
    phase: str | None = None


ReportFn = Callable[[ProgressUpdate], None]


class TqdmProgress:
    """A `ReportFn` drawing a tqdm bar; evaluations (as JSON lines) and messages are printed above it.

    Args:
      show_bar: draw the bar; if False only the evaluation lines and messages are printed.
      print_fn: where evaluation lines and messages go; default `tqdm.write` (keeps the bar intact).
    """

    def __init__(self, show_bar: bool = True, print_fn: Callable[[str], None] | None = None):
        from tqdm import tqdm

        self._tqdm = tqdm
        self._show_bar = show_bar
        self._print = print_fn or tqdm.write
        self._bar: Any = None

    def __call__(self, update: ProgressUpdate) -> None:
        if update.kind == "start" and self._show_bar:
            self._bar = self._tqdm(
                total=update.total_steps, initial=update.step, unit="step", dynamic_ncols=True
            )
        elif update.kind == "train" and self._bar is not None:
            self._bar.update(update.step - self._bar.n)
            postfix = {name: f"{value:.4g}" for name, value in update.metrics.items() if name == "loss"}
            if update.phase is not None:
                postfix["phase"] = update.phase
            self._bar.set_postfix(postfix)
        elif update.kind == "eval":
            self._print(json.dumps({"step": update.step, "split": "eval", **dict(update.metrics)}))
        elif update.kind == "message" and update.message:
            self._print(update.message)

    def close(self) -> None:
        """Closes the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

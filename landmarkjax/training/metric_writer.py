"""Metrics of a run on disk: JSON lines (`<workdir>/metrics.jsonl`) and TensorBoard event files.

Only process 0 writes, so a multi-process run produces one log. Each JSON line is one record:
`{"step": int, "split": "train" | "eval" | "event", "time": unix seconds, <name>: value, ...}`.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import jax

__all__ = ["METRICS_FILENAME", "TENSORBOARD_DIRNAME", "MetricWriter", "read_metrics"]

METRICS_FILENAME = "metrics.jsonl"
TENSORBOARD_DIRNAME = "tensorboard"


def _json_value(value: Any) -> Any:
    """Plain Python numbers for JSON; NaN/inf become strings so every line stays valid JSON."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    number = float(value)
    if math.isfinite(number):
        return int(number) if isinstance(value, int) else number
    return str(number)


class MetricWriter:
    """Appends metric records to `<workdir>/metrics.jsonl` and TensorBoard (`<workdir>/tensorboard`).

    Args:
      workdir: the run's directory (created if missing).
      enabled: write anything at all; default: only on process 0.
      tensorboard: also write TensorBoard scalars (via tensorboardX).
    """

    def __init__(
        self, workdir: str | os.PathLike[str], *, enabled: bool | None = None, tensorboard: bool = True
    ):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.path = os.path.join(os.fspath(workdir), METRICS_FILENAME)
        self._summary = None
        if not self.enabled:
            return
        os.makedirs(os.fspath(workdir), exist_ok=True)
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._summary = SummaryWriter(os.path.join(os.fspath(workdir), TENSORBOARD_DIRNAME))

    def write(self, step: int, split: str, values: Mapping[str, Any]) -> None:
        """Writes one record; numeric values also go to TensorBoard as `<split>/<name>`."""
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, "time": time.time()}
        record.update({name: _json_value(value) for name, value in values.items()})
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        if self._summary is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._summary.add_scalar(f"{split}/{name}", value, int(step))
            self._summary.flush()

    def drop_after(self, step: int) -> int:
        """Removes the JSON records of steps after `step` (a resumed run re-trains them); returns how many.

        TensorBoard's event files are append-only: TensorBoard itself shows the re-trained steps in place
        of the dropped ones.
        """
        if not self.enabled or not os.path.exists(self.path):
            return 0
        with open(self.path, encoding="utf-8") as file:
            lines = [line for line in file if line.strip()]
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        if len(kept) < len(lines):
            temporary = self.path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                file.writelines(kept)
            os.replace(temporary, self.path)
        return len(lines) - len(kept)

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer."""
        if self._summary is not None:
            self._summary.close()
            self._summary = None


def read_metrics(workdir: str | os.PathLike[str], split: str | None = None) -> list[dict[str, Any]]:
    """The records of `<workdir>/metrics.jsonl` in file order (optionally only one split)."""
    path = os.path.join(os.fspath(workdir), METRICS_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No metrics file at {path}.")
    with open(path, encoding="utf-8") as file:
        records = [json.loads(line) for line in file if line.strip()]
    return [r for r in records if split is None or r["split"] == split]

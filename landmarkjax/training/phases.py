"""Training phases as data: which phase is in force at each step, checkpointed with the data position.

`PhaseSchedule` walks a method's `phases()` as the steps go by. Its state (the phase in force and the
step it started after) is saved in every checkpoint together with the data iterator's position
(`TrainData`), so a resumed run continues in the phase it was in, and a checkpoint written under
other phases is refused rather than silently continued in the wrong one.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

from landmarkjax.training._iterator_state import decode_state, encode_state
from landmarkjax.training.method import Phase

__all__ = ["PhaseSchedule", "TrainData"]


class PhaseSchedule:
    """The phase in force at each step of a run.

    Args:
      phases: the phases in order; every one but the last has a positive `num_steps`; names unique.

    Raises:
      ValueError: on an empty list, a duplicate name, or a missing / non-positive length.
    """

    def __init__(self, phases: Sequence[Phase]):
        phases = tuple(phases)
        if not phases:
            raise ValueError("a method must have at least one phase.")
        names = [phase.name for phase in phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique; got {names}.")
        for phase in phases[:-1]:
            if phase.num_steps is None or phase.num_steps <= 0:
                raise ValueError(
                    f"phase {phase.name!r} needs a positive num_steps (only the last phase may run to the "
                    f"end); got {phase.num_steps}."
                )
        last = phases[-1]
        if last.num_steps is not None and last.num_steps <= 0:
            raise ValueError(f"phase {last.name!r} needs a positive num_steps or None; got {last.num_steps}.")
        self.phases = phases
        self.index = 0
        self.start = 0  # steps completed when the current phase began

    @property
    def current(self) -> Phase:
        """The phase in force."""
        return self.phases[self.index]

    def advance(self, step: int) -> bool:
        """Moves to the phase that step `step` (1-based, about to run) belongs to.

        Returns:
          True if a new phase started with this step.
        """
        started = False
        while True:
            phase = self.current
            last = self.index == len(self.phases) - 1
            if last or phase.num_steps is None or step <= self.start + phase.num_steps:
                return started
            self.start += phase.num_steps
            self.index += 1
            started = True

    def get_state(self) -> dict[str, Any]:
        return {"phase": self.current.name, "start": self.start}

    def set_state(self, state: dict[str, Any]) -> None:
        names = [phase.name for phase in self.phases]
        if state["phase"] not in names:
            raise ValueError(f"the checkpoint is in phase {state['phase']!r}; this run's phases are {names}.")
        self.index = names.index(state["phase"])
        self.start = int(state["start"])


class TrainData:
    """A method's training data and the phase schedule, checkpointed together.

    Args:
      data: what `Method.train_loader` returned (has `get_state()` / `set_state()`).
      schedule: the run's `PhaseSchedule`.
    """

    def __init__(self, data: Iterator[Any], schedule: PhaseSchedule):
        self.data = data
        self.schedule = schedule

    def get_state(self) -> bytes:
        state = {"phase": self.schedule.get_state(), "data": encode_state(self.data.get_state())}
        return json.dumps(state).encode("utf-8")

    def set_state(self, state: bytes) -> None:
        record = json.loads(state.decode("utf-8"))
        self.schedule.set_state(record["phase"])
        self.data.set_state(decode_state(record["data"]))

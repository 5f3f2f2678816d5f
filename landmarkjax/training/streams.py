"""Several named training streams drawn from together, checkpointed as one.

A method whose phases read different data (SBR: labelled images in every phase, unlabelled clips in its
registration phase) returns `Streams(labelled=..., clips=...)` from `train_loader` and picks the
streams a phase needs in `next_batch`. A stream advances only when it is drawn from.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from landmarkjax.training._iterator_state import decode_state, encode_state

__all__ = ["Streams"]


class Streams:
    """Named checkpointable iterators (each with `get_state()` / `set_state()`).

    Args:
      **streams: the iterators by name.
    """

    def __init__(self, **streams: Iterator[Any]):
        if not streams:
            raise ValueError("Streams needs at least one stream.")
        self.streams = streams

    def __getitem__(self, name: str) -> Iterator[Any]:
        return self.streams[name]

    def next(self, name: str) -> Any:
        """The next element of stream `name`."""
        return next(self.streams[name])

    def get_state(self) -> bytes:
        states = {name: encode_state(stream.get_state()) for name, stream in self.streams.items()}
        return json.dumps(states).encode("utf-8")

    def set_state(self, state: bytes) -> None:
        states = json.loads(state.decode("utf-8"))
        if set(states) != set(self.streams):
            raise ValueError(f"the saved streams are {sorted(states)}; this run has {sorted(self.streams)}.")
        for name, stream in self.streams.items():
            stream.set_state(decode_state(states[name]))

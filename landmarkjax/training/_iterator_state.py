"""JSON-safe encoding of an iterator's checkpoint state (Grain's is bytes; others may be JSON values)."""

from __future__ import annotations

import base64
from typing import Any


def encode_state(state: Any) -> dict[str, Any]:
    """`{"bytes_base64": ...}` for bytes, `{"json": state}` for anything JSON can hold."""
    if isinstance(state, bytes):
        return {"bytes_base64": base64.b64encode(state).decode("ascii")}
    return {"json": state}


def decode_state(record: dict[str, Any]) -> Any:
    """The inverse of `encode_state`."""
    if "bytes_base64" in record:
        return base64.b64decode(record["bytes_base64"])
    return record["json"]

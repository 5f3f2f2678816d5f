"""Damaging a saved checkpoint's files the ways storage and crashes do (for the corruption tests).

Used by tests/test_checkpoint.py and by the worker processes of tests/test_checkpoint_multiprocess.py.
"""

from __future__ import annotations

import os
import shutil

# What `damage_checkpoint` can do: "<how>_<what>" with how in delete/truncate/garbage and what in
# arrays/manifest, and "empty_directory".
DAMAGE_KINDS = tuple(
    f"{how}_{what}" for what in ("arrays", "manifest") for how in ("delete", "truncate", "garbage")
) + ("empty_directory",)


def array_files(step_dir: str | os.PathLike[str]) -> list[str]:
    """The array data files of a checkpoint's state (the `d/` folders of its OCDBT databases)."""
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(step_dir, "state"))
        if os.path.basename(root) == "d"
        for name in names
    )


def manifest_file(step_dir: str | os.PathLike[str]) -> str:
    return os.path.join(step_dir, "manifest", "manifest.json")


def damage_file(path: str, how: str) -> None:
    """Deletes `path`, truncates it to a third, or overwrites it with as many random bytes."""
    if how == "delete":
        os.remove(path)
        return
    with open(path, "rb") as file:
        data = file.read()
    replacement = data[: len(data) // 3] if how == "truncate" else os.urandom(len(data))
    with open(path, "wb") as file:
        file.write(replacement)


def damage_checkpoint(step_dir: str | os.PathLike[str], kind: str) -> None:
    """Damages the checkpoint in `step_dir` as `kind` (one of DAMAGE_KINDS) says."""
    if kind == "empty_directory":  # no atomic rename, and a crash right after creating the directory
        for entry in os.scandir(step_dir):
            if entry.is_dir():
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        return
    how, what = kind.split("_")
    paths = array_files(step_dir) if what == "arrays" else [manifest_file(step_dir)]
    assert paths, f"nothing to damage in {step_dir}"
    for path in paths:
        damage_file(path, how)

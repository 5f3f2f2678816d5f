"""Runs a notebook of colabs/ top to bottom on CPU, as a user would (shared by the two notebook test files).

The notebooks are split over two test files so that pytest-xdist's `--dist loadfile` runs them on both
workers (each notebook takes up to a couple of minutes of CPU; one file would serialise them all).
"""

import pathlib

import nbformat
from nbclient import NotebookClient

COLABS = sorted((pathlib.Path(__file__).resolve().parent.parent / "colabs").glob("*.ipynb"))

# The notebooks that tests/test_notebooks.py runs; tests/test_notebooks_methods.py runs every other one.
FIRST_FILE = ("quickstart.ipynb", "sbr.ipynb", "smpl.ipynb", "vos.ipynb")


def run_notebook(path: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # notebooks that write files write them here, not into the checkout
    # The kernel sees this machine's real devices, as a user's would, not the 4 virtual CPU devices the unit
    # tests force (sharding a tiny notebook run over 4 virtual devices on 2 cores costs ~25 % more CPU).
    monkeypatch.setenv("XLA_FLAGS", "")
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells, f"{path.name} has no cells"
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors

"""Every notebook in colabs/ runs top to bottom on CPU (this file: every one not in FIRST_FILE)."""

import pytest

from _notebooks import COLABS, FIRST_FILE, run_notebook

NOTEBOOKS = [path for path in COLABS if path.name not in FIRST_FILE]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)

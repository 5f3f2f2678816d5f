"""Every notebook in colabs/ runs top to bottom on CPU, as a user would run it (this file: FIRST_FILE)."""

import pytest

from _notebooks import COLABS, FIRST_FILE, run_notebook

NOTEBOOKS = [path for path in COLABS if path.name in FIRST_FILE]


def test_the_two_files_cover_every_notebook():
    assert {path.name for path in NOTEBOOKS} == set(FIRST_FILE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)

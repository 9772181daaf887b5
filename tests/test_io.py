"""unicoal.io: atomic single files and all-or-nothing output folders."""
from __future__ import annotations

import pytest

from unicoal.io import atomic_path, staged_outputs


def test_atomic_path_leaves_nothing_on_failure_and_renames_on_success(tmp_path):
    dest = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(dest) as tmp:
        tmp.write_text("whole")
    assert dest.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_staged_outputs_moves_all_files_or_none(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_outputs(tmp_path) as stage:
            (stage / "a.txt").write_text("new")
            (stage / "b.txt").write_text("new")
            raise RuntimeError("second step failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"
    with staged_outputs(tmp_path) as stage:
        (stage / "a.txt").write_text("new")
        (stage / "b.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "new"

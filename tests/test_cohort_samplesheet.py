"""Samplesheet reading, validation errors (one line, no output written) and deterministic splits."""
from __future__ import annotations

import numpy as np
import pytest

from unicoal.cli import main
from unicoal.cohort.samplesheet import (
    MODALITIES,
    SampleRow,
    assign_splits,
    read_samplesheet,
    split_counts,
    with_splits,
    write_samplesheet,
)
from unicoal.errors import InputError


@pytest.fixture
def images(tmp_path):
    """Three empty placeholder files standing for volumes (the sheet only checks existence)."""
    d = tmp_path / "data"
    d.mkdir()
    for name in ("a_t1.nii.gz", "a_t2.nii.gz", "b_t1.nii.gz", "a_seg.nii.gz"):
        (d / name).write_bytes(b"")
    return d


def _sheet(tmp_path, text: str):
    p = tmp_path / "data" / "sheet.csv"
    p.write_text(text)
    return p


def test_read_resolves_relative_paths_and_canonicalises(tmp_path, images):
    sheet = _sheet(tmp_path, "subject,modality,path,label\nA,t1w,a_t1.nii.gz,a_seg.nii.gz\nA,T2,a_t2.nii.gz,\nB,T1,%s,\n" % (images / "b_t1.nii.gz"))
    rows = read_samplesheet(sheet)
    assert [(r.subject, r.modality) for r in rows] == [("A", "T1"), ("A", "T2"), ("B", "T1")]
    assert rows[0].path == images / "a_t1.nii.gz" and rows[0].label == images / "a_seg.nii.gz"
    assert rows[1].label is None and rows[2].path.is_absolute()
    assert all(r.split is None for r in rows)


def test_write_then_read_round_trip(tmp_path, images):
    rows = [SampleRow("A", "T1", images / "a_t1.nii.gz", images / "a_seg.nii.gz", "test"), SampleRow("A", "T2", images / "a_t2.nii.gz", None, "test"),
            SampleRow("B", "T1", images / "b_t1.nii.gz", None, "train")]
    out = write_samplesheet(tmp_path / "out" / "s.csv", rows)
    text = out.read_text().splitlines()
    assert text[0] == "subject,modality,path,label,split"
    assert text[1] == "A,T1,../data/a_t1.nii.gz,../data/a_seg.nii.gz,test"
    assert read_samplesheet(out) == rows
    absolute = write_samplesheet(tmp_path / "abs.csv", rows, relative=False)
    assert str(images / "a_t1.nii.gz") in absolute.read_text()


BAD = [
    ("subject,modality,path\nA,T3,a_t1.nii.gz\n", ["line 2", "unknown modality 'T3'", "allowed: T1, T2, PD, FLAIR, T1CE"]),
    ("subject,modality,path\nA,T1,a_t1.nii.gz\nA,T1w,a_t2.nii.gz\n", ["line 3", "duplicate subject/modality A/T1", "first on line 2"]),
    ("subject,modality,path\nA,T1,a_t1.nii.gz\nB,T1,missing.nii.gz\n", ["line 3", "image file not found", "missing.nii.gz"]),
    ("subject,modality,path,label\nA,T1,a_t1.nii.gz,nolabel.nii.gz\n", ["line 2", "label file not found"]),
    ("subject,path\nA,a_t1.nii.gz\n", ["missing required column(s) modality", "subject,modality,path"]),
    ("subject,modality,path,split\nA,T1,a_t1.nii.gz,training\n", ["line 2", "bad split 'training'", "train, val, test"]),
    ("subject,modality,path,split\nA,T1,a_t1.nii.gz,train\nA,T2,a_t2.nii.gz,test\n", ["subject A has rows with different splits"]),
    ("subject,modality,path\n", ["samplesheet has no rows"]),
    ("subject,modality,path\nA b,T1,a_t1.nii.gz\n", ["line 2", "subject id 'A b'"]),
]


@pytest.mark.parametrize("text,expected", BAD, ids=["modality", "duplicate", "missing-file", "missing-label", "column", "split", "mixed-split", "empty", "subject-id"])
def test_bad_sheets_one_line_error_and_no_output(tmp_path, images, capsys, text, expected):
    sheet = _sheet(tmp_path, text)
    with pytest.raises(InputError) as exc:
        read_samplesheet(sheet)
    msg = str(exc.value)
    assert msg.startswith(str(sheet)) and "(fix:" in msg and "\n" not in msg
    for part in expected:
        assert part in msg
    out = tmp_path / "checked.csv"
    assert main(["cohort", "check", str(sheet), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unicoal: error: ") and expected[0] in err[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".checked.csv*"))  # no temporary left behind


def test_missing_sheet(tmp_path):
    with pytest.raises(InputError, match="samplesheet not found"):
        read_samplesheet(tmp_path / "nope.csv")


def test_check_assigns_splits(tmp_path, images, capsys):
    sheet = _sheet(tmp_path, "subject,modality,path\nA,T1,a_t1.nii.gz\nA,T2,a_t2.nii.gz\nB,T1,b_t1.nii.gz\n")
    out = tmp_path / "checked.csv"
    assert main(["cohort", "check", str(sheet), "--out", str(out), "--fractions", "1", "0", "0"]) == 0
    rows = read_samplesheet(out)
    assert {r.split for r in rows} == {"train"} and all(r.path.is_absolute() for r in rows)
    assert "2 subjects, 3 images" in capsys.readouterr().out


@pytest.mark.parametrize("n,fractions,expected", [
    (309, (285, 12, 12), (285, 12, 12)),   # IXI, paper
    (335, (235, 50, 50), (235, 50, 50)),   # BraTS'19, paper
    (100, (0.7, 0.1, 0.2), (70, 10, 20)),  # CSDH / ADNI, paper
    (3, (0.7, 0.1, 0.2), (2, 0, 1)),       # 3+ subjects: at least one test
    (4, (0.5, 0.25, 0.25), (2, 1, 1)),
    (4, (0.9, 0.05, 0.05), (2, 1, 1)),
    (2, (0.7, 0.1, 0.2), (2, 0, 0)),
    (1, (0.7, 0.1, 0.2), (1, 0, 0)),
])
def test_split_counts(n, fractions, expected):
    assert split_counts(n, fractions) == expected


def test_assign_splits_deterministic_by_subject():
    ids = [f"s{i:02d}" for i in range(20)]
    a = assign_splits(ids, (0.7, 0.1, 0.2), seed=3)
    b = assign_splits(list(reversed(ids)) + ids[:5], (0.7, 0.1, 0.2), seed=3)  # order and repeats do not matter
    c = assign_splits(ids, (0.7, 0.1, 0.2), seed=4)
    assert a == b and a != c
    assert sorted(a.values()).count("test") == 4 and sorted(a.values()).count("val") == 2
    rows = [SampleRow(s, m, f"/x/{s}_{m}.nii.gz") for s in ids[:6] for m in ("T1", "T2")]
    split_rows = with_splits(rows, seed=1)
    per_subject = {}
    for r in split_rows:
        per_subject.setdefault(r.subject, set()).add(r.split)
    assert all(len(v) == 1 for v in per_subject.values())
    with pytest.raises(ValueError, match="fractions"):
        split_counts(5, (1, 1))


def test_row_dataclass_validates():
    assert SampleRow("s1", "flair", "/x.nii.gz").modality == "FLAIR"
    with pytest.raises(ValueError, match="allowed: " + ", ".join(MODALITIES)):
        SampleRow("s1", "DWI", "/x.nii.gz")
    with pytest.raises(ValueError, match="split"):
        SampleRow("s1", "T1", "/x.nii.gz", split="dev")
    assert np.all([isinstance(SampleRow("s1", "T1", "x").path.name, str)])

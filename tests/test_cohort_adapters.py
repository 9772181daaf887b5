"""IXI, BraTS 2019 and manifest adapters on tiny fake trees written by the tests."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from unicoal.cli import main
from unicoal.cohort.brats import scan_brats
from unicoal.cohort.ixi import parse_ixi_name, scan_ixi
from unicoal.cohort.samplesheet import read_samplesheet
from unicoal.io import load_volume, save_volume

_RNG = np.random.default_rng(0)


def _nifti(path, label=False):
    data = _RNG.integers(0, 5, size=(4, 5, 3)) if label else _RNG.random((4, 5, 3)) + 0.1
    save_volume(path, data, np.diag([1.0, 1.0, 1.2, 1.0]), dtype=np.uint8 if label else np.float32)
    return path


def _rows(sheet):
    with open(sheet, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- IXI

@pytest.fixture
def ixi_tree(tmp_path):
    root = tmp_path / "ixi"
    files = {
        "IXI002-Guys-0828": ("T1", "T2", "PD", "MRA"),
        "IXI014-Guys-0902": ("T1", "T2", "PD"),
        "IXI013-Guys-0856": ("T1", "T2"),        # no PD: dropped
        "IXI012-HH-1211": ("T1", "T2", "PD"),     # other hospital
    }
    for stem, mods in files.items():
        for m in mods:
            folder = root / (f"IXI-{m}" if m != "MRA" else "other")
            folder.mkdir(parents=True, exist_ok=True)
            _nifti(folder / f"{stem}-{m}.nii.gz")
    (root / "IXI-T1" / "notes.txt").write_text("ignored")
    return root


def test_parse_ixi_name():
    assert parse_ixi_name("IXI002-Guys-0828-T1.nii.gz") == ("IXI002", "Guys", "T1")
    assert parse_ixi_name("/x/IXI012-HH-1211-PD.nii") == ("IXI012", "HH", "PD")
    assert parse_ixi_name("IXI002-Guys-0828-MRA.nii.gz") is None
    assert parse_ixi_name("IXI002-Guys-0828-DTI-00.nii.gz") is None


def test_ixi_guys_only_and_complete_subjects(ixi_tree, tmp_path, capsys):
    out = tmp_path / "ixi.csv"
    assert main(["cohort", "ixi", "--root", str(ixi_tree), "--out", str(out), "--fractions", "1", "0", "1"]) == 0
    rows = _rows(out)
    assert [(r["subject"], r["modality"]) for r in rows] == [(s, m) for s in ("IXI002", "IXI014") for m in ("T1", "T2", "PD")]
    assert {r["subject"]: r["split"] for r in rows} == {"IXI002": "train", "IXI014": "train"}  # n < 3: all train
    for r in read_samplesheet(out):
        assert r.path.is_absolute() and r.path.name.startswith(r.subject) and r.path.name.endswith(f"-{r.modality}.nii.gz")
        data, _ = load_volume(r.path)
        assert data.shape == (4, 5, 3)
    assert "2 subjects, 6 images" in capsys.readouterr().out
    every = scan_ixi(ixi_tree, site="all")
    assert sorted({r.subject for r in every}) == ["IXI002", "IXI012", "IXI014"]
    assert {r.subject for r in scan_ixi(ixi_tree, site="hh")} == {"IXI012"}


def test_ixi_errors_leave_no_output(ixi_tree, tmp_path, capsys):
    out = tmp_path / "ixi.csv"
    assert main(["cohort", "ixi", "--root", str(ixi_tree), "--out", str(out), "--site", "Moon"]) == 1
    assert "unknown IXI site 'Moon'" in capsys.readouterr().err
    assert main(["cohort", "ixi", "--root", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "IXI root folder not found" in capsys.readouterr().err
    (ixi_tree / "copy").mkdir()
    _nifti(ixi_tree / "copy" / "IXI014-Guys-0902-T2.nii.gz")
    assert main(["cohort", "ixi", "--root", str(ixi_tree), "--out", str(out)]) == 1
    assert "second T2 file for IXI014" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cohort", "ixi", "--root", str(empty), "--out", str(out)]) == 1
    assert "no IXI subject with T1, T2 and PD" in capsys.readouterr().err
    assert not out.exists()


def test_ixi_download_is_user_initiated_only(ixi_tree, tmp_path, monkeypatch):
    import urllib.request

    def forbidden(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("network used without --download")

    monkeypatch.setattr(urllib.request, "urlretrieve", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    assert main(["cohort", "ixi", "--root", str(ixi_tree), "--out", str(tmp_path / "s.csv")]) == 0


# ---------------------------------------------------------------- BraTS

@pytest.fixture
def brats_tree(tmp_path):
    root = tmp_path / "MICCAI_BraTS_2019_Data_Training"
    cases = {
        "HGG/BraTS19_2013_10_1": ("t1", "t1ce", "t2", "flair", "seg"),
        "LGG/BraTS19_TMC_09043_1": ("t1", "t1ce", "t2", "flair"),  # no seg (like validation data)
        "HGG/BraTS19_CBICA_AAB_1": ("t1", "t1ce", "t2", "seg"),    # no flair: dropped
    }
    for rel, suffixes in cases.items():
        folder = root / rel
        folder.mkdir(parents=True)
        case = folder.name
        for s in suffixes:
            _nifti(folder / f"{case}_{s}.nii.gz", label=(s == "seg"))
    return root


SUFFIX = {"T1": "t1", "T2": "t2", "FLAIR": "flair", "T1CE": "t1ce"}


def test_brats_cases_modalities_and_label(brats_tree, tmp_path):
    out = tmp_path / "brats.csv"
    assert main(["cohort", "brats", "--root", str(brats_tree), "--out", str(out)]) == 0
    rows = read_samplesheet(out)
    assert [(r.subject, r.modality) for r in rows] == [(c, m) for c in ("BraTS19_2013_10_1", "BraTS19_TMC_09043_1") for m in ("T1", "T2", "FLAIR", "T1CE")]
    seg = brats_tree / "HGG" / "BraTS19_2013_10_1" / "BraTS19_2013_10_1_seg.nii.gz"
    for r in rows:
        assert r.path.name == f"{r.subject}_{SUFFIX[r.modality]}.nii.gz"
        assert r.label == (seg if r.subject == "BraTS19_2013_10_1" else None)
    labelled = scan_brats(brats_tree, require_label=True)
    assert {r.subject for r in labelled} == {"BraTS19_2013_10_1"}
    t1_t2 = scan_brats(brats_tree, modalities=("T1", "T2"))
    assert sorted({r.subject for r in t1_t2}) == ["BraTS19_2013_10_1", "BraTS19_CBICA_AAB_1", "BraTS19_TMC_09043_1"]


def test_brats_errors_leave_no_output(brats_tree, tmp_path, capsys):
    out = tmp_path / "brats.csv"
    assert main(["cohort", "brats", "--root", str(brats_tree), "--out", str(out), "--modalities", "T1", "DWI"]) == 1
    assert "unknown modality 'DWI'" in capsys.readouterr().err
    assert main(["cohort", "brats", "--root", str(brats_tree), "--out", str(out), "--modalities", "PD"]) == 1
    assert "BraTS has no modality PD" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cohort", "brats", "--root", str(empty), "--out", str(out)]) == 1
    assert "no BraTS case folder" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- manifest

def test_manifest_long_format_with_modality_map(tmp_path):
    d = tmp_path / "adni"
    d.mkdir()
    for s in ("002_S_0295", "011_S_0002", "100_S_1000"):
        _nifti(d / f"{s}_mprage.nii.gz")
        _nifti(d / f"{s}_flair.nii")
    lines = ["Subject ID,Description,File,Group"]
    for s in ("002_S_0295", "011_S_0002", "100_S_1000"):
        lines += [f"{s},MPRAGE,{s}_mprage.nii.gz,AD", f"{s},Axial FLAIR,{s}_flair.nii,AD", f"{s},Localizer,,AD"]
    manifest = d / "adni.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "sheet.csv"
    args = ["cohort", "manifest", "--manifest", str(manifest), "--out", str(out), "--subject-col", "Subject ID",
            "--modality-col", "Description", "--path-col", "File", "--modality-map", "MPRAGE=T1", "--modality-map", "axial flair=FLAIR"]
    assert main(args) == 1 and not out.exists()  # Localizer is unknown
    assert main([*args, "--skip-unknown"]) == 0
    rows = read_samplesheet(out)
    assert len(rows) == 6 and {r.modality for r in rows} == {"T1", "FLAIR"}
    splits = {r.subject: r.split for r in rows}
    assert sorted(splits.values()) == ["test", "train", "train"]  # 70/10/20 of 3 subjects
    assert rows[0].path == d / "002_S_0295_mprage.nii.gz"


def test_manifest_wide_format_labels_and_splits(tmp_path, capsys):
    d = tmp_path / "csdh"
    (d / "img").mkdir(parents=True)
    for s in ("p1", "p2"):
        _nifti(d / "img" / f"{s}_t1.nii.gz")
        _nifti(d / "img" / f"{s}_flair.nii.gz")
        _nifti(d / "img" / f"{s}_clot.nii.gz", label=True)
    manifest = tmp_path / "csdh.csv"
    manifest.write_text("id,t1,flair,clot,set\np1,p1_t1.nii.gz,p1_flair.nii.gz,p1_clot.nii.gz,train\np2,p2_t1.nii.gz,p2_flair.nii.gz,p2_clot.nii.gz,test\n")
    out = tmp_path / "sheet.csv"
    base = ["cohort", "manifest", "--manifest", str(manifest), "--out", str(out), "--subject-col", "id"]
    ok = [*base, "--column", "T1=t1", "--column", "FLAIR=flair", "--label-col", "clot", "--split-col", "set", "--base", str(d / "img")]
    assert main(ok) == 0
    rows = read_samplesheet(out)
    assert [(r.subject, r.modality, r.split) for r in rows] == [("p1", "T1", "train"), ("p1", "FLAIR", "train"), ("p2", "T1", "test"), ("p2", "FLAIR", "test")]
    assert rows[0].label == d / "img" / "p1_clot.nii.gz"
    out.unlink()
    capsys.readouterr()
    cases = [
        ([*base, "--column", "T1=t1w"], "missing column(s) 't1w'"),
        ([*base, "--column", "T1=t1"], "line 2: image file not found"),  # relative to the manifest's folder
        ([*base, "--column", "T9=t1"], "unknown modality 'T9'"),
        ([*base, "--column", "T1"], "is not KEY=VALUE"),
        ([*base], "manifest format not given"),
        ([*base, "--column", "T1=t1", "--path-col", "t1"], "both --modality-col/--path-col and --column"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and err.startswith("unicoal: error:") and err.count("\n") == 1, (message, err)
        assert not out.exists()
    manifest.write_text("id,t1,set\np1,img/p1_t1.nii.gz,dev\n")
    assert main([*base, "--column", "T1=t1", "--split-col", "set"]) == 1
    assert "line 2: bad split 'dev'" in capsys.readouterr().err
    manifest.write_text("id,t1,t1b\np1,img/p1_t1.nii.gz,img/p1_flair.nii.gz\n")
    assert main([*base, "--column", "T1=t1", "--column", "t1w=t1b"]) == 1
    assert "two --column options for T1" in capsys.readouterr().err
    assert not out.exists()

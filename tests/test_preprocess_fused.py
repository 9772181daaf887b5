"""unicoal preprocess: one job per subject equals the three separate steps (REGISTER, SKULLSTRIP,
NORMALIZE as the Nextflow modules call them) file by file, on the tiny phantom."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from unicoal.cli import main
from unicoal.cohort.phantom import simulate_subject

MODS = ("FLAIR", "PD", "T1", "T2")


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    paths = simulate_subject(root, 1, preset="tiny", seed=0)
    text = "subject,modality,path,label,split\n" + "".join(
        f"phantom001,{m},{paths[m]},{paths['lesion']},train\n" for m in MODS)
    (root / "samplesheet.csv").write_text(text)
    return root / "samplesheet.csv"


@pytest.fixture(scope="module")
def registered(sheet, tmp_path_factory) -> Path:
    """A sheet of the phantom registered to one grid (input of the --no-register runs)."""
    root = tmp_path_factory.mktemp("registered")
    assert main(["preprocess", "--samplesheet", str(sheet), "--subject", "phantom001", "--out-dir", str(root),
                 "--skullstrip", "none"]) == 0
    text = "subject,modality,path,label,split\n" + "".join(
        f"phantom001,{m},{root}/reg/{m}.nii.gz,{root}/reg/phantom001_label.nii.gz,train\n" for m in MODS)
    (root / "samplesheet.csv").write_text(text)
    return root / "samplesheet.csv"


def _separate(sheet: Path, out: Path, *, register: bool, skullstrip: str) -> None:
    """What modules/local/{register,skullstrip,normalize}/main.nf run, step by step."""
    rows = [line.split(",") for line in sheet.read_text().splitlines()[1:]]
    vols = {r[1]: Path(r[2]) for r in rows}
    label = Path(rows[0][3])
    (out / "src").mkdir(parents=True)
    for m, p in vols.items():
        os.symlink(p, out / "src" / f"{m}.nii.gz")
    os.symlink(label, out / "src" / "phantom001_label.nii.gz")
    vols = {m: out / "src" / f"{m}.nii.gz" for m in MODS}
    mask = None
    if register:
        moving = [a for m in MODS if m != "T1" for a in ("--moving", str(vols[m]))]
        assert main(["register", "--reference", str(vols["T1"]), *moving, "--label", str(out / "src" / "phantom001_label.nii.gz"),
                     "--out-dir", str(out / "reg"), "--threads", "1"]) == 0
        vols = {m: out / "reg" / f"{m}.nii.gz" for m in MODS}
        label = out / "reg" / "phantom001_label.nii.gz"
    if skullstrip != "none":
        others = [a for m in MODS if m != "T1" for a in ("--input", str(vols[m]))]
        assert main(["skullstrip", "--t1", str(vols["T1"]), *others, "--out-dir", str(out / "strip"), "--threads", "1",
                     "--method", skullstrip]) == 0
        (out / "strip" / "phantom001_label.nii.gz").write_bytes(label.read_bytes())
        vols = {m: out / "strip" / f"{m}.nii.gz" for m in MODS}
        mask = out / "strip" / "T1_brainmask.nii.gz"
    (out / "norm").mkdir()
    for m in MODS:
        assert main(["normalize", str(vols[m]), str(out / "norm" / f"phantom001_{m}.nii.gz"),
                     *(["--mask", str(mask)] if mask else [])]) == 0


def _json(path: Path, root: Path) -> dict:
    data = json.loads(path.read_text().replace(str(root), "<root>"))
    data.pop("seconds", None)
    return data


def _assert_same_tree(fused: Path, separate: Path, subdirs) -> None:
    for sub in subdirs:
        names = sorted(p.name for p in (fused / sub).iterdir())
        assert names == sorted(p.name for p in (separate / sub).iterdir()), sub
        for name in names:
            a, b = fused / sub / name, separate / sub / name
            if name.endswith(".nii.gz"):
                ia, ib = nib.load(a), nib.load(b)
                np.testing.assert_array_equal(np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj), err_msg=f"{sub}/{name}")
                np.testing.assert_array_equal(ia.affine, ib.affine)
            elif name.endswith(".json"):
                assert _json(a, fused) == _json(b, separate), f"{sub}/{name}"
            elif sub != "src":
                assert a.read_bytes() == b.read_bytes(), f"{sub}/{name}"


def test_fused_equals_the_three_steps(sheet, tmp_path):
    fused, separate = tmp_path / "fused", tmp_path / "separate"
    assert main(["preprocess", "--samplesheet", str(sheet), "--subject", "phantom001", "--out-dir", str(fused)]) == 0
    _separate(sheet, separate, register=True, skullstrip="deepbet")
    _assert_same_tree(fused, separate, ("src", "reg", "strip", "norm"))
    mask = np.asanyarray(nib.load(fused / "phantom001_brainmask.nii.gz").dataobj)
    np.testing.assert_array_equal(mask, np.asanyarray(nib.load(separate / "strip" / "T1_brainmask.nii.gz").dataobj))
    assert (fused / "phantom001_label.nii.gz").read_bytes() == (separate / "reg" / "phantom001_label.nii.gz").read_bytes()


def test_no_register_threshold(registered, tmp_path):
    fused, separate = tmp_path / "fused", tmp_path / "separate"
    assert main(["preprocess", "--samplesheet", str(registered), "--subject", "phantom001", "--out-dir", str(fused),
                 "--no-register", "--skullstrip", "threshold"]) == 0
    _separate(registered, separate, register=False, skullstrip="threshold")
    assert not (fused / "reg").exists()
    _assert_same_tree(fused, separate, ("strip", "norm"))


def test_nothing_to_strip_keeps_label_named_after_subject(registered, tmp_path, capsys):
    # another subject's files need not exist (a cluster job stages only its own subject)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(registered.read_text() + "ghost,T1,/nonexistent/ghost_T1.nii.gz,,train\n")
    out = tmp_path / "out"
    assert main(["preprocess", "--samplesheet", str(sheet), "--subject", "phantom001", "--out-dir", str(out),
                 "--no-register", "--skullstrip", "none"]) == 0
    assert main(["preprocess", "--samplesheet", str(sheet), "--subject", "ghost", "--out-dir", str(tmp_path / "g")]) == 1
    assert "ghost/T1: image file not found: /nonexistent/ghost_T1.nii.gz" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["norm", "phantom001_label.nii.gz", "src"]
    assert sorted(p.name for p in (out / "norm").iterdir()) == sorted(f"phantom001_{m}.{e}" for m in MODS for e in ("json", "nii.gz"))


def test_unknown_subject_and_failed_step_leave_nothing(registered, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["preprocess", "--samplesheet", str(registered), "--subject", "nobody", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("unicoal: error: ") and str(registered) in err and "'nobody'" in err and "\n" not in err
    # a constant T2 fails in NORMALIZE, after SKULLSTRIP and three normalisations wrote their files
    bad = tmp_path / "bad.csv"
    rows = registered.read_text().splitlines()
    zero = tmp_path / "zero.nii.gz"
    img = nib.load(rows[1].split(",")[2])
    nib.save(nib.Nifti1Image(np.ones(img.shape, np.float32), img.affine), zero)
    bad.write_text("\n".join([rows[0]] + [r.replace(r.split(",")[2], str(zero)) if ",T2," in r else r for r in rows[1:]]) + "\n")
    assert main(["preprocess", "--samplesheet", str(bad), "--subject", "phantom001", "--out-dir", str(out),
                 "--no-register", "--skullstrip", "threshold"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "T2.nii.gz: foreground intensities are constant" in err
    assert list(out.iterdir()) == []


def test_a_corrupt_volume_is_named_by_the_sheets_path(registered, tmp_path, capsys):
    """The error names the user's file, not the modality link ``out/src/<MOD>.nii.gz``."""
    rows = registered.read_text().splitlines()
    corrupt = tmp_path / "broken_flair_scan.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not a nifti file")
    sheet = tmp_path / "corrupt.csv"
    sheet.write_text("\n".join([rows[0]] + [r.replace(r.split(",")[2], str(corrupt)) if ",FLAIR," in r else r for r in rows[1:]]) + "\n")
    out = tmp_path / "out"
    assert main(["preprocess", "--samplesheet", str(sheet), "--subject", "phantom001", "--out-dir", str(out),
                 "--no-register", "--skullstrip", "threshold"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(corrupt) in err and "src/FLAIR" not in err, err
    assert not out.exists() or list(out.iterdir()) == []

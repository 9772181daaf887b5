"""`unicoal figures`: comparison panels and an arbitrary-scale sweep from tiny phantom volumes."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, zoom

from unicoal.cli import main
from unicoal.evaluate.metrics import volume_metrics

N = 32


def _phantom():
    x, y, z = np.mgrid[:N, :N, :N] - N / 2 + 0.5
    r = np.sqrt(x**2 + (1.2 * y) ** 2 + (1.1 * z) ** 2)
    t1 = np.where(r < 13, 300 + 200 * (r < 8) + 80 * np.sin(x / 3) * (r < 11), 0).astype(np.float32)
    t2 = np.where(r < 13, 600 - 250 * (r < 8) + 60 * np.cos(y / 3) * (r < 11), 0).astype(np.float32)
    return t1, t2


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("fig")
    t1, t2 = _phantom()
    aff = np.eye(4)
    aff[:3, 3] = -N / 2

    def save(name, a, af=aff):
        nib.save(nib.Nifti1Image(np.asarray(a, np.float32), af), str(d / name))

    save("t1.nii.gz", t1)
    save("t2.nii.gz", t2)
    save("blur.nii.gz", gaussian_filter(t2, 1.5))
    noisy = t2 + 25 * np.random.default_rng(0).standard_normal(t2.shape) * (t2 > 0)
    save("noisy.nii.gz", noisy)
    for h in (4.0, 2.0, 1.5):  # thick-slice inputs / outputs, 1.5 mm = a non-integer 2.67x from 4 mm
        af = aff.copy()
        af[2, 2] = h
        save(f"t1_{h:g}mm.nii.gz", zoom(t1, (1, 1, 1 / h), order=1), af)
    (d / "cases.csv").write_text(
        "figure,kind,label,path\n"
        "cmp,source,T1 (input),t1.nii.gz\ncmp,method,Blurred,blur.nii.gz\ncmp,method,Noisy,noisy.nii.gz\n"
        "cmp,target,T2 (ground truth),t2.nii.gz\n"
        "sweep,source,T1 4 mm,t1_4mm.nii.gz\nsweep,sweep,2x,t1_2mm.nii.gz\nsweep,sweep,2.67x,t1_1.5mm.nii.gz\n"
        "sweep,sweep,4x,t1.nii.gz\nsweep,target,T1 1 mm,t1.nii.gz\n")
    out = d / "out"
    assert main(["figures", "--cases", str(d / "cases.csv"), "--out-dir", str(out), "--dpi", "50"]) == 0
    return d, out, json.loads((out / "figures.json").read_text())


def test_pngs_are_written_and_not_blank(cases):
    _, out, _ = cases
    for name in ("cmp", "sweep"):
        img = mpimg.imread(out / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 150
        assert float(img[..., :3].std()) > 0.05


def test_comparison_titles_carry_volume_psnr_ssim(cases):
    d, _, manifest = cases
    cmp = next(f for f in manifest["figures"] if f["figure"] == "cmp")
    assert cmp["kind"] == "comparison"
    t2 = nib.load(str(d / "t2.nii.gz")).get_fdata()
    blur = nib.load(str(d / "blur.nii.gz")).get_fdata()
    m = volume_metrics(blur, t2)
    titles = [p["title"] for p in cmp["panels"] if p["kind"] == "image" and p["row"] == 0]
    assert titles[0] == "T1 (input)" and titles[-1] == "T2 (ground truth)"
    assert titles[1] == f"Blurred\nPSNR {m['PSNR']:.2f} / SSIM {m['SSIM']:.3f}"
    # 2 planes x (image row of 4 panels + error row of 2 method panels)
    assert len(cmp["panels"]) == 2 * (4 + 2)
    errors = [p for p in cmp["panels"] if p["kind"] == "error"]
    assert errors[0]["mean_error"] > errors[1]["mean_error"] * 0.5 > 0


def test_windowing_is_consistent(cases):
    _, _, manifest = cases
    for fig in manifest["figures"]:
        images = {(p["vmin"], p["vmax"]) for p in fig["panels"] if p["kind"] == "image"}
        errors = {(p["vmin"], p["vmax"]) for p in fig["panels"] if p["kind"] == "error"}
        assert images == {(0.0, 1.0)}
        assert len(errors) <= 1


def test_sweep_shows_thicknesses_including_non_integer(cases):
    _, _, manifest = cases
    sweep = next(f for f in manifest["figures"] if f["figure"] == "sweep")
    assert sweep["kind"] == "sweep"
    titles = [p["title"] for p in sweep["panels"] if p["plane"] == "sagittal"]
    assert titles[0] == "T1 4 mm\n4 mm" and titles[2] == "2.67x\n1.5 mm"
    assert titles[3].startswith("4x\n1 mm\nPSNR inf / SSIM 1.000")  # same grid as the ground truth


def test_bad_cases_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("figure,kind,label,path\nf,method,A,a.nii.gz\n")
    assert main(["figures", "--cases", str(tmp_path / "c.csv"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "no 'target'" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text("figure,kind,label,path\nf,picture,A,a.nii.gz\n")
    assert main(["figures", "--cases", str(tmp_path / "c.csv"), "--out-dir", str(tmp_path / "o")]) == 1
    assert "kind must be one of" in capsys.readouterr().err


def test_centre_label_cuts_through_the_lesion(cases, tmp_path):
    """Issue #14: ``--centre label`` cuts at the lesion's centroid, not the head's (the default)."""
    d, _, _ = cases
    aff = np.eye(4)
    aff[:3, 3] = -N / 2
    lesion = np.zeros((N, N, N), np.float32)
    lesion[22:26, 20:24, 5:9] = 1  # off-centre: voxel centroid (23.5, 21.5, 6.5)
    nib.save(nib.Nifti1Image(lesion, aff), str(d / "lesion.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((N, N, N), np.float32), aff), str(d / "empty.nii.gz"))
    (tmp_path / "cases.csv").write_text(
        "figure,kind,label,path\n"
        f"les,method,Blurred,{d / 'blur.nii.gz'}\nles,target,T2,{d / 't2.nii.gz'}\nles,label,lesion,{d / 'lesion.nii.gz'}\n"
        f"none,method,Blurred,{d / 'blur.nii.gz'}\nnone,target,T2,{d / 't2.nii.gz'}\nnone,label,lesion,{d / 'empty.nii.gz'}\n")
    out = tmp_path / "out"
    assert main(["figures", "--cases", str(tmp_path / "cases.csv"), "--out-dir", str(out), "--dpi", "40", "--centre", "label"]) == 0
    info = {f["figure"]: f for f in json.loads((out / "figures.json").read_text())["figures"]}
    assert info["les"]["centre"] == "label"
    assert info["les"]["centre_mm"] == pytest.approx([23.5 - N / 2, 21.5 - N / 2, 6.5 - N / 2])
    assert info["none"]["centre"].startswith("foreground")  # empty label map: falls back, and says so
    assert main(["figures", "--cases", str(tmp_path / "cases.csv"), "--out-dir", str(tmp_path / "o2"), "--dpi", "40"]) == 0
    default = {f["figure"]: f for f in json.loads((tmp_path / "o2" / "figures.json").read_text())["figures"]}
    assert default["les"]["centre"] == "foreground"
    assert default["les"]["centre_mm"] != pytest.approx(info["les"]["centre_mm"], abs=2.0)

"""Dice of ``unicoal segment dice``: known overlaps, self-Dice = 1, empty-region conventions, grids."""
from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest

from unicoal.cli import main
from unicoal.errors import InputError
from unicoal.evaluate.rows import read_rows
from unicoal.evaluate.dice import REGION_SETS, dice, dice_files, dice_rows, region_dice, region_masks


def _grid(n: int = 48) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing="ij"), -1)


def _sphere(g: np.ndarray, centre, radius: float) -> np.ndarray:
    return ((g - np.asarray(centre, float)) ** 2).sum(-1) <= radius ** 2


def _save(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine), str(path))
    return str(path)


def test_cuboids_exact_analytic_dice():
    # two a x a x a cubes shifted by d voxels along x: |A & B| = (a - d) a^2, Dice = (a - d) / a exactly
    a, d = 10, 3
    p = np.zeros((32, 32, 32), bool)
    t = np.zeros_like(p)
    p[5:5 + a, 5:5 + a, 5:5 + a] = True
    t[5 + d:5 + d + a, 5:5 + a, 5:5 + a] = True
    r = dice(p, t)
    assert r.value == pytest.approx((a - d) / a, abs=1e-12)
    assert (r.intersection, r.pred_voxels, r.truth_voxels) == ((a - d) * a * a, a ** 3, a ** 3)


@pytest.mark.parametrize("radius,distance", [(10.0, 6.0), (12.0, 15.0), (8.0, 0.0)])
def test_spheres_match_voxel_count_ratio_and_analytic_lens(radius, distance):
    g = _grid(48)
    c = np.array([24.0, 24.0, 24.0])
    p = _sphere(g, c - [distance / 2, 0, 0], radius)
    t = _sphere(g, c + [distance / 2, 0, 0], radius)
    # independent voxel-count ratio
    ratio = 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())
    assert dice(p, t).value == pytest.approx(ratio, abs=1e-3)
    # analytic continuous value: lens volume pi (4r + d)(2r - d)^2 / 12 over the sphere volume
    lens = math.pi * (4 * radius + distance) * (2 * radius - distance) ** 2 / 12.0
    analytic = lens / (4.0 / 3.0 * math.pi * radius ** 3)
    assert dice(p, t).value == pytest.approx(analytic, abs=0.03)


def test_empty_region_conventions():
    e = np.zeros((8, 8, 8), bool)
    full = e.copy()
    full[2:4, 2:4, 2:4] = True
    both = dice(e, e)
    assert both.value == 1.0 and both.empty_both
    assert math.isnan(dice(e, e, empty="nan").value)
    assert dice(full, e).value == 0.0 and not dice(full, e).empty_both
    assert dice(e, full).value == 0.0
    assert dice(e, full, empty="nan").value == 0.0
    with pytest.raises(ValueError):
        dice(e, e, empty="zero")
    with pytest.raises(ValueError):
        dice(e, np.zeros((8, 8, 9), bool))


def test_brats_regions_and_self_dice():
    lab = np.zeros((10, 10, 10), np.int16)
    lab[1:3] = 2          # oedema
    lab[3:5] = 1          # necrosis
    lab[5:6] = 4          # enhancing
    m = region_masks(lab, "brats")
    assert set(m) == set(REGION_SETS["brats"]) == {"DSC_WT", "DSC_TC", "DSC_ET"}
    assert (m["DSC_WT"].sum(), m["DSC_TC"].sum(), m["DSC_ET"].sum()) == (500, 300, 100)
    res = region_dice(lab, lab, "brats")
    assert all(r.value == 1.0 and not r.empty_both for r in res.values())
    # prediction misses the enhancing part entirely: WT 2*400/(400+500), TC 2*200/(200+300), ET 0
    pred = lab.copy()
    pred[pred == 4] = 0
    res = region_dice(pred, lab, "brats")
    assert res["DSC_WT"].value == pytest.approx(800 / 900)
    assert res["DSC_TC"].value == pytest.approx(400 / 500)
    assert res["DSC_ET"].value == 0.0
    # no enhancing tumour in either: ET is empty in both -> 1 (flagged)
    res = region_dice(pred, pred, "brats")
    assert res["DSC_ET"].value == 1.0 and res["DSC_ET"].empty_both
    with pytest.raises(InputError):
        region_masks(lab, "organs")


def test_dice_rows_summary_and_convention():
    lab = np.zeros((6, 6, 6), np.int16)
    lab[1:3] = 1
    lab[3:4] = 4
    pred = lab.copy()
    pred[3:4] = 0
    res = region_dice(pred, lab, "brats")
    rows = dice_rows(res, method="Uni-COAL_multi", subject="s1", dataset="BraTS", task="CMS", source="T1", target="T2")
    by = {r.metric: r for r in rows}
    assert set(by) == {"DSC_WT", "DSC_TC", "DSC_ET", "DSC"}
    assert by["DSC"].value == by["DSC_WT"].value == pytest.approx(2 * 72 / (72 + 108))
    assert {r.convention for r in rows} == {"brats-empty-1"}  # empty in both = 1: the BraTS rule, not nnU-Net's
    mean = {r.metric: r.value for r in dice_rows(res, method="m", subject="s", summary="mean")}
    assert mean["DSC"] == pytest.approx((mean["DSC_WT"] + mean["DSC_TC"] + mean["DSC_ET"]) / 3)
    assert {r.convention for r in dice_rows(res, method="m", subject="s", empty="nan")} == {"nnunet-empty-nan"}
    lesion_rows = dice_rows(region_dice(lab, lab, "lesion"), method="Real", subject="s")
    assert [(r.metric, r.value) for r in lesion_rows] == [("DSC", 1.0)]


def test_dice_files_self_is_one_and_refuses_other_grid(tmp_path):
    g = _grid(24)
    lab = _sphere(g, (12, 12, 12), 5)
    truth = _save(tmp_path / "truth.nii.gz", lab)
    res = dice_files(truth, truth, "lesion")
    assert res["DSC"].value == 1.0 and res["DSC"].pred_voxels == int(lab.sum())
    shifted = np.diag([1.0, 1.0, 1.0, 1.0])
    shifted[0, 3] = 2.0
    other = _save(tmp_path / "other.nii.gz", lab, shifted)
    with pytest.raises(InputError, match="grid"):
        dice_files(other, truth)
    small = _save(tmp_path / "small.nii.gz", lab[:20])
    with pytest.raises(InputError, match="grid"):
        dice_files(small, truth)


def test_cli_dice_rows_and_sidecar(tmp_path, capsys):
    g = _grid(24)
    truth = _save(tmp_path / "s1_lesion.nii.gz", _sphere(g, (12, 12, 12), 6))
    pred = _save(tmp_path / "s1_pred.nii.gz", _sphere(g, (14, 12, 12), 6))
    empty = _save(tmp_path / "empty.nii.gz", np.zeros((24, 24, 24)))
    out = tmp_path / "rows" / "dice.csv"
    code = main(["segment", "dice", "--pred", truth, "--truth", truth, "--pred", pred, "--truth", truth,
                 "--pred", empty, "--truth", empty, "--subject", "self", "--subject", "s1", "--subject", "none",
                 "--method", "Real", "--dataset", "Phantom", "--target", "T1", "--out", str(out)])
    assert code == 0
    rows = read_rows([out])
    values = {r.subject: r.value for r in rows}
    p, t = _sphere(g, (14, 12, 12), 6), _sphere(g, (12, 12, 12), 6)
    assert values["self"] == 1.0
    assert values["s1"] == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()), abs=1e-12)
    assert values["none"] == 1.0
    assert {(r.method, r.metric, r.dataset, r.target, r.convention) for r in rows} == {("Real", "DSC", "Phantom", "T1", "brats-empty-1")}
    with open(out, newline="") as fh:
        assert next(csv.reader(fh)) == ["table", "dataset", "task", "method", "subject", "source", "target", "scale",
                                        "metric", "value", "convention"]
    side = json.loads((tmp_path / "rows" / "dice.json").read_text())
    flags = {c["subject"]: c["regions"]["DSC"]["empty_both"] for c in side["cases"]}
    assert flags == {"self": False, "s1": False, "none": True}
    # NaN convention for the empty pair
    out2 = tmp_path / "nan.csv"
    assert main(["segment", "dice", "--pred", empty, "--truth", empty, "--empty-both", "nan", "--method", "X",
                 "--out", str(out2)]) == 0
    (row,) = read_rows([out2])
    assert math.isnan(row.value) and row.convention == "nnunet-empty-nan" and row.subject == "empty"


def test_cli_dice_errors(tmp_path, capsys):
    g = _grid(16)
    a = _save(tmp_path / "a.nii.gz", _sphere(g, (8, 8, 8), 3))
    assert main(["segment", "dice", "--pred", a, "--pred", a, "--truth", a, "--method", "X", "--out", str(tmp_path / "x.csv")]) == 1
    assert "--truth" in capsys.readouterr().err
    assert main(["segment", "dice", "--pred", str(tmp_path / "missing.nii.gz"), "--truth", a, "--method", "X",
                 "--out", str(tmp_path / "y.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unicoal: error:") and "missing.nii.gz" in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()

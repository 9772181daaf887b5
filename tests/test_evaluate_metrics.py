"""`unicoal evaluate`: PSNR/SSIM/MAE against a direct scikit-image computation, edge cases, grids."""
from __future__ import annotations

import csv
import math

import nibabel as nib
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from unicoal.cli import main
from unicoal.evaluate.metrics import volume_metrics
from unicoal.evaluate.rows import ROW_COLUMNS, ResultRow, read_rows, write_rows

SHAPE = (24, 22, 20)
AFFINE = np.diag([0.9375, 0.9375, 1.25, 1.0])


def _volumes(seed: int = 0):
    rng = np.random.default_rng(seed)
    target = np.zeros(SHAPE, np.float32)
    target[3:21, 3:19, 2:18] = 100 + 400 * rng.random((18, 16, 16))  # "brain" on a zero background
    pred = np.clip(target + 40 * rng.standard_normal(SHAPE), 0, None).astype(np.float32) * 1.7 + 3.0
    mask = np.zeros(SHAPE, bool)
    mask[4:20, 4:18, 3:17] = True
    return pred, target, mask


def _direct(pred, target, mask, convention):
    """Independent re-statement of each recipe with numpy + scikit-image only."""
    def norm(x, sample):
        lo, hi = np.percentile(sample, [0.5, 99.5])
        return (np.clip(x.astype(np.float64), lo, hi) - lo) / (hi - lo)

    if convention == "brainmask":
        p = np.where(mask, norm(pred, pred[mask]), 0.0)
        t = np.where(mask, norm(target, target[mask]), 0.0)
        mse = np.mean((p[mask] - t[mask]) ** 2)
        _, smap = structural_similarity(t, p, data_range=1, full=True)
        ssim = smap[3:-3, 3:-3, 3:-3][mask[3:-3, 3:-3, 3:-3]].mean()
        return {"PSNR": 10 * np.log10(1 / mse), "SSIM": ssim, "MAE": np.mean(np.abs(p[mask] - t[mask]))}
    p, t = norm(pred, pred), norm(target, target)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if convention == "wang" else {}
    out = {
        "PSNR": peak_signal_noise_ratio(t, p, data_range=1),
        "SSIM": structural_similarity(t, p, data_range=1, **kw),
        "MAE": np.mean(np.abs(p - t)),
    }
    slices = [k for k in range(t.shape[2]) if t[:, :, k].max() > t[:, :, k].min()]
    out["PSNR_slice"] = np.mean([peak_signal_noise_ratio(t[:, :, k], p[:, :, k], data_range=1) for k in slices])
    out["SSIM_slice"] = np.mean([structural_similarity(t[:, :, k], p[:, :, k], data_range=1, **kw) for k in slices])
    return out


@pytest.mark.parametrize("convention", ["published", "brainmask", "wang"])
def test_matches_direct_scikit_image(convention):
    pred, target, mask = _volumes()
    ours = volume_metrics(pred, target, convention, mask=mask, axial=2)
    ref = _direct(pred, target, mask, convention)
    for name, value in ref.items():
        assert ours[name] == pytest.approx(float(value), abs=1e-6), name
    assert 5 < ours["PSNR"] < 40 and 0 < ours["SSIM"] < 1


def test_conventions_differ_as_documented():
    pred, target, mask = _volumes(1)
    pub = volume_metrics(pred, target, "published", mask=mask)
    wang = volume_metrics(pred, target, "wang", mask=mask)
    brain = volume_metrics(pred, target, "brainmask", mask=mask)
    assert pub["PSNR"] == pytest.approx(wang["PSNR"], abs=1e-12)  # same normalisation
    assert pub["SSIM"] != pytest.approx(wang["SSIM"], abs=1e-4)  # different window
    assert pub["SSIM"] > brain["SSIM"]  # background inflates whole-volume SSIM


def test_identical_volumes_give_ssim_one_and_psnr_inf():
    _, target, mask = _volumes(2)
    for convention in ("published", "brainmask", "wang"):
        m = volume_metrics(target, target.copy(), convention, mask=mask)
        # whole-volume PSNR is inf; every slice identical leaves no finite slice PSNR: NaN, never inf
        assert m["PSNR"] == math.inf and math.isnan(m["PSNR_slice"])
        assert m["SSIM_slice"] == pytest.approx(1.0, abs=1e-12) and m["MAE_slice"] == 0.0
        assert m["SSIM"] == pytest.approx(1.0, abs=1e-12)
        assert m["MAE"] == 0.0


def test_intensity_scale_invariance_of_published_recipe():
    pred, target, _ = _volumes(3)
    a = volume_metrics(pred, target)
    b = volume_metrics(pred.astype(np.float64) * 7.0 + 11.0, target)  # each volume: its own percentiles
    assert a["PSNR"] == pytest.approx(b["PSNR"], abs=1e-9)
    assert a["SSIM"] == pytest.approx(b["SSIM"], abs=1e-9)


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
    return str(path)


def test_cli_writes_rows_with_convention_and_inf(tmp_path):
    _, target, mask = _volumes(4)
    t = _save(tmp_path / "gt.nii.gz", target)
    m = _save(tmp_path / "mask.nii.gz", mask)
    out = tmp_path / "rows.csv"
    rc = main(["evaluate", "--pred", t, "--target", t, "--mask", m, "--convention", "brainmask", "--out", str(out),
               "--method", "Uni-COAL", "--task", "CMSR", "--dataset", "IXI", "--subject", "IXI002", "--source", "T2",
               "--target-modality", "PD", "--scale", "5.33", "--table", "IV"])
    assert rc == 0
    with open(out) as fh:
        recs = list(csv.DictReader(fh))
    assert tuple(recs[0].keys()) == ROW_COLUMNS
    by = {r["metric"]: r for r in recs}
    assert by["PSNR"]["value"] == "inf" and float(by["SSIM"]["value"]) == pytest.approx(1.0)
    # --also auto: the gain-sensitive targetscale and (with a mask) brainmask rows beside --convention
    assert {r["convention"] for r in recs} == {"brainmask", "targetscale"}
    recs = [r for r in recs if r["convention"] == "brainmask"]
    by = {r["metric"]: r for r in recs}
    assert by["PSNR"]["table"] == "table4" and by["PSNR"]["scale"] == "5.33" and by["PSNR"]["target"] == "PD"
    rows = read_rows([out])
    assert rows[0].value == math.inf and rows[0].scale == 5.33


@pytest.mark.parametrize("kind", ["shape", "affine"])
def test_mismatched_grids_are_refused_without_output(tmp_path, kind, capsys):
    pred, target, _ = _volumes(5)
    t = _save(tmp_path / "gt.nii.gz", target)
    if kind == "shape":
        p = _save(tmp_path / "pred.nii.gz", pred[:, :, :-1])
    else:
        shifted = AFFINE.copy()
        shifted[2, 3] += 0.01  # 10 micrometres: beyond the 1e-3 mm tolerance
        p = _save(tmp_path / "pred.nii.gz", pred, shifted)
    out = tmp_path / "rows.csv"
    assert main(["evaluate", "--pred", p, "--target", t, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unicoal: error:") and "pred.nii.gz" in err and ("shape" in err or "affine" in err)
    assert not out.exists()
    assert list(tmp_path.glob("*.csv*")) == []


def test_affine_within_tolerance_is_accepted(tmp_path):
    pred, target, _ = _volumes(6)
    t = _save(tmp_path / "gt.nii.gz", target)
    nearly = AFFINE.copy()
    nearly[0, 3] += 5e-4
    p = _save(tmp_path / "pred.nii.gz", pred, nearly)
    assert main(["evaluate", "--pred", p, "--target", t, "--out", str(tmp_path / "r.csv")]) == 0


def test_brainmask_without_mask_is_an_error(tmp_path, capsys):
    pred, target, _ = _volumes(7)
    t = _save(tmp_path / "gt.nii.gz", target)
    assert main(["evaluate", "--pred", t, "--target", t, "--convention", "brainmask", "--out", str(tmp_path / "r.csv")]) == 1
    assert "--mask" in capsys.readouterr().err


def test_rows_round_trip_and_validation(tmp_path):
    rows = [ResultRow("table1", "BraTS", "CMS", "pGAN", "s1", "T1", "T2", 1, "PSNR", 26.25, "published"),
            ResultRow("", "CSDH", "SR", "DCSRN", "s2", "T1", "T1", 5.33, "DSC", math.nan, "nnunet-empty-nan")]
    write_rows(tmp_path / "r.csv", rows)
    back = read_rows([tmp_path / "r.csv"])
    assert back[0] == rows[0] and math.isnan(back[1].value) and back[1].scale == 5.33
    with pytest.raises(ValueError, match="task"):
        ResultRow("", "X", "BAD", "m", "s", "T1", "T1", 1, "PSNR", 1.0, "published")
    with pytest.raises(ValueError, match="scale"):
        ResultRow("", "X", "SR", "m", "s", "T1", "T1", 0, "PSNR", 1.0, "published")


def test_identical_slices_give_a_finite_slice_psnr_issue14():
    """Issue #14: noise in 8 of 16 slices (the others identical, as when an SR method keeps the
    acquired slices) gave PSNR_slice = inf. Identical slices are now left out of the PSNR mean:
    PSNR_slice is the mean PSNR of the 8 noisy slices, computed here by hand."""
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(14)
    # values 0 and 1 fill more than 0.5 % of the voxels, so the 0.5/99.5 percentiles are 0 and 1 for
    # both volumes and the untouched slices stay identical after normalisation
    target = np.clip(rng.random((24, 24, 16)) * 1.4 - 0.2, 0.0, 1.0)
    pred = target.copy()
    pred[:, :, 8:] = np.clip(pred[:, :, 8:] + 0.03 * rng.standard_normal((24, 24, 8)), 0.0, 1.0)
    m = volume_metrics(pred, target, "published", axial=2)
    by_hand = [peak_signal_noise_ratio(target[:, :, k], pred[:, :, k], data_range=1.0) for k in range(8, 16)]
    assert math.isfinite(m["PSNR_slice"])
    assert m["PSNR_slice"] == pytest.approx(float(np.mean(by_hand)), abs=1e-9)
    assert 28.0 < m["PSNR_slice"] < 40.0 and math.isfinite(m["PSNR"])
    # SSIM / MAE keep the identical slices (finite: 1 and 0)
    assert m["MAE_slice"] == pytest.approx(float(np.mean([np.abs(pred[:, :, k] - target[:, :, k]).mean() for k in range(16)])))


def test_targetscale_sees_a_gain_offset_error_that_published_does_not():
    """Issue #14 point 6: each volume scaled by its own percentiles makes ``2 t + 5`` look perfect
    (> 100 dB); the targetscale convention scales both by the target's and gives it a low PSNR."""
    rng = np.random.default_rng(6)
    t = rng.random((16, 16, 16))
    assert volume_metrics(2 * t + 5, t, "published")["PSNR"] > 100.0
    assert volume_metrics(2 * t + 5, t, "targetscale")["PSNR"] < 5.0
    assert volume_metrics(t.copy(), t, "targetscale")["PSNR"] == math.inf
    noisy = t + 0.01 * rng.standard_normal(t.shape)
    assert volume_metrics(noisy, t, "targetscale")["PSNR"] == pytest.approx(volume_metrics(noisy, t, "published")["PSNR"], abs=1.0)

"""Thick-slice simulation: profiles, affines, counts, quality floor and bad input."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import oblique_affine, smooth_volume
from unicoal.cli import main
from unicoal.geometry import Grid, slice_positions, thick_slice_grid
from unicoal.preprocess.degrade import degrade_array, slice_profile_matrix


@pytest.mark.parametrize("ratio", [2.0, 4.0, 5.33, 6.0])
@pytest.mark.parametrize("profile", ["rect", "gaussian", "select"])
def test_profile_rows_sum_to_one_and_are_centred(ratio, profile):
    n = 120
    phase = 0.0 if profile == "select" else (ratio - 1) / 2
    count = int(np.floor((n - 1 - phase) / ratio)) + 1 if profile == "select" else int(np.floor(n / ratio))
    w = slice_profile_matrix(n, ratio, phase, count, profile)
    assert np.allclose(w.sum(axis=1), 1.0)
    # centroid of every interior profile = the LR slice centre: exact for integer ratios; for
    # non-integer ones the discrete centroid of a box cut at fractional HR slabs is off by less
    # than 0.05 HR slice (the continuous span is checked exactly in the next test)
    k = np.arange(n)
    centres = phase + ratio * np.arange(count)
    interior = (centres - 3 * ratio >= 0) & (centres + 3 * ratio <= n - 1)
    tol = 1e-9 if float(ratio).is_integer() else 0.05
    assert np.allclose((w @ k)[interior], centres[interior], atol=tol)


@pytest.mark.parametrize("ratio", [2.0, 3.0, 5.33, 6.4])
def test_rect_profile_integrates_the_world_span_of_each_lr_slice(ratio, tmp_path):
    """Each LR voxel equals the mean of the HR signal (piecewise constant per HR slab) over the
    world span [centre - h0/2, centre + h0/2] of that LR slice, located through the affines."""
    rng = np.random.default_rng(1)
    n = 97
    hr = Grid((3, 2, n), oblique_affine(), 2)
    data = rng.random((3, 2, n)).astype(np.float32)
    lr_grid = thick_slice_grid(hr, ratio * hr.thickness)
    lr, _ = degrade_array(data, ratio, axis=2)
    assert lr.shape == lr_grid.shape
    for j in range(lr_grid.num_slices):
        centre = hr.world_to_index(lr_grid.index_to_world([0, 0, j]))[0][2]
        xs = np.linspace(centre - ratio / 2, centre + ratio / 2, 20001)[1:-1]
        k = np.clip(np.floor(xs + 0.5).astype(int), 0, n - 1)
        expected = data[:, :, k].mean(axis=2)
        assert np.allclose(lr[:, :, j], expected, atol=2e-3), j


def test_degrade_then_linear_upsampling_psnr_floor():
    """Degrade a smooth volume 4x, linearly re-upsample through (n, delta); PSNR > 35 dB."""
    data = smooth_volume((20, 20, 96))
    hr = Grid(data.shape, oblique_affine(), 2)
    lr_grid = thick_slice_grid(hr, 4 * hr.thickness)
    lr, _ = degrade_array(data, 4.0, axis=2)
    n, delta = slice_positions(lr_grid, hr)
    lo = np.clip(n, 0, lr.shape[2] - 1)
    hi = np.clip(n + 1, 0, lr.shape[2] - 1)
    up = lr[:, :, lo] * (1 - delta) + lr[:, :, hi] * delta
    k = slice(4, 92)  # away from the replicate-padded ends
    mse = np.mean((up[:, :, k] - data[:, :, k]) ** 2)
    psnr = 10 * np.log10(1.0 / mse)
    assert psnr > 35.0, psnr


def test_cli_degrade_writes_affine_and_sidecar(hr_nifti, tmp_path):
    path, data = hr_nifti
    out = tmp_path / "lr.nii.gz"
    assert main(["degrade", str(path), str(out), "--thickness", "6.396"]) == 0
    img = nib.load(out)
    hr = Grid.from_image(nib.load(path))
    expected = thick_slice_grid(hr, 6.396)
    assert img.shape == expected.shape == (24, 20, 11)
    assert np.allclose(img.affine, expected.matrix, atol=1e-5)
    meta = json.loads((tmp_path / "lr.json").read_text())
    assert meta["profile"] == "rect" and meta["ratio"] == pytest.approx(5.33)


def _write(path, array, affine=None):
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.mark.parametrize(
    "case, args_extra, expect",
    [
        ("missing", [], "file not found"),
        ("corrupt", [], "not a readable NIfTI"),
        ("4d", [], "expected a 3D volume"),
        ("nan", [], "NaN or infinite"),
        ("ok", ["--thickness", "0"], "thickness must be > 0"),
        ("ok", ["--thickness", "-2"], "thickness must be > 0"),
        ("ok", ["--thickness", "0.5"], "below the input slice thickness"),
        ("ok", ["--profile", "boxcar"], "unknown slice profile"),
    ],
)
def test_cli_degrade_bad_input(case, args_extra, expect, tmp_path, capsys):
    src = tmp_path / "in.nii.gz"
    if case == "corrupt":
        src.write_bytes(b"not a nifti at all")
    elif case == "4d":
        _write(src, np.ones((4, 4, 4, 3), np.float32))
    elif case == "nan":
        arr = np.ones((4, 4, 8), np.float32)
        arr[1, 1, 1] = np.nan
        _write(src, arr)
    elif case == "ok":
        _write(src, np.ones((4, 4, 8), np.float32))
    out = tmp_path / "out" / "lr.nii.gz"
    args = ["degrade", str(src), str(out)] + (args_extra if "--thickness" in args_extra else ["--thickness", "2"] + args_extra)
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unicoal: error: ") and expect in err[0], err
    assert not out.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_cli_degrade_unwritable_output(hr_nifti, tmp_path, capsys):
    path, _ = hr_nifti
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["degrade", str(path), str(blocker / "lr.nii.gz"), "--thickness", "2.4"]) == 1
    assert "cannot create output folder" in capsys.readouterr().err


def test_cli_degrade_factor_equals_thickness(hr_nifti, tmp_path):
    path, _ = hr_nifti
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert main(["degrade", str(path), str(a), "--factor", "5.33"]) == 0
    assert main(["degrade", str(path), str(b), "--thickness", str(5.33 * 1.2)]) == 0
    ia, ib = nib.load(a), nib.load(b)
    assert ia.shape == ib.shape and np.allclose(ia.affine, ib.affine)
    assert np.allclose(ia.get_fdata(), ib.get_fdata(), atol=1e-6)


def test_cli_degrade_factor_below_one(hr_nifti, tmp_path, capsys):
    path, _ = hr_nifti
    out = tmp_path / "x.nii.gz"
    assert main(["degrade", str(path), str(out), "--factor", "0.5"]) == 1
    assert "factor must be >= 1" in capsys.readouterr().err and not out.exists()

"""unicoal normalize: known percentiles, [0, 1] range, mask respected, exact inversion, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from unicoal.cli import main
from unicoal.errors import InputError
from unicoal.preprocess.normalize import NormalizeConfig, denormalize, normalize_array, normalize_volume


def _volume() -> np.ndarray:
    """20^3 volume: a 10^3 block holding the values 1..1000 (shuffled), background 0."""
    x = np.zeros((20, 20, 20), np.float32)
    x[5:15, 5:15, 5:15] = np.random.default_rng(0).permutation(np.arange(1, 1001, dtype=np.float32)).reshape(10, 10, 10)
    return x


def _save(path: Path, data: np.ndarray, affine=np.eye(4)) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_known_percentiles_and_range():
    x = _volume()
    y, p = normalize_array(x, config=NormalizeConfig((10.0, 90.0)))
    # numpy's linear percentile of 1..1000: 1 + q/100 * 999
    assert p["low"] == pytest.approx(100.9) and p["high"] == pytest.approx(900.1)
    assert p["foreground_voxels"] == 1000 and p["foreground"] == "> 0"
    assert y.dtype == np.float32 and y.min() == 0.0 and y.max() == 1.0
    fg = x > 0
    assert np.all(y[~fg] == 0)
    inside = fg & (x >= p["low"]) & (x <= p["high"])
    np.testing.assert_allclose(y[inside], (x[inside] - 100.9) / 799.2, atol=1e-6)
    assert np.all(y[fg & (x < p["low"])] == 0) and np.all(y[fg & (x > p["high"])] == 1)
    # default percentiles 0.5 / 99.5
    _, q = normalize_array(x)
    assert (q["low"], q["high"]) == pytest.approx((1 + 0.005 * 999, 1 + 0.995 * 999))


def test_round_trip_within_clip_range(tmp_path):
    x = _volume()
    out = normalize_volume(_save(tmp_path / "x.nii.gz", x), tmp_path / "n" / "x_norm.nii.gz", config=NormalizeConfig((2.0, 98.0)))
    side = json.loads((tmp_path / "n" / "x_norm.json").read_text())
    p = side["normalization"]
    y = nib.load(out).get_fdata(dtype=np.float32)
    inside = (x >= p["low"]) & (x <= p["high"])
    for source in (p, side, out, tmp_path / "n" / "x_norm.json"):
        back = denormalize(y, source)
        # relative to the clip range (float32 storage: ~1e-7 of it)
        err = np.abs(back[inside] - x[inside]).max() / (p["high"] - p["low"])
        assert err < 1e-5, err
    assert p["percentiles"] == [2.0, 98.0]
    assert side["software"]["unicoal"]


def test_mask_respected(tmp_path):
    x = _volume()
    x[0:3, 0:3, 0:3] = 1e6  # bright outlier outside the brain mask (e.g. scalp fat)
    mask = np.zeros_like(x)
    mask[5:15, 5:15, 5:15] = 1
    mask[5:7] = 0  # mask excludes part of the block: those voxels must become 0 and not count
    y, p = normalize_array(x, mask > 0, NormalizeConfig((0.0, 100.0)))
    kept = x[mask > 0]
    assert p["low"] == kept.min() and p["high"] == kept.max() and p["foreground_voxels"] == 800
    assert np.all(y[mask == 0] == 0) and y[0, 0, 0] == 0
    # through the file API too
    out = normalize_volume(_save(tmp_path / "x.nii.gz", x), tmp_path / "y.nii.gz", mask=_save(tmp_path / "m.nii.gz", mask),
                           config=NormalizeConfig((0.0, 100.0)))
    np.testing.assert_allclose(nib.load(out).get_fdata(), y, atol=1e-7)
    assert json.loads((tmp_path / "y.json").read_text())["normalization"]["foreground"] == "mask"


def test_cli_normalize_and_bad_inputs(tmp_path, capsys):
    src = _save(tmp_path / "x.nii.gz", _volume())
    assert main(["normalize", str(src), str(tmp_path / "ok.nii.gz"), "--percentiles", "1", "99"]) == 0
    assert json.loads((tmp_path / "ok.json").read_text())["normalization"]["percentiles"] == [1.0, 99.0]
    capsys.readouterr()
    other_grid = _save(tmp_path / "m_other.nii.gz", np.ones((20, 20, 20), np.float32), np.diag([2.0, 2, 2, 1]))
    empty = _save(tmp_path / "m_empty.nii.gz", np.zeros((20, 20, 20), np.float32))
    const = _save(tmp_path / "const.nii.gz", np.full((8, 8, 8), 5.0, np.float32))
    cases = [
        ([str(src), "OUT", "--percentiles", "99", "1"], "percentiles must be"),
        ([str(src), "OUT", "--percentiles", "-1", "50"], "percentiles must be"),
        ([str(src), "OUT", "--mask", str(other_grid)], "differs from the volume grid"),
        ([str(src), "OUT", "--mask", str(empty)], "mask is empty"),
        ([str(const), "OUT"], "constant"),
        ([str(tmp_path / "missing.nii.gz"), "OUT"], "file not found"),
        ([str(src), str(src)], "overwrite the input"),
    ]
    for i, (argv, message) in enumerate(cases):
        out = tmp_path / f"bad{i}" / "y.nii.gz"
        argv = [str(out) if a == "OUT" else a for a in argv]
        assert main(["normalize", *argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("unicoal: error:") and message in err[0], err
        assert not out.exists() and not out.with_name("y.json").exists()
    assert not list(tmp_path.glob("**/.staging-*"))


def test_denormalize_rejects_foreign_sidecar():
    with pytest.raises(InputError, match="no normalisation parameters"):
        denormalize(np.zeros(3), {"step": "register"})

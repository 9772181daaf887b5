"""unicoal register: recovers a known rigid offset; RAS-canonical shared output grid; bad inputs."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from unicoal.cli import main
from unicoal.errors import InputError
from unicoal.preprocess.register import RegistrationConfig, register, reorient_to_ras, rigid_parameters

TEMPLATE = Path(nib.__file__).parents[1] / "nilearn" / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _rotation(deg_xyz) -> np.ndarray:
    ax, ay, az = (math.radians(d) for d in deg_xyz)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _sample_template(affine: np.ndarray, shape, world_to_template_world=np.eye(4)) -> np.ndarray:
    """Template intensity at the world points of a grid, optionally moved: I(W @ x) (linear)."""
    tmpl = nib.load(TEMPLATE)
    data = np.asarray(tmpl.dataobj, dtype=np.float32)
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    vox = np.linalg.inv(tmpl.affine) @ world_to_template_world @ affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    return ndimage.map_coordinates(data, vox[:3], order=1, cval=0.0).reshape(shape).astype(np.float32)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


# A 3 mm reference in LPI orientation (so reorientation has work to do) and a 3 mm moving image
# in PIR-like axis order, both covering the template's head.
REF_AFFINE = np.array([[-3.0, 0, 0, 96], [0, -3.0, 0, 98], [0, 0, -3.0, 114], [0, 0, 0, 1]])
REF_SHAPE = (66, 78, 64)
MOV_AFFINE = np.array([[0, 0, -3.0, 98], [-3.0, 0, 0, 104], [0, -3.0, 0, 116], [0, 0, 0, 1]])
MOV_SHAPE = (82, 66, 68)
TRUE_ROT_DEG = (3.0, -2.0, 4.0)
TRUE_SHIFT_MM = np.array([4.0, -3.0, 2.5])


@pytest.fixture(scope="module")
def offset_pair(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("reg")
    true = np.eye(4)
    true[:3, :3] = _rotation(TRUE_ROT_DEG)
    true[:3, 3] = TRUE_SHIFT_MM
    ref = _save(d / "sub_T1.nii.gz", _sample_template(REF_AFFINE, REF_SHAPE), REF_AFFINE)
    # Moving anatomy = template moved by `true`: M(y) = I(true^-1 y), so reference point x <-> moving point true @ x.
    mov = _save(d / "sub_T2.nii.gz", _sample_template(MOV_AFFINE, MOV_SHAPE, np.linalg.inv(true)), MOV_AFFINE)
    label = np.zeros(REF_SHAPE, np.uint8)
    label[30:36, 40:44, 20:30] = 2
    lab = _save(d / "sub_label.nii.gz", label, REF_AFFINE)
    out = register(ref, [mov], d / "out", label=lab, config=RegistrationConfig(threads=1, seed=1))
    return {"dir": d, "ref": ref, "mov": mov, "label": lab, "out": out, "true": true}


def test_recovers_known_rigid_offset(offset_pair):
    out, true = offset_pair["out"], offset_pair["true"]
    side = json.loads(out.moving[0].with_name("sub_T2.json").read_text())
    rec = np.array(side["matrix_ras"])
    ref = nib.load(out.reference)
    brain = np.asanyarray(ref.dataobj) > 30  # template brain + head, background is 0
    ijk = np.argwhere(brain).T
    xyz = ref.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    residual_mm = np.linalg.norm((rec @ xyz - true @ xyz)[:3], axis=0).mean()
    residual_deg = rigid_parameters(rec @ np.linalg.inv(true))["rotation_deg"]
    assert residual_mm < 1.0, residual_mm
    assert residual_deg < 1.0, residual_deg
    assert side["rotation_deg"] == pytest.approx(rigid_parameters(true)["rotation_deg"], abs=1.0)
    # the resampled moving image now matches the reference anatomy (0.93 is the ceiling set by
    # resampling twice at 3 mm; the unregistered pair correlates at 0.43)
    warped = nib.load(out.moving[0]).get_fdata()
    ref_data = ref.get_fdata()
    assert np.corrcoef(warped[brain], ref_data[brain])[0, 1] > 0.9


def test_outputs_share_ras_canonical_grid(offset_pair):
    out = offset_pair["out"]
    imgs = [nib.load(p) for p in out.volumes]
    assert len(imgs) == 3
    for img in imgs:
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        assert img.shape == imgs[0].shape
        np.testing.assert_allclose(img.affine, imgs[0].affine, atol=1e-5)
    # reorientation is exact: every reference voxel keeps its world position and value
    src = nib.load(offset_pair["ref"])
    data, aff = reorient_to_ras(np.asanyarray(src.dataobj), src.affine)
    np.testing.assert_array_equal(np.asanyarray(imgs[0].dataobj), data)
    np.testing.assert_allclose(aff, imgs[0].affine)
    centre_src = src.affine @ np.array([33.0, 41.0, 25.0, 1.0])  # label box corner in source voxels
    lab = np.asanyarray(imgs[2].dataobj)
    assert lab.dtype == np.uint8 and int(lab.sum()) == 2 * 6 * 4 * 10
    ijk_out = np.round(np.linalg.inv(imgs[2].affine) @ centre_src).astype(int)[:3]
    assert lab[tuple(ijk_out)] == 2


def test_sidecars_and_transform_files(offset_pair):
    out = offset_pair["out"]
    assert [p.name for p in out.transforms] == ["sub_T2_to_ref.mat"]
    assert out.transforms[0].stat().st_size > 0
    side = json.loads((out.reference.parent / "sub_T2.json").read_text())
    assert side["transform"] == str(out.transforms[0])
    assert side["parameters"]["transform"] == "Rigid" and side["parameters"]["seed"] == 1
    assert "antspyx" in side["software"] and side["reference_orientation_in"] == "LPI"
    ref_side = json.loads((out.reference.parent / "sub_T1.json").read_text())
    assert ref_side["role"] == "reference" and ref_side["transform"] is None
    # nothing else left behind (no staging folder)
    names = sorted(p.name for p in out.reference.parent.iterdir())
    assert names == sorted(["sub_T1.nii.gz", "sub_T1.json", "sub_T2.nii.gz", "sub_T2.json", "sub_T2_to_ref.mat", "sub_label.nii.gz", "sub_label.json"])


def test_cli_bad_inputs_leave_no_output(offset_pair, tmp_path, capsys):
    d = offset_pair["dir"]
    bad_label = _save(tmp_path / "lab.nii.gz", np.ones((10, 10, 10), np.uint8), np.eye(4))
    sheared = _save(tmp_path / "sheared.nii.gz", np.ones((10, 10, 10), np.float32), np.array([[3.0, 0.6, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]))
    cases = [
        (["--reference", str(offset_pair["ref"]), "--moving", str(tmp_path / "missing.nii.gz")], "file not found"),
        (["--reference", str(offset_pair["ref"]), "--moving", str(offset_pair["mov"]), "--label", str(bad_label)], "differs from the reference"),
        (["--reference", str(offset_pair["ref"]), "--moving", str(offset_pair["mov"]), "--type", "SyN"], "unknown registration type"),
        (["--reference", str(offset_pair["ref"]), "--moving", str(offset_pair["ref"])], "is also the reference"),
        (["--reference", str(offset_pair["ref"]), "--moving", str(offset_pair["mov"]), "--threads", "0"], "threads must be"),
        (["--reference", str(offset_pair["ref"]), "--moving", str(sheared)], "sheared.nii.gz: the affine has shear"),
    ]
    for i, (argv, message) in enumerate(cases):
        out_dir = tmp_path / f"out{i}"
        code = main(["register", *argv, "--out-dir", str(out_dir)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("unicoal: error:") and message in err[0], err
        assert not out_dir.exists() or not any(out_dir.iterdir())
    assert d.exists()


def test_cli_quickrigid_is_reproducible(offset_pair, tmp_path):
    """Two fresh processes (ITK fixes its thread count when antspyx is imported): bit-identical."""
    matrices = []
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-m", "unicoal", "register", "--reference", str(offset_pair["ref"]), "--moving",
                        str(offset_pair["mov"]), "--out-dir", str(tmp_path / run), "--type", "QuickRigid", "--seed", "3"],
                       check=True, capture_output=True)
        side = json.loads((tmp_path / run / "sub_T2.json").read_text())
        assert side["parameters"]["transform"] == "QuickRigid" and side["parameters"]["seed"] == 3
        matrices.append(np.array(side["matrix_ras"]))
    np.testing.assert_array_equal(matrices[0], matrices[1])  # fixed seed, 1 thread: bit-identical
    # QuickRigid stops early (20x20 iterations at the coarse levels): still within a few mm here
    assert np.abs(matrices[0][:3, 3] - offset_pair["true"][:3, 3]).max() < 5.0


@pytest.mark.parametrize("kwargs", [{"transform": "Affine"}, {"threads": 0}, {"seed": 0}, {"seed": -1}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(InputError):
        RegistrationConfig(**kwargs)


def test_recovers_phantom_acquisition_offsets(tmp_path):
    """Tiny phantom (3.3 mm): FLAIR (axial, oblique slab, head motion) onto the sagittal T1.

    Truth: truth.json's reference_to_world. Measured: 0.28 mm / 0.27 degrees (T2 0.16 mm, PD 0.16 mm).
    """
    from unicoal.cohort.phantom import simulate_subject

    paths = simulate_subject(tmp_path / "phantom", 1, preset="tiny", seed=0)
    out = register(paths["T1"], [paths["FLAIR"]], tmp_path / "reg", label=paths["brainmask"])
    truth = json.loads(paths["truth"].read_text())["modalities"]["FLAIR"]
    true = np.array(truth["reference_to_world"])
    rec = np.array(json.loads(out.moving[0].with_name("phantom001_FLAIR.json").read_text())["matrix_ras"])
    lab = nib.load(out.label)
    ijk = np.argwhere(np.asanyarray(lab.dataobj) > 0).T
    xyz = lab.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    residual_mm = np.linalg.norm((rec @ xyz - true @ xyz)[:3], axis=0).mean()
    residual_deg = rigid_parameters(rec @ np.linalg.inv(true))["rotation_deg"]
    assert truth["rotation_deg"] > 1.0  # there was something to recover
    assert residual_mm < 1.0 and residual_deg < 1.0, (residual_mm, residual_deg)

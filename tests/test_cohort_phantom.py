"""The embedded phantom cohort: determinism, MR physics, lesion, native grids and true transforms."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from unicoal.cohort import phantom as ph
from unicoal.io import load_volume, read_json

MODS = ("T1", "T2", "PD", "FLAIR")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    sheet = ph.generate_cohort(out, subjects=3, preset="tiny", seed=7)
    return out, sheet


@pytest.fixture(scope="module")
def rendered():
    """Subject 1 of seed 7, rendered in memory with its true tissue fractions on every grid."""
    params = ph.sample_subject(ph.subject_id(1), ph.subject_seed(7, 1), "tiny")
    return ph.render_subject(params, "tiny", with_tissue=True)


def _means(vol, modality, threshold=0.9):
    img = vol.images[modality].astype(np.float64)
    return {t: img[f > threshold].mean() for t, f in vol.tissue_fractions[modality].items()}


def test_samplesheet_rows_files_and_splits(cohort):
    out, sheet = cohort
    with open(sheet, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert {r["subject"] for r in rows} == {"phantom001", "phantom002", "phantom003"}
    splits = {r["subject"]: r["split"] for r in rows}
    assert sorted(splits.values()).count("test") >= 1
    for r in rows:
        assert (out / r["path"]).is_file() and (out / r["label"]).is_file()
        assert r["label"] == f"{r['subject']}/{r['subject']}_lesion.nii.gz"
    for sid in splits:
        for name in (*[f"{sid}_{m}" for m in MODS], f"{sid}_brainmask", f"{sid}_lesion"):
            assert (out / sid / f"{name}.nii.gz").is_file()
        assert (out / sid / "truth.json").is_file()


def test_tiny_volumes_small_and_valid(cohort):
    out, _ = cohort
    for m in MODS:
        data, img = load_volume(out / "phantom001" / f"phantom001_{m}.nii.gz")
        assert max(data.shape) <= 64 and np.prod(data.shape) <= 64 * 64 * 56
        assert img.get_data_dtype() == np.int16
        assert data.min() >= 0
    mask, mimg = load_volume(out / "phantom001" / "phantom001_brainmask.nii.gz")
    t1, timg = load_volume(out / "phantom001" / "phantom001_T1.nii.gz")
    assert mask.shape == t1.shape and np.allclose(mimg.affine, timg.affine)
    assert set(np.unique(mask)) == {0.0, 1.0}
    # MNI152 brain mask (1.88 l) scaled by 0.95-1.05 per axis: 1.6-2.2 l
    vox_ml = abs(np.linalg.det(timg.affine[:3, :3])) / 1000.0
    assert 1400 < mask.sum() * vox_ml < 2500


def test_deterministic_for_a_seed_and_different_across_seeds(cohort, rendered, tmp_path):
    """phantom001 written by generate_cohort equals an independent in-memory render of (seed 7, subject 1)."""
    out, _ = cohort
    for m in MODS:
        a = np.asanyarray(nib.load(out / "phantom001" / f"phantom001_{m}.nii.gz").dataobj)
        assert a.dtype == np.int16 and np.array_equal(a, rendered.images[m]), m
    assert np.array_equal(np.asanyarray(nib.load(out / "phantom001" / "phantom001_lesion.nii.gz").dataobj), rendered.lesion)
    assert np.array_equal(np.asanyarray(nib.load(out / "phantom001" / "phantom001_brainmask.nii.gz").dataobj), rendered.brainmask)
    other = ph.simulate_subject(tmp_path / "other", 1, preset="tiny", seed=8)
    t1_a = rendered.images["T1"].astype(float)
    t1_c = np.asanyarray(nib.load(other["T1"]).dataobj).astype(float)
    assert np.mean(np.abs(t1_a - t1_c)) > 0.1 * t1_a.mean()
    truth_a = read_json(out / "phantom001" / "truth.json")
    truth_c = read_json(other["truth"])
    assert truth_a["lesion"] != truth_c["lesion"]
    assert not np.allclose(truth_a["modalities"]["T2"]["world_to_reference"], truth_c["modalities"]["T2"]["world_to_reference"])


def test_contrasts_ordered_as_physics_says(rendered):
    t2, t1, fl, pd = (_means(rendered, m) for m in ("T2", "T1", "FLAIR", "PD"))
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert fl["csf"] < min(fl["gm"], fl["wm"])
    assert fl["csf"] < 0.6 * fl["wm"]  # nulled CSF (only Rician noise floor and partial volume remain)
    assert t2["csf"] > 1.8 * t2["wm"] and t1["wm"] > 1.15 * t1["gm"]
    # every pure tissue class has enough voxels for the means to mean something
    for m in MODS:
        for t in ("gm", "wm", "csf"):
            assert (rendered.tissue_fractions[m][t] > 0.9).sum() > 200, (m, t)
    assert pd["gm"] > pd["wm"]


def test_lesion_label_and_contrast(rendered):
    from scipy import ndimage as ndi

    assert rendered.lesion.dtype == np.uint8 and set(np.unique(rendered.lesion)) == {0, 1}
    assert rendered.lesion.sum() >= 20
    assert np.all(rendered.brainmask[rendered.lesion > 0] == 1)  # the lesion lies in the brain
    # relative difference lesion vs a 2-voxel ring around it; T2w and FLAIR must show it bright
    floor = {"T1": 0.08, "PD": 0.08, "T2": 0.5, "FLAIR": 0.25}
    for m in MODS:
        frac = rendered.tissue_fractions[m]["lesion"]
        inside = frac > 0.9
        ring = ndi.binary_dilation(frac > 0.1, iterations=2) & ~ndi.binary_dilation(frac > 0.1)
        img = rendered.images[m].astype(float)
        assert inside.sum() >= 5
        rel = (img[inside].mean() - img[ring].mean()) / img[ring].mean()
        assert abs(rel) > floor[m], (m, rel)
        if m in ("T2", "FLAIR"):
            assert rel > 0, (m, rel)


def test_native_grids_differ_and_truth_maps_them_onto_each_other(cohort, rendered):
    """Centroids of the true WM and lesion maps agree in T1 world after the truth.json transform."""
    out, _ = cohort
    truth = read_json(out / "phantom001" / "truth.json")
    assert truth["reference"] == "T1"
    affines = {m: nib.load(out / "phantom001" / f"phantom001_{m}.nii.gz").affine for m in MODS}
    for m in MODS:
        assert np.allclose(affines[m], rendered.affines[m], atol=1e-4)
        assert np.allclose(truth["modalities"][m]["affine"], affines[m], atol=1e-6)
    assert not np.allclose(affines["T1"][:3, :3], affines["T2"][:3, :3], atol=0.05)  # sagittal vs axial
    assert not np.allclose(affines["T2"], affines["FLAIR"], atol=0.1)                  # slab planning differs
    assert np.allclose(truth["modalities"]["T1"]["world_to_reference"], np.eye(4))

    def centroid_world(m, tissue):
        f = rendered.tissue_fractions[m][tissue].astype(np.float64)
        idx = np.indices(f.shape).reshape(3, -1)
        c = (idx * f.reshape(-1)).sum(1) / f.sum()
        return (affines[m] @ np.r_[c, 1.0])[:3]

    for tissue in ("wm", "lesion"):
        ref = centroid_world("T1", tissue)
        for m in ("T2", "PD", "FLAIR"):
            w2r = np.asarray(truth["modalities"][m]["world_to_reference"])
            p = centroid_world(m, tissue)
            mapped = (w2r @ np.r_[p, 1.0])[:3]
            assert np.linalg.norm(mapped - ref) < 1.0, (tissue, m, mapped - ref)
            if tissue == "wm":
                assert np.linalg.norm(p - ref) > 1.5, (m, "motion should move the head by a few mm")
            assert np.allclose(np.asarray(truth["modalities"][m]["reference_to_world"]) @ w2r, np.eye(4), atol=1e-9)
        for m in ("T2", "PD", "FLAIR"):
            assert 1.5 <= truth["modalities"][m]["rotation_deg"] <= 4.0 + 1e-6


def test_signal_equations_and_flair_nulls_csf():
    csf = ph.TISSUES["csf"]
    assert float(ph.signal(*csf, ph.SEQUENCES["FLAIR"])) < 1e-3
    wm, gm = ph.TISSUES["wm"], ph.TISSUES["gm"]
    se = ph.SEQUENCES["T1"]
    assert float(ph.signal(*wm, se)) == pytest.approx(wm[2] * (1 - np.exp(-se.tr / wm[0])) * np.exp(-se.te / wm[1]))
    assert float(ph.signal(*wm, se)) > float(ph.signal(*gm, se))


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    from unicoal.cli import main

    for bad in (["--preset", "huge"], ["--subjects", "0"], ["--subjects", "two"]):
        with pytest.raises(SystemExit) as exc:
            main(["cohort", "phantom", "--out", str(tmp_path / "x"), *bad])
        assert exc.value.code == 2
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["cohort", "phantom", "--out", str(blocker), "--subjects", "1"]) == 1
    err = capsys.readouterr().err
    assert "unicoal: error:" in err and "not a folder" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_standard_preset_shape_and_spacing(tmp_path):
    from unicoal.geometry import Grid

    paths = ph.simulate_subject(tmp_path, 1, preset="standard", seed=0)
    t1 = nib.load(paths["T1"])
    t2 = nib.load(paths["T2"])
    assert t1.shape == (240, 240, 150) and t2.shape == (256, 256, 150)
    assert np.allclose(np.linalg.norm(t1.affine[:3, :3], axis=0), (1.0, 1.0, 1.2), atol=1e-6)
    assert np.allclose(np.linalg.norm(t2.affine[:3, :3], axis=0), (0.9375, 0.9375, 1.2), atol=1e-6)
    g1, g2 = Grid.from_image(t1), Grid.from_image(t2)
    assert g1.slice_axis == 2 and g1.thickness == pytest.approx(1.2)
    assert abs(t1.affine[0, 2]) > 1.1  # T1 slices run along world x: sagittal
    assert g2.slice_axis == 2 and abs(t2.affine[2, 2]) > 1.1  # axial
    mask = np.asanyarray(nib.load(paths["brainmask"]).dataobj)
    assert 1400 < mask.sum() / 1000 * 1.2 < 2500  # brain volume in ml (MNI152 mask 1.88 l, scaled 0.95-1.05 per axis)

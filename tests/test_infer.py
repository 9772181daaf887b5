"""unicoal synthesize: target grids, slice counts and affines, tasks, samples, errors."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from unicoal.cli import main
from unicoal.geometry import Grid, slice_positions, target_grid, thick_slice_grid
from unicoal.infer import derived_path, synthesize
from unicoal.io import load_volume, save_volume
from unicoal.preprocess.degrade import degrade_array

torch.set_num_threads(1)
HR_THICK = 1.25


class _Evil:
    """An arbitrary class: weights_only loading must refuse it."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An HR T1/T2 pair (32 slices of 1.25 mm), its 7.5 mm (6x) T1 simulation, a micro model."""
    from unicoal.train.checkpoint import inference_export, save_checkpoint
    from unicoal.train.config import load_config
    from unicoal.train.synthetic import micro_overrides, synthetic_subject

    tmp = tmp_path_factory.mktemp("infer")
    vols = synthetic_subject((36, 40, 32), ("T1", "T2"), seed=3, smooth=1.5)
    aff = np.diag([0.9, 0.9, HR_THICK, 1.0])
    aff[:3, 3] = (-20.0, -15.0, 10.0)
    hr_t1, hr_t2 = tmp / "hr_T1.nii.gz", tmp / "hr_T2.nii.gz"
    save_volume(hr_t1, vols["T1"], aff)
    save_volume(hr_t2, vols["T2"], aff)
    hr = Grid((36, 40, 32), aff, 2)
    lr_grid = thick_slice_grid(hr, 6 * HR_THICK)
    lr, _ = degrade_array(vols["T1"], 6.0, axis=2)
    lr_path = tmp / "lr_T1.nii.gz"
    save_volume(lr_path, lr, lr_grid.matrix)

    cfg = load_config("tiny", micro_overrides())
    from unicoal.methods import get_method

    spec = get_method("unicoal")
    model_cfg = spec.model_config(cfg.model)
    torch.manual_seed(0)
    G, _ = spec.build_models(model_cfg, discriminator=False)
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, inference_export({"config": cfg.to_dict(), "model_config": model_cfg.to_dict(), "G_ema": G.state_dict(), "step": 0, "images_seen": 0}))
    return {"tmp": tmp, "hr": hr, "hr_t1": hr_t1, "hr_t2": hr_t2, "lr": lr_path, "lr_grid": lr_grid, "ckpt": ckpt, "vols": vols}


@pytest.mark.parametrize("scale,count", [(1.0, 5), (2.0, 10), (5.33, 26), (6.0, 30)])
@pytest.mark.parametrize("method", ["unicoal", "linear"])
def test_slice_count_and_affine(setup, scale, count, method):
    out = setup["tmp"] / f"{method}_{scale}.nii.gz"
    thickness = 6 * HR_THICK / scale
    kw = {"checkpoint": setup["ckpt"]} if method == "unicoal" else {"method": "linear"}
    meta = synthesize([setup["lr"]], out, to="T1", thickness=thickness, source_modalities=["T1"], batch_size=8, progress=False, **kw)
    data, img = load_volume(out)
    assert data.shape == (36, 40, count)
    expect = target_grid(setup["lr_grid"], thickness)
    np.testing.assert_allclose(img.affine, expect.matrix, atol=1e-5)
    assert meta["task"] == "sr"  # T1 -> T1 (1x: identity-thickness SR)
    assert meta["scale"] == pytest.approx(scale, rel=1e-6)
    assert 0.0 <= data.min() and data.max() <= 1.0
    # every output slab lies inside the source slab extent, flush with its first edge
    lr = setup["lr_grid"]
    first_edge = lr.index_to_world([[0, 0, -0.5]])[0, 2]
    assert img.affine[2, 3] - thickness / 2 == pytest.approx(first_edge, abs=1e-4)
    last_edge = img.affine[2, 3] + (count - 0.5) * thickness
    assert last_edge <= lr.index_to_world([[0, 0, lr.num_slices - 0.5]])[0, 2] + 1e-4
    if scale == 6.0:  # 6x from a 6x simulation lands exactly on the HR slices 0 .. 29
        np.testing.assert_allclose(img.affine, setup["hr"].matrix, atol=1e-5)
    side = json.loads((setup["tmp"] / f"{method}_{scale}.json").read_text())
    assert side["target_grid"]["shape"][2] == count and side["method"] == method


def test_like_reference_grid(setup):
    out = setup["tmp"] / "like.nii.gz"
    meta = synthesize([setup["lr"]], out, to="T2", like=setup["hr_t2"], source_modalities=["T1"], checkpoint=setup["ckpt"], progress=False)
    data, img = load_volume(out)
    ref = nib.load(str(setup["hr_t2"]))
    assert data.shape == ref.shape
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-6)
    assert meta["task"] == "cmsr" and meta["scale"] == pytest.approx(6.0)
    n, delta = slice_positions(setup["lr_grid"], setup["hr"])
    assert n.tolist()[:10] == [-1, -1, -1, 0, 0, 0, 0, 0, 0, 1]  # LR centres at HR 2.5, 8.5, ...
    assert delta[0] == pytest.approx(1 - 2.5 / 6) and delta[3] == pytest.approx(0.5 / 6)
    # an incompatible reference (other in-plane grid) is a one-line error
    bad = setup["tmp"] / "bad_ref.nii.gz"
    save_volume(bad, np.ones((30, 40, 32), np.float32), setup["hr"].matrix)
    assert main(["synthesize", "--checkpoint", str(setup["ckpt"]), "--input", str(setup["lr"]), "--to", "T2", "--like", str(bad), "--out", str(setup["tmp"] / "x.nii.gz"), "--no-progress"]) == 1
    assert not (setup["tmp"] / "x.nii.gz").exists()


def test_one_network_serves_cms_sr_cmsr(setup):
    """delta and c_out change the output: one checkpoint does CMS, SR and CMSR."""
    tmp = setup["tmp"]
    tasks = {}
    for name, src, to, th in (("cms", setup["hr_t1"], "T2", HR_THICK), ("sr", setup["lr"], "T1", HR_THICK), ("cmsr", setup["lr"], "T2", HR_THICK), ("cms_pd", setup["hr_t1"], "PD", HR_THICK)):
        out = tmp / f"task_{name}.nii.gz"
        meta = synthesize([src], out, to=to, thickness=th, source_modalities=["T1"], checkpoint=setup["ckpt"], progress=False)
        tasks[name] = (meta["task"], load_volume(out)[0])
    assert [tasks[k][0] for k in ("cms", "sr", "cmsr", "cms_pd")] == ["cms", "sr", "cmsr", "cms"]
    # c_out: same input and positions, different target modality
    assert np.abs(tasks["cms"][1] - tasks["cms_pd"][1]).mean() > 1e-4
    # delta: within one 6x slab the input slices are identical, only delta differs
    sr = tasks["sr"][1]
    assert np.abs(sr[..., 7] - sr[..., 10]).mean() > 1e-4  # n = 0 for HR slices 3..8, 1 for 9..14
    from unicoal.infer import load_predictor

    _, pred, _ = load_predictor(None, setup["ckpt"])
    vol = np.moveaxis(load_volume(setup["lr"])[0], 2, 0)
    a = pred.predict(vol, np.array([1, 1]), np.array([0.0, 0.5]), "T1", seed=0)
    b = pred.predict(vol, np.array([1, 1]), np.array([0.0, 0.5]), "T2", seed=0)
    assert np.abs(a[0] - a[1]).mean() > 1e-5 and np.abs(a - b).mean() > 1e-5


def test_training_checkpoint_is_accepted(setup, tmp_path):
    """A training ``last.pt`` works as --checkpoint (its EMA generator), same output as model.pt."""
    from unicoal.train.checkpoint import TRAIN_FORMAT, save_checkpoint

    model = torch.load(setup["ckpt"], weights_only=True)
    last = tmp_path / "last.pt"
    save_checkpoint(last, {"format": TRAIN_FORMAT, "config": model["train_config"], "model_config": model["model_config"], "G_ema": model["state_dict"], "step": 0, "images_seen": 0})
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    synthesize([setup["lr"]], a, to="T2", thickness=2.5, checkpoint=setup["ckpt"], progress=False)
    synthesize([setup["lr"]], b, to="T2", thickness=2.5, checkpoint=last, progress=False)
    np.testing.assert_array_equal(load_volume(a)[0], load_volume(b)[0])


def test_samples_write_mean_and_std(setup):
    out = setup["tmp"] / "samples.nii.gz"
    meta = synthesize([setup["lr"]], out, to="T1", thickness=2.5, source_modalities=["T1"], checkpoint=setup["ckpt"], samples=3, seed=7, progress=False)
    first = load_volume(out)[0]
    mean = load_volume(derived_path(out, "mean"), allow_empty=True)[0]
    std = load_volume(derived_path(out, "std"), allow_empty=True)[0]
    assert first.shape == mean.shape == std.shape == (36, 40, 15)
    assert std.max() > 0 and std.min() >= 0  # latent codes differ
    assert meta["samples"] == 3 and meta["mean"].endswith("samples_mean.nii.gz")
    again = setup["tmp"] / "again.nii.gz"
    synthesize([setup["lr"]], again, to="T1", thickness=2.5, source_modalities=["T1"], checkpoint=setup["ckpt"], seed=7, progress=False)
    np.testing.assert_array_equal(load_volume(again)[0], first)  # seeded: reproducible
    assert derived_path("a/b.nii", "std").name == "b_std.nii"


def test_one_line_errors(setup, tmp_path, capsys):
    base = ["synthesize", "--input", str(setup["lr"]), "--out", str(tmp_path / "o.nii.gz"), "--no-progress"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    evil = tmp_path / "evil.pt"
    torch.save({"format": "unicoal-model/3", "x": _Evil()}, evil)  # a pickled object, not weights
    old = tmp_path / "v1.pt"
    torch.save({**torch.load(setup["ckpt"], weights_only=True), "format": "unicoal-model/1"}, old)  # before issue #15
    old2 = tmp_path / "before20.pt"
    torch.save({**torch.load(setup["ckpt"], weights_only=True), "format": "unicoal-model/2"}, old2)  # before issue #20
    cases = [
        (["--checkpoint", str(junk), "--to", "T1", "--thickness", "2"], "unreadable checkpoint"),
        (["--checkpoint", str(evil), "--to", "T1", "--thickness", "2"], "unreadable checkpoint"),
        (["--checkpoint", str(tmp_path / "none.pt"), "--to", "T1", "--thickness", "2"], "checkpoint not found"),
        (["--checkpoint", str(old), "--to", "T1", "--thickness", "2"], "checkpoint format unicoal-model/1 is written before"),
        (["--checkpoint", str(old2), "--to", "T1", "--thickness", "2"], "checkpoint format unicoal-model/2 is written before the networks followed"),
        (["--checkpoint", str(setup["ckpt"]), "--to", "XYZ", "--thickness", "2"], "unknown modality"),
        (["--checkpoint", str(setup["ckpt"]), "--to", "FLAIR", "--thickness", "2"], "unknown target modality"),
        (["--checkpoint", str(setup["ckpt"]), "--to", "T1", "--thickness", "0"], "must be > 0"),
        (["--checkpoint", str(setup["ckpt"]), "--to", "T1", "--thickness", "-1"], "must be > 0"),
        (["--method", "linear", "--from", "T1", "--to", "T2", "--thickness", "2"], "cannot perform CMSR"),
        (["--method", "unicoal", "--to", "T1", "--thickness", "2"], "needs --checkpoint"),
        (["--to", "T1", "--thickness", "2"], "no --checkpoint and no --method"),
        (["--method", "linear", "--to", "T1", "--thickness", "100"], "exceeds the input extent"),
    ]
    for args, msg in cases:
        assert main(base + args) == 1, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("unicoal: error:") and msg in err[0], (args, err)
    assert not list(tmp_path.glob("o*"))  # nothing half-written


def test_raw_intensities_rejected_for_networks(setup, tmp_path):
    raw = tmp_path / "raw.nii.gz"
    save_volume(raw, load_volume(setup["lr"])[0] * 800, nib.load(str(setup["lr"])).affine)
    with pytest.raises(ValueError, match=r"expected \[0, 1\]"):
        synthesize([raw], tmp_path / "o.nii.gz", to="T1", thickness=2.5, checkpoint=setup["ckpt"], progress=False)
    # interpolation keeps the input's intensity range
    meta = synthesize([raw], tmp_path / "lin.nii.gz", to="T1", thickness=2.5, method="linear", progress=False)
    out = load_volume(tmp_path / "lin.nii.gz")[0]
    assert meta["task"] == "sr" and out.max() > 100

"""ArSSR (Wu et al. 2023): network, implicit patches, training through the shared trainer, synthesis
at integer and non-integer scales from one model, task refusal, weights-only checkpoints, resume."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from unicoal.cli import main
from unicoal.data import DataConfig
from unicoal.geometry import Grid, slice_positions, target_grid, thick_slice_grid
from unicoal.io import load_volume, save_volume, sidecar_path
from unicoal.methods import METHODS, TASKS
from unicoal.models.baselines.arssr import ArssrConfig, ArssrNet, arssr_config, normalized_coords
from unicoal.predictors.implicit import ImplicitPatchDataset, ImplicitPredictor, tent_weights, window_starts
from unicoal.preprocess.degrade import degrade_array
from unicoal.train.config import load_config
from unicoal.train.loop import build_dataset, train
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)
HR_THICK = 1.25


def _tiny_cfg(steps: int, **extra):
    over = {
        # the model knows T1 and T2 but is trained (as ArSSR can be) for T1 SR only
        "model": {"modalities": ["T1", "T2"]},
        "data": {"input_modalities": ["T1"], "output_modalities": ["T1"]},
        "optim": {"total_steps": steps},
        "run": {"log_every": 1, "tensorboard": False, "checkpoint_every": 10},
    }
    for k, v in extra.items():
        over.setdefault(k, {}).update(v)
    return load_config("arssr_tiny", over)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arssr")
    sheet = make_synthetic_cohort(tmp / "cohort", subjects=3, shape=(36, 36, 24), splits=["train", "train", "test"])
    return tmp, sheet


@pytest.fixture(scope="module")
def trained(cohort):
    """A tiny ArSSR trained 40 steps; held-out L1 before / after on fixed test-split patches."""
    tmp, sheet = cohort
    cfg = _tiny_cfg(40)
    test_ds = build_dataset(cfg, sheet, split="test")
    batch = torch.utils.data.default_collate([test_ds[i] for i in range(0, len(test_ds), 2)])

    def held_out(G) -> float:
        with torch.no_grad():
            return float((G.eval()(batch["x_in"], batch["delta"]) - batch["y"]).abs().mean())

    torch.manual_seed(cfg.run.seed)
    before = held_out(ArssrNet(arssr_config(cfg.model)))  # the trainer's initialisation (same seed)
    run = tmp / "run"
    out = train(cfg, sheet, run, progress=False)
    after = held_out(out["trainer"].ema.model)
    return {"run": run, "before": before, "after": after, "cfg": cfg, "sheet": sheet, "tmp": tmp}


# --- network ---------------------------------------------------------------------------------
def test_registry_row_is_table_v():
    spec = METHODS["arssr"]
    assert spec.display == "ArSSR" and spec.dims == "3D" and spec.trainable
    assert [spec.capability(t) for t in TASKS] == ["-", "spec+in+out", "-"]  # SR spec + arbitrary in/out only
    assert spec.predictor == "implicit" and spec.dataset == "implicit"


def test_published_size_matches_authors_code():
    G = ArssrNet(ArssrConfig.paper())
    enc = sum(p.numel() for p in G.encoder.parameters())
    dec = sum(p.numel() for p in G.decoder.parameters())
    # the authors' iwuqing/ArSSR encoder.py RDN (line 39: 64 features, growth 64, 8 blocks x 3 layers,
    # feature_dim 128) and decoder.py MLP (line 14: two stages of 4 layers, width 256)
    assert enc == 5_918_784 and dec == 364_676
    tiny = ArssrNet(ArssrConfig.tiny())
    assert sum(p.numel() for p in tiny.parameters()) < 20_000


def test_forward_backward_cpu_and_query_semantics():
    cfg = ArssrConfig.tiny()
    torch.manual_seed(0)
    G = ArssrNet(cfg)
    x = torch.randn(2, 1, *cfg.patch_shape)
    u = torch.tensor([[0.0, 1.5, 2.25, 5.0], [0.5, 0.5, 3.0, 4.0]])
    y = G(x, u)
    assert y.shape == (2, 1, 4, 16, 16)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    with torch.no_grad():
        feats = G.encode(x)
        # a query at an LR slice centre decodes that slice's own features; one between two
        # slices the linear mix (trilinear sampling, exact in-plane voxel centres)
        f0, f1 = feats[:, :, 1], feats[:, :, 2]
        mid = torch.nn.functional.grid_sample(feats, torch.stack(torch.broadcast_tensors(
            normalized_coords(torch.arange(16.0), 16).view(1, 1, 1, 16), normalized_coords(torch.arange(16.0), 16).view(1, 1, 16, 1),
            normalized_coords(torch.tensor(1.25), cfg.lr_slices).view(1, 1, 1, 1).expand(2, 1, 1, 1)), dim=-1), align_corners=False)
        assert torch.allclose(mid[:, :, 0], 0.75 * f0 + 0.25 * f1, atol=1e-5)
        # chunked decoding equals one pass
        assert torch.allclose(G.decode(feats, u, chunk=1), G.decode(feats, u), atol=1e-6)


@pytest.mark.parametrize("bad,msg", [
    ({"decoder_depth": 3}, "decoder_depth"), ({"lr_slices": 1}, "lr_slices"), ({"num_inputs": 4}, "num_inputs"),
    ({"modalities": ["T1", "T1"]}, "modalities"), ({"nope": 1}, "unknown ArSSR model key"), ({"preset": "huge"}, "preset"),
])
def test_invalid_configs(bad, msg):
    with pytest.raises(ValueError, match=msg):
        arssr_config({"preset": "tiny", **bad})


def test_window_helpers():
    assert window_starts(5, 8) == [0]
    assert window_starts(20, 8) == [0, 4, 8, 12]
    assert window_starts(21, 8) == [0, 4, 8, 12, 13]
    w = tent_weights(np.array([0.0, 3.5, 7.0]), -0.5, 7.5, False, False)
    assert np.allclose(w, [0.5, 4.0, 0.5])
    assert np.allclose(tent_weights(np.array([0.0]), -0.5, 7.5, True, False), [7.5])


# --- data ------------------------------------------------------------------------------------
def test_patches_are_deterministic_and_on_the_geometry(cohort):
    _, sheet = cohort
    cfg = ArssrConfig.tiny(modalities=("T1",))
    dc = DataConfig(modalities=("T1",), ratios=(2.0, 4.0, 6.0), resolution=cfg.img_resolution, num_inputs=1)
    ds = ImplicitPatchDataset(sheet, dc, lr_slices=cfg.lr_slices, query_voxels=cfg.query_voxels, seed=0)
    a, b = ds[7], ds[7]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ds.set_epoch(1)
    assert not torch.equal(ds[7]["delta"], a["delta"]) or not torch.equal(ds[7]["x_in"], a["x_in"])
    ds.set_epoch(0)
    for i in range(0, len(ds), 5):
        item = ds[i]
        assert item["x_in"].shape == (1, 6, 16, 16) and item["y"].shape == (1, 512) and item["delta"].shape == (512, 3)
        u = item["delta"][:, 0].numpy()
        assert np.all(u >= -0.5 - 1e-6) and np.all(u <= cfg.lr_slices - 0.5 + 1e-6)
        rc = item["delta"][:, 1:].numpy()
        assert np.all(rc == np.round(rc)) and rc.min() >= 0 and rc.max() <= 15
        assert int(item["c_in"]) == int(item["c_out"]) == 0  # SR
    # the LR window is the thick-slice simulation and y the HR slices at the queried positions
    p = ds.sample_params(3)
    item = ds.make_item(p)
    vol = ds.volume(p.subject, "T1")  # [N, A, B], slice axis first
    lr, _ = degrade_array(np.moveaxis(vol, 0, 2), p.ratio, axis=2, phase=p.phase)
    lr = np.moveaxis(lr, 2, 0)
    a, b = vol.shape[1:]
    assert 0 <= p.a0 <= a - 16 and 0 <= p.b0 <= b - 16  # volume larger than the patch: a crop inside it
    crop = (slice(None), slice(p.a0, p.a0 + 16), slice(p.b0, p.b0 + 16))
    idx = np.clip(np.arange(p.j0, p.j0 + 6), 0, lr.shape[0] - 1)
    assert np.allclose(item["x_in"][0].numpy(), lr[idx][crop] * 2 - 1, atol=1e-5)
    # y: the HR voxels at the queried (slice, row, col); K random voxels, without replacement
    t, r, c = np.unravel_index(np.asarray(p.queries), (len(p.targets), 16, 16))
    assert len(set(p.queries)) == len(p.queries) == 512
    hr = vol[list(p.targets)][crop]
    assert np.allclose(item["y"][0].numpy(), hr[t, r, c] * 2 - 1, atol=1e-6)
    g = ds.subjects[p.subject].grid
    n, d = slice_positions(thick_slice_grid(g, p.ratio * g.thickness, phase=p.phase), g)
    u = (n + d)[list(p.targets)] - p.j0
    assert np.allclose(item["delta"].numpy(), np.stack([u[t], r, c], axis=-1), atol=1e-5)
    assert p.k in p.targets and np.all((u >= -0.5 - 1e-9) & (u <= 6 - 0.5 + 1e-9))


def test_dataset_refuses_cross_modality(cohort):
    _, sheet = cohort
    from unicoal.errors import InputError

    dc = DataConfig(modalities=("T1", "T2"), input_modalities=("T1",), output_modalities=("T2",), ratios=(2.0,), resolution=16, num_inputs=1)
    with pytest.raises(InputError, match="ArSSR is SR only"):
        ImplicitPatchDataset(sheet, dc, lr_slices=6, query_voxels=4)


def test_training_scale_is_drawn_continuously_as_the_authors(cohort):
    """round(uniform(lo, hi + 0.04), 1) over the ratios' range (ArSSR data.py draws 2 to 4)."""
    _, sheet = cohort
    dc = DataConfig(modalities=("T1",), ratios=(2.0, 4.0, 6.0), resolution=16, num_inputs=1)
    ds = ImplicitPatchDataset(sheet, dc, lr_slices=6, query_voxels=64, seed=0)
    ratios = np.array([ds.sample_params(i).ratio for i in range(0, len(ds))])
    assert ratios.min() >= 2.0 and ratios.max() <= 6.0 and np.allclose(ratios * 10, np.round(ratios * 10))
    assert len(set(ratios.tolist())) > 10 and np.mean(~np.isin(ratios, [2.0, 4.0, 6.0])) > 0.8
    listed = ImplicitPatchDataset(sheet, dc, lr_slices=6, query_voxels=64, seed=0, continuous_scale=False)
    assert set(listed.sample_params(i).ratio for i in range(0, len(listed))) <= {2.0, 4.0, 6.0}
    cfg = load_config("arssr")
    assert cfg.model["query_voxels"] == 8000 and cfg.model["continuous_scale"]  # train.py -ss 8000


def test_features_are_sampled_with_zero_padding():
    """grid_sample's default zero padding (the authors' model.py): a query one LR voxel beyond the
    first slice centre reads zero features; the voxel query equals the plane query there."""
    cfg = ArssrConfig.tiny()
    torch.manual_seed(0)
    G = ArssrNet(cfg).eval()
    x = torch.randn(1, 1, *cfg.patch_shape)
    with torch.no_grad():
        feats = G.encode(x)
        coords = torch.tensor([[[-1.0, 3.0, 5.0], [2.5, 7.0, 1.0]]])
        out = G.decode_points(feats, coords)
        z = torch.tensor([normalized_coords(torch.tensor(v), n) for v, n in zip((-1.0, 3.0, 5.0), (cfg.lr_slices, 16, 16))])
        want = G.decoder(torch.cat([torch.zeros(cfg.feature_dim), z]))
        assert torch.allclose(out[0, 0, 0], want[0], atol=1e-6)
        planes = G.decode(feats, torch.tensor([[2.5]]))
        assert torch.allclose(out[0, 0, 1], planes[0, 0, 0, 7, 1], atol=1e-6)
        assert G(x, coords).shape == (1, 1, 2)


# --- training, checkpoints, resume -----------------------------------------------------------
def test_training_lowers_held_out_l1(trained):
    assert trained["after"] < 0.6 * trained["before"], (trained["before"], trained["after"])
    rows = list(csv.DictReader(open(trained["run"] / "log.csv")))
    assert len(rows) == 40 and "D_loss" not in rows[0]  # L1 only: no discriminator phase


def test_checkpoints_load_weights_only(trained):
    run = trained["run"]
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 40 and ck["D"] == {} and ck["model_config"]["lr_slices"] == 6
    model = torch.load(run / "model.pt", weights_only=True)
    assert model["method"] == "arssr" and model["modalities"] == ["T1", "T2"]
    G = ArssrNet(arssr_config(model["model_config"]))
    G.load_state_dict(model["state_dict"])


def test_resume_continues_a_killed_run(cohort, trained):
    tmp, sheet = cohort
    cfg = _tiny_cfg(12)
    a = train(cfg, sheet, tmp / "straight", progress=False)
    b1 = train(cfg, sheet, tmp / "killed", progress=False, stop_after=10)  # killed after the step-10 checkpoint
    assert b1["step"] == 10
    b2 = train(cfg, sheet, tmp / "killed", resume=True, progress=False)
    assert b2["step"] == 12
    la = {r["step"]: float(r["G_l1"]) for r in csv.DictReader(open(tmp / "straight" / "log.csv"))}
    lb = {r["step"]: float(r["G_l1"]) for r in csv.DictReader(open(tmp / "killed" / "log.csv"))}
    assert la.keys() == lb.keys() and all(lb[s] == pytest.approx(la[s], rel=1e-6, abs=1e-7) for s in la)
    for (k, pa), pb in zip(a["trainer"].G.state_dict().items(), b2["trainer"].G.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-7), k


# --- synthesis -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def volumes(trained):
    """The test subject's HR T1 (1.25 mm slices) and its 2x / 4x / 6x / 5.33x thick-slice simulations."""
    tmp = trained["tmp"]
    rows = list(csv.DictReader(open(trained["sheet"])))
    hr_path = trained["sheet"].parent / next(r["path"] for r in rows if r["split"] == "test" and r["modality"] == "T1")
    data, img = load_volume(hr_path)
    aff = img.affine.copy()
    aff[:3, 2] *= HR_THICK / np.linalg.norm(aff[:3, 2])
    hr = tmp / "hr_T1.nii.gz"
    save_volume(hr, data, aff)
    grid = Grid(data.shape, aff, 2)
    out = {"hr": hr, "grid": grid, "data": data}
    for r in (2.0, 4.0, 5.33, 6.0):
        lr, _ = degrade_array(data, r, axis=2)
        p = tmp / f"lr_{r:g}.nii.gz"
        save_volume(p, lr, thick_slice_grid(grid, r * HR_THICK).matrix)
        out[r] = p
    return out


@pytest.mark.parametrize("scale", [2.0, 4.0, 5.33, 6.0])
def test_synthesize_any_scale_from_one_model(trained, volumes, tmp_path, scale):
    out = tmp_path / "sr.nii.gz"
    assert main(["synthesize", "--checkpoint", str(trained["run"] / "model.pt"), "--input", str(volumes[scale]),
                 "--to", "T1", "--like", str(volumes["hr"]), "--out", str(out), "--no-progress"]) == 0
    img = nib.load(str(out))
    assert img.shape == volumes["data"].shape and np.allclose(img.affine, volumes["grid"].matrix, atol=1e-4)
    meta = json.loads(sidecar_path(out).read_text())
    pred = np.asarray(img.dataobj, dtype=np.float32)
    assert np.all(np.isfinite(pred)) and 0.0 <= pred.min() and pred.max() <= 1.0
    err = float(np.abs(pred - volumes["data"]).mean())
    assert err < 0.12, err  # tiny model, 40 steps: roughly right, not good
    assert meta["task"] == "sr" and meta["method"] == "arssr"
    # by thickness: target_grid of the LR input, slice count floor(N * t)
    out2 = tmp_path / "sr_thick.nii.gz"
    assert main(["synthesize", "--checkpoint", str(trained["run"] / "model.pt"), "--input", str(volumes[scale]),
                 "--to", "T1", "--thickness", str(HR_THICK), "--out", str(out2), "--no-progress"]) == 0
    lr_grid = Grid.from_image(nib.load(str(volumes[scale])), 2)
    want = target_grid(lr_grid, HR_THICK)
    img2 = nib.load(str(out2))
    assert img2.shape == want.shape and np.allclose(img2.affine, want.matrix, atol=1e-4)


def test_predictor_matches_the_training_forward(trained):
    """A volume of exactly one window: the predictor's output is the network's training-time
    forward at the same positions (same coordinates, same normalisation)."""
    model = torch.load(trained["run"] / "model.pt", weights_only=True)
    pred = ImplicitPredictor.from_checkpoint(METHODS["arssr"], model)
    rng = np.random.default_rng(0)
    vol = rng.random((6, 16, 16)).astype(np.float32)
    n = np.repeat(np.arange(6), 3)
    d = np.tile([0.0, 1 / 3, 2 / 3], 6)
    out = pred.predict(vol, n, d, "T1")
    with torch.no_grad():
        ref = pred.net(torch.from_numpy(vol * 2 - 1)[None, None], torch.from_numpy((n + d).astype(np.float32))[None])
    assert np.allclose(out, np.clip((ref[0, 0].numpy() + 1) / 2, 0, 1), atol=1e-5)
    # a larger volume: every target slice and voxel is covered by a window and blended
    big = pred.predict(rng.random((15, 37, 30)).astype(np.float32), np.repeat(np.arange(15), 2), np.tile([0.0, 0.5], 15), "T1")
    assert big.shape == (30, 37, 30) and np.all(np.isfinite(big))


def test_refuses_cms_and_cmsr(trained, volumes, tmp_path, capsys):
    ck = str(trained["run"] / "model.pt")
    for args, msg in (
        (["--input", str(volumes["hr"]), "--from", "T1", "--to", "T2", "--thickness", str(HR_THICK)], "cannot perform CMS; it supports SR"),
        (["--input", str(volumes[4.0]), "--from", "T1", "--to", "T2", "--thickness", str(HR_THICK)], "cannot perform CMSR; it supports SR"),
    ):
        assert main(["synthesize", "--checkpoint", ck, "--out", str(tmp_path / "x.nii.gz"), "--no-progress", *args]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    assert not list(tmp_path.glob("x*"))

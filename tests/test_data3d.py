"""3D patch dataset (unicoal.data3d): degradation, pre-interpolation, determinism, the dataset hook."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unicoal.data import DataConfig, from_network, phase_candidates
from unicoal.data3d import PatchDataset3D, PatchParams, lr_layout, random_patch_corner
from unicoal.models.interpolation import resample_slices
from unicoal.preprocess.degrade import degrade_array
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    # slice axis 2 (1.25 mm); volumes [40, 36, 30] -> slice axis first [30, 40, 36]
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort3d"), subjects=2, shape=(40, 36, 30), splits=["train", "train"])


def _ds(sheet, ratios=(4.0,), patch=(10, 16, 12), interp="cubic", **kw):
    cfg = DataConfig(modalities=("T1", "T2"), ratios=ratios, resolution=patch[-1], num_inputs=1, **kw)
    return PatchDataset3D(sheet, cfg, seed=5, patch_size=patch, interpolation=interp)


def test_items_are_deterministic_and_shaped(sheet):
    ds = _ds(sheet)
    # per subject ceil(30/10) * ceil(40/16) * ceil(36/12) = 3 * 3 * 3 tiles
    assert len(ds) == 2 * 27
    a, b = ds[7], ds[7]
    assert a["x_in"].shape == a["y"].shape == (1, 10, 16, 12)
    assert a["delta"].shape == a["u"].shape == (10,)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ds.set_epoch(1)
    c = ds[7]
    assert not torch.equal(a["corner"], c["corner"]) or not torch.equal(a["x_in"], c["x_in"])
    assert float(a["y"].min()) >= -1.0 and float(a["y"].max()) <= 1.0
    assert float(a["x_in"].min()) >= -1.2 and float(a["x_in"].max()) <= 1.2  # cubic overshoots a little (not clipped)
    assert torch.all((a["delta"] >= 0) & (a["delta"] < 1))


def test_patch_equals_whole_volume_degrade_then_interpolate(sheet):
    """x_in is the crop of: whole-volume thick-slice simulation (degrade_array) resampled at u
    (geometry.slice_positions) with the method's kernel -- computed only where the patch needs it."""
    for ratio, phase_index, kernel in ((4.0, 2, "cubic"), (2.5, 1, "linear"), (5.33, 0, "lanczos")):
        ds = _ds(sheet, ratios=(ratio,), interp=kernel)
        phase = float(phase_candidates(ratio, "rect")[phase_index])
        p = PatchParams(subject=1, c_in=0, c_out=1, ratio=ratio, phase=phase, corner=(9, 20, 7))
        item = ds.make_item(p)
        hr = ds.volume(1, "T1")  # [30, 40, 36]
        lr, _ = degrade_array(hr, ratio, axis=0, phase=phase)
        lr_grid, u = lr_layout(ds.subjects[1].grid, ratio, phase, "rect")
        assert lr.shape[0] == lr_grid.num_slices
        full = resample_slices(lr, u, kernel)
        want = full[9:19, 20:36, 7:19]
        np.testing.assert_allclose(from_network(item["x_in"][0].numpy()), want, atol=2e-6)
        np.testing.assert_allclose(from_network(item["y"][0].numpy()), ds.volume(1, "T2")[9:19, 20:36, 7:19], atol=1e-6)
        np.testing.assert_allclose(item["u"].numpy(), u[9:19], atol=1e-6)


def test_ratio_one_is_exact_cms(sheet):
    ds = _ds(sheet, ratios=(1.0,), interp="cubic")
    item = ds.make_item(PatchParams(0, 0, 1, 1.0, 0.0, (3, 4, 5)))
    np.testing.assert_allclose(from_network(item["x_in"][0].numpy()), ds.volume(0, "T1")[3:13, 4:20, 5:17], atol=1e-6)
    assert torch.all(item["delta"] == 0)


def test_small_volume_is_padded_with_background(sheet):
    ds = _ds(sheet, patch=(40, 16, 12))  # 40 slices > 30
    item = ds.make_item(ds.sample_params(0))
    assert int(item["corner"][0]) == 0
    assert torch.all(item["x_in"][0, 30:] == -1.0) and torch.all(item["y"][0, 30:] == -1.0)
    assert float(item["y"][0, :30].max()) > -1.0


def test_mask_is_the_brain_area_of_the_target(sheet):
    """``mask``: 1 where the target is not background (-1), 0 there and in the padding (SC-GAN's
    ``tf.not_equal(target, -1)``)."""
    ds = _ds(sheet, patch=(40, 16, 12))
    item = ds.make_item(ds.sample_params(3))
    assert item["mask"].shape == item["y"].shape and item["mask"].dtype == torch.float32
    assert torch.equal(item["mask"], (item["y"] != -1).float())
    assert torch.all(item["mask"][0, 30:] == 0) and float(item["mask"].sum()) > 0


@pytest.mark.parametrize("centred", [False, True])
def test_one_padding_rule_for_training_and_synthesis(tmp_path, centred):
    """A volume smaller than the patch: the network input at synthesis (VolumePredictor, window
    = the patch) equals the training item's x_in -- same fill, same place. Fails if either side
    pads differently (e.g. synthesis repeating the last slice, training with -1)."""
    import torch.nn as nn

    from unicoal.data3d import pad_to
    from unicoal.predictors.volume import VolumePredictor

    small = make_synthetic_cohort(tmp_path / "small", subjects=1, shape=(32, 32, 27), splits=["train"])  # [27, 32, 32]
    cfg = DataConfig(modalities=("T1", "T2"), ratios=(1.0,), resolution=32, num_inputs=1)
    ds = PatchDataset3D(small, cfg, seed=0, patch_size=(32, 32, 32), interpolation="linear", pad_centred=centred)
    item = ds.make_item(PatchParams(0, 0, 1, 1.0, 0.0, (0, 0, 0)))

    class Recorder(nn.Module):
        size_multiple, receptive_radius = 32, 0

        def forward(self, x, delta=None, c_out=None, z=None):
            self.seen = x.clone()
            return x

    G = Recorder()
    pred = VolumePredictor(G, modalities=["T2"], class_modalities=["T1", "T2"], interpolation="linear", window=(32, 32, 32), pad_centred=centred)
    vol = ds.volume(0, "T1")
    pred.predict(vol, np.arange(27), np.zeros(27), "T2")
    assert G.seen.shape == (1, 1, 32, 32, 32)
    torch.testing.assert_close(G.seen[0], item["x_in"], rtol=0, atol=1e-6)
    assert torch.all(pad_to(torch.zeros(1, 27), (32,), centred) == torch.tensor([-1.0] * (2 if centred else 0) + [0.0] * 27 + [-1.0] * (3 if centred else 5)))


def test_corner_matches_monai_sampler():
    from monai.data.utils import get_random_patch

    for seed in range(20):
        dims, patch = (30, 40, 36), (10, 16, 40)
        ours = random_patch_corner(dims, patch, np.random.RandomState(seed))
        theirs = tuple(s.start for s in get_random_patch(dims, patch, np.random.RandomState(seed)))
        assert ours == theirs


def test_lr_patch_for_lr_grid_methods(sheet):
    ds = _ds(sheet, ratios=(4.0,))
    p = PatchParams(0, 0, 0, 4.0, 1.5, (8, 0, 0))
    lr, u_rel, first = ds.lr_patch(p, context=1)
    full, _ = degrade_array(ds.volume(0, "T1"), 4.0, axis=0, phase=1.5)
    idx = np.clip(np.arange(first, first + lr.shape[0]), 0, full.shape[0] - 1)
    np.testing.assert_allclose(lr, full[idx, :16, :12], atol=2e-6)
    _, u = lr_layout(ds.subjects[0].grid, 4.0, 1.5, "rect")
    np.testing.assert_allclose(u_rel + first, u[8:18], atol=1e-9)
    assert u_rel.min() >= 1.0 and u_rel.max() < lr.shape[0] - 1


def test_build_dataset_dispatches_on_the_method(sheet):
    from unicoal.train.config import load_config
    from unicoal.train.loop import build_dataset

    cfg = load_config("deepresolve_tiny", {"model": {"modalities": ["T1", "T2"]}, "data": {"task": {"input": "T1", "output": "T1", "ratio": 2}}})
    ds = build_dataset(cfg, sheet)
    assert isinstance(ds, PatchDataset3D) and ds.patch_size == tuple(cfg.model["patch_size"]) and ds.interpolation == "cubic"
    slices = build_dataset(load_config("tiny"), make_synthetic_cohort(sheet.parent.parent / "c2d", subjects=1, shape=(32, 32, 8), splits=["train"]))
    assert not isinstance(slices, PatchDataset3D) and slices[0]["x_in"].shape[0] == 4

"""unicoal.data: training items agree with the geometry and degrade modules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unicoal.data import DataConfig, ItemParams, SliceDataset, fit_inplane, lr_slices, phase_candidates, restore_inplane
from unicoal.errors import InputError
from unicoal.geometry import input_indices, slice_positions, thick_slice_grid
from unicoal.preprocess.degrade import degrade_array

RATIOS = [1.0, 2.0, 4.0, 6.0, 5.33]


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    from unicoal.train.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=2, shape=(40, 36, 32), splits=["train", "train"])


def _cfg(**kw):
    base = dict(resolution=32, ratios=(1, 2, 4, 6))
    base.update(kw)
    return DataConfig(**base)


def test_item_shapes_and_ranges(sheet):
    ds = SliceDataset(sheet, _cfg(), seed=0)
    assert len(ds) == 2 * 32
    for i in (0, 5, 31, 40, 63):
        it = ds[i]
        assert tuple(it["x_in"].shape) == (4, 32, 32)
        assert tuple(it["y"].shape) == (1, 32, 32)
        assert it["x_in"].dtype.is_floating_point and it["c_out"].dtype == torch.int64
        assert -1.0 <= float(it["x_in"].min()) and float(it["x_in"].max()) <= 1.0
        assert -1.0 <= float(it["y"].min()) and float(it["y"].max()) <= 1.0
        assert float(it["y"].max()) > -1.0 or int(it["k"]) in (0, 31)  # signal in the slice
        assert 0.0 <= float(it["delta"]) < 1.0
        assert 0 <= int(it["c_in"]) < 3 and 0 <= int(it["c_out"]) < 3


@pytest.mark.parametrize("ratio", RATIOS)
def test_positions_and_inputs_match_geometry(sheet, ratio):
    """(n, delta) come from geometry.slice_positions and x_in equals degrade_array's slices."""
    ds = SliceDataset(sheet, DataConfig.fixed_task("T1", "T2", ratio, modalities=("T1", "T2", "PD"), resolution=32), seed=1)
    vol_t1 = ds.volume(0, "T1")  # [N, A, B]
    vol_t2 = ds.volume(0, "T2")
    hr = ds.subjects[0].grid
    checked = 0
    for k in range(0, 32, 3):
        p = ds.sample_params(k)
        assert (p.subject, p.k, p.c_in, p.c_out, p.ratio) == (0, k, 0, 1, ratio)
        lr_grid = thick_slice_grid(hr, ratio * hr.thickness, phase=p.phase)
        n_all, d_all = slice_positions(lr_grid, hr)
        item = ds.make_item(p)
        assert int(item["n"]) == int(n_all[k])
        assert float(item["delta"]) == pytest.approx(float(d_all[k]), abs=1e-6)
        # the HR target sits at LR index n + delta = (k - phase) / ratio
        assert int(item["n"]) + float(item["delta"]) == pytest.approx((k - p.phase) / ratio, abs=1e-5)
        lr, _ = degrade_array(np.moveaxis(vol_t1, 0, 2), ratio, axis=2, profile="rect", phase=p.phase)
        idx, _ = input_indices(int(n_all[k]), lr.shape[2], 4)
        expect = fit_inplane(np.moveaxis(lr[:, :, idx], 2, 0), 32, 0.0) * 2 - 1
        np.testing.assert_allclose(item["x_in"].numpy(), expect, atol=1e-5)
        np.testing.assert_allclose(item["y"].numpy()[0], fit_inplane(vol_t2[k], 32, 0.0) * 2 - 1, atol=1e-6)
        checked += 1
    assert checked == 11


def test_integer_ratios_give_slab_fractions(sheet):
    """Integer t: delta takes exactly t values, 1/t apart (HR slice centres inside an LR slab:
    (j + 1/2)/t - 1/2 mod 1, since slab centres sit between HR centres for even t);
    t = 1 is exact CMS (delta 0, x^n = the HR slice)."""
    for ratio in (1.0, 2.0, 4.0, 6.0):
        ds = SliceDataset(sheet, DataConfig.fixed_task("T1", "T2", ratio, modalities=("T1", "T2", "PD"), resolution=32), seed=3)
        deltas = {round(float(ds[i]["delta"]) * ratio, 4) for i in range(len(ds))}
        expected = {round(((j + 0.5) / ratio - 0.5) % 1.0 * ratio, 4) for j in range(int(ratio))}
        assert deltas == expected  # every position inside a slab occurs, and nothing else
    ds = SliceDataset(sheet, DataConfig.fixed_task("T2", "T1", 1.0, modalities=("T1", "T2", "PD"), resolution=32), seed=0)
    it = ds[7]
    assert float(it["delta"]) == 0.0 and int(it["n"]) == 7
    np.testing.assert_allclose(it["x_in"][1].numpy(), fit_inplane(ds.volume(0, "T2")[7], 32, 0.0) * 2 - 1, atol=1e-6)


def test_phase_candidates():
    np.testing.assert_allclose(phase_candidates(4.0, "rect"), [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(phase_candidates(1.0, "rect"), [0.0])
    np.testing.assert_allclose(phase_candidates(2.0, "select"), [0.0, 1.0])
    np.testing.assert_allclose(phase_candidates(5.33, "rect", 2), [2.165, 4.83])


def test_constant_padding_at_edges(sheet):
    ds = SliceDataset(sheet, DataConfig.fixed_task("T1", "T1", 4.0, modalities=("T1", "T2", "PD"), resolution=32, padding="constant"), seed=0)
    it = ds.make_item(ItemParams(0, 0, 0, 0, 4.0, 1.5))  # first HR slice: u = -0.375 -> n = -1
    assert int(it["n"]) == -1
    x = it["x_in"].numpy()
    assert np.all(x[0] == -1.0) and np.all(x[1] == -1.0)  # LR indices -2, -1 are outside
    assert x[2].max() > -1.0 and x[3].max() > -1.0
    rep = SliceDataset(sheet, DataConfig.fixed_task("T1", "T1", 4.0, modalities=("T1", "T2", "PD"), resolution=32), seed=0)
    xr = rep.make_item(ItemParams(0, 0, 0, 0, 4.0, 1.5))["x_in"].numpy()
    np.testing.assert_array_equal(xr[0], xr[2])  # replicate: indices clip to 0
    np.testing.assert_array_equal(xr[1], xr[2])


def test_sampling_is_reproducible_and_covers_tasks(sheet):
    ds = SliceDataset(sheet, _cfg(), seed=5)
    a, b = ds.sample_params(10), ds.sample_params(10)
    assert a == b
    ds2 = SliceDataset(sheet, _cfg(), seed=5)
    np.testing.assert_array_equal(ds[10]["x_in"].numpy(), ds2[10]["x_in"].numpy())
    draws = [ds.sample_params(i, epoch=e) for e in range(4) for i in range(len(ds))]
    assert draws[:64] != draws[64:128]  # new tasks each epoch
    ratios = np.array([p.ratio for p in draws])
    assert set(ratios.tolist()) == {1.0, 2.0, 4.0, 6.0}
    assert all(abs((ratios == r).mean() - 0.25) < 0.08 for r in (1, 2, 4, 6))
    pairs = {(p.c_in, p.c_out) for p in draws}
    assert len(pairs) == 9  # CMS/SR/CMSR between all of T1, T2, PD


def test_lr_slices_equals_degrade_array():
    rng = np.random.default_rng(0)
    vol = rng.random((30, 5, 4)).astype(np.float32)
    for ratio, phase in ((2.0, 0.5), (5.33, 2.165), (4.0, 3.5), (6.0, 2.5)):
        lr, _ = degrade_array(vol, ratio, axis=0, profile="rect", phase=phase)
        got = lr_slices(vol, ratio, phase, "rect", list(range(lr.shape[0])), lr.shape[0])
        np.testing.assert_allclose(got, lr, atol=1e-6)


@pytest.mark.parametrize("shape,size", [((40, 36), 32), ((20, 26), 32), ((31, 33), 32)])
def test_fit_restore_roundtrip(shape, size):
    rng = np.random.default_rng(1)
    img = rng.random(shape).astype(np.float32)
    fitted = fit_inplane(img[None], size, -1.0)
    assert fitted.shape == (1, size, size)
    back = restore_inplane(fitted, shape, 0.0)[0]
    a, b = shape
    keep_a = slice((a - size) // 2, (a - size) // 2 + size) if a > size else slice(0, a)
    keep_b = slice((b - size) // 2, (b - size) // 2 + size) if b > size else slice(0, b)
    np.testing.assert_array_equal(back[keep_a, keep_b], img[keep_a, keep_b])
    assert np.count_nonzero(back) == min(a, size) * min(b, size)


def test_bad_inputs(tmp_path, sheet):
    from unicoal.io import save_volume

    with pytest.raises(InputError, match="lacks modality FLAIR"):
        SliceDataset(sheet, _cfg(modalities=("T1", "FLAIR")))
    with pytest.raises(ValueError, match="ratios"):
        _cfg(ratios=(0.5,))
    with pytest.raises(ValueError, match="unknown data config"):
        DataConfig.from_dict({"ratio": 2})
    bad = tmp_path / "raw.nii.gz"
    save_volume(bad, np.full((8, 8, 8), 300.0, np.float32), np.eye(4))
    (tmp_path / "s.csv").write_text(f"subject,modality,path\ns1,T1,{bad}\n")
    ds = SliceDataset(tmp_path / "s.csv", DataConfig(modalities=("T1",), resolution=16, ratios=(1,)), seed=0)
    with pytest.raises(InputError, match=r"expected \[0, 1\]"):
        ds[0]


# --- which items are drawn: identity items, directions, augmentation -------------------------------
def _identity_share(ds, epochs=3) -> float:
    draws = [ds.sample_params(i, epoch=e) for e in range(epochs) for i in range(len(ds))]
    return float(np.mean([p.c_in == p.c_out and p.ratio == 1.0 for p in draws]))


def test_no_identity_items_without_sr(sheet):
    """CMS only (ratio 1, any input with any output): about a third of independent draws would
    copy the input; a method or task without SR draws none."""
    cms = _cfg(ratios=(1,))
    assert cms.identity_items is False
    ds = SliceDataset(sheet, cms, seed=1)
    draws = [ds.sample_params(i, epoch=e) for e in range(3) for i in range(len(ds))]
    assert not any(p.c_in == p.c_out for p in draws)
    assert {(p.c_in, p.c_out) for p in draws} == {(a, b) for a in range(3) for b in range(3) if a != b}
    # asked for explicitly, they come back (the legacy independent draw)
    assert 0.2 < _identity_share(SliceDataset(sheet, _cfg(ratios=(1,), identity_items=True), seed=1)) < 0.45


def test_identity_items_follow_the_unicoal_authors_when_sr_is_trained(sheet):
    """The Uni-COAL authors draw source, target and thickness independently (random_modality_in /
    _out, thickness from a list holding 1): same contrast at 1x is 1/3 x 1/4 of their items."""
    cfg = _cfg()
    assert cfg.identity_items is True
    assert abs(_identity_share(SliceDataset(sheet, cfg, seed=2), epochs=6) - 1 / 12) < 0.04


def test_methods_without_sr_never_draw_identity_items():
    from unicoal.train.config import load_config

    for name in ("resvit", "pix2pix", "pgan", "autogan"):
        cfg = load_config(name, {"data": {"input_modalities": None, "output_modalities": None}, "model": {"modalities": ["T1", "T2", "PD"]}} if name == "resvit" else None)
        assert cfg.data.identity_items is False, name
        assert all(a != b for a, b, _ in cfg.data.draws()), name
    assert load_config("paper").data.identity_items is True  # Uni-COAL trains SR: as its authors


def test_pairs_restrict_a_unified_model_to_the_evaluated_directions(sheet):
    cfg = _cfg(ratios=(1,), pairs=[["T1", "T2"], ["T2", "PD"], ["PD", "T1"]])
    ds = SliceDataset(sheet, cfg, seed=3)
    draws = {(p.c_in, p.c_out) for e in range(2) for i in range(len(ds)) for p in [ds.sample_params(i, epoch=e)]}
    assert draws == {(0, 1), (1, 2), (2, 0)}
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="pairs"):
        _cfg(pairs=[["T1", "FLAIR"]])
    with pytest.raises(ValueError, match="identity"):
        _cfg(ratios=(1,), input_modalities=("T1",), output_modalities=("T1",), identity_items=False)
    assert _cfg(ratios=(1,), input_modalities=("T1",), output_modalities=("T1",)).identity_items  # only copies asked for


def test_augmentation_is_sampled_then_applied_to_source_and_target(sheet):
    plain = SliceDataset(sheet, _cfg(ratios=(1,)), seed=4)
    aug = SliceDataset(sheet, _cfg(ratios=(1,), augment=("rot90", "mirror", "saturation")), seed=4)
    draws = [aug.sample_params(i) for i in range(len(aug))]
    assert {p.rot for p in draws} == {1, 2, 3} and {p.mirror for p in draws} == {False, True}
    assert all(0.8 <= p.saturation <= 1.2 for p in draws) and len({p.saturation for p in draws}) > 10
    assert aug.sample_params(7) == aug.sample_params(7)  # reproducible
    base = plain.sample_params(7)
    assert (base.c_in, base.c_out, base.phase) == (aug.sample_params(7).c_in, aug.sample_params(7).c_out, aug.sample_params(7).phase)
    from dataclasses import replace

    p = replace(base, rot=1, mirror=True, saturation=1.15)
    a, b = plain.make_item(base), plain.make_item(p)
    for key in ("x_in", "y"):
        want = np.rot90(a[key].numpy(), 1, axes=(-2, -1))[..., ::-1]
        np.testing.assert_array_equal(b[key].numpy(), want)
    with pytest.raises(ValueError, match="augment"):
        _cfg(augment=("shear",))

"""Sliding-window inference of the 3D methods (unicoal.predictors.volume): exact, seamless, MONAI's windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unicoal.methods import get_method
from unicoal.predictors.volume import VolumePredictor, importance_map, sliding_window_predict, window_plan, window_starts

torch.set_num_threads(1)
METHODS = ("deepresolve", "dcsrn", "synthsr")


def _net(name: str, seed: int = 0):
    """The tiny network with random weights (DeepResolve's zero-initialised last layer too)."""
    spec = get_method(name)
    cfg = spec.model_config({"preset": "tiny", "modalities": ["T1"]})
    torch.manual_seed(seed)
    G, _ = spec.build_models(cfg, discriminator=False)
    with torch.no_grad():
        for p in G.parameters():
            if not p.abs().sum():
                p.normal_(0.0, 0.1)
    return G.eval(), cfg


def _volume_larger_than_window(cfg, extra=(5, 7, 9)):
    shape = tuple(w + e for w, e in zip(cfg.inference_window, extra))
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    vol = np.sin(3 * z) * np.cos(2 * y) + 0.5 * x**2 - 0.3
    return torch.from_numpy(vol.astype(np.float32))[None, None]


def test_window_placement_and_weights_are_monais():
    from monai.data.utils import compute_importance_map, dense_patch_slices

    for size, roi, stride in ((100, 32, 12), (64, 64, 64), (37, 16, 8), (50, 24, 23)):
        theirs = sorted({s[0].start for s in dense_patch_slices((size,), (roi,), (stride,))})
        assert window_starts(size, roi, stride) == theirs
    for roi in ((24, 32, 32), (64, 64, 64), (7, 9, 12)):
        torch.testing.assert_close(importance_map(roi), compute_importance_map(roi, mode="gaussian", sigma_scale=0.125), rtol=1e-6, atol=1e-7)


def test_window_plan_keeps_cores_covering():
    roi, stride, halo, exact = window_plan((70, 60, 20), (32, 32, 32), halo=6, align=1, overlap=0.25)
    assert roi == [32, 32, 20] and stride == [20, 20, 20] and halo == [6, 6, 6] and exact
    roi, stride, halo, exact = window_plan((96, 96, 96), (40, 40, 40), halo=24, align=4)
    assert not exact and halo == [18, 18, 18] and stride == [4, 4, 4]


@pytest.mark.parametrize("name", METHODS)
def test_sliding_window_equals_whole_volume(name):
    G, cfg = _net(name)
    x = _volume_larger_than_window(cfg)
    with torch.no_grad():
        whole = sliding_window_predict(x, G, window=None, align=G.size_multiple)
        windows = sliding_window_predict(x, G, window=cfg.inference_window, halo=G.receptive_radius, align=G.size_multiple, sw_batch_size=2)
    assert whole.shape == windows.shape == x.shape
    # more than one window in every dimension
    roi, stride, _, exact = window_plan([-(-s // G.size_multiple) * G.size_multiple for s in x.shape[2:]], cfg.inference_window, G.receptive_radius, G.size_multiple)
    assert exact and all(len(window_starts(s, r, iv)) >= 2 for s, r, iv in zip(x.shape[2:], roi, stride))
    scale = float(whole.abs().max())
    assert float((whole - windows).abs().max()) <= 1e-5 * max(1.0, scale)
    # and a halo that is too small (no receptive radius) is visibly different: the test can fail
    with torch.no_grad():
        naive = sliding_window_predict(x, G, window=cfg.inference_window, halo=0, align=G.size_multiple)
    assert float((whole - naive).abs().max()) > 1e-3 * scale


def test_monai_backend_agrees():
    G, cfg = _net("dcsrn")
    x = _volume_larger_than_window(cfg)
    with torch.no_grad():
        a = sliding_window_predict(x, G, window=cfg.inference_window, halo=G.receptive_radius, backend="native")
        b = sliding_window_predict(x, G, window=cfg.inference_window, halo=G.receptive_radius, backend="monai", sw_batch_size=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_no_seams_on_a_smooth_ramp(name):
    """On a linear ramp the output's slope across every window boundary is what it is elsewhere."""
    G, cfg = _net(name, seed=1)
    shape = tuple(w + e for w, e in zip(cfg.inference_window, (6, 8, 10)))
    ramp = torch.from_numpy(np.add.outer(np.add.outer(np.arange(shape[0]) * 0.02, np.arange(shape[1]) * 0.01), np.arange(shape[2]) * 0.015).astype(np.float32) - 0.8)[None, None]
    with torch.no_grad():
        whole = sliding_window_predict(ramp, G, window=None, align=G.size_multiple)
        out = sliding_window_predict(ramp, G, window=cfg.inference_window, halo=G.receptive_radius, align=G.size_multiple)
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-5)
    m = G.size_multiple
    padded = [-(-s // m) * m for s in shape]
    roi, stride, _, _ = window_plan(padded, cfg.inference_window, G.receptive_radius, m)
    o = out[0, 0].numpy().astype(np.float64)
    inner = tuple(slice(max(G.receptive_radius, 2), s - max(G.receptive_radius, 2)) for s in shape)
    for d in range(3):
        jump = np.abs(np.diff(o, 2, axis=d))  # second difference: a seam is a kink
        bounds = {b for s in window_starts(padded[d], roi[d], stride[d]) for b in (s, s + roi[d]) if 2 <= b < shape[d] - 2}
        assert bounds, d
        sel = [inner[k] for k in range(3)]
        rest = np.delete(np.arange(jump.shape[d]), [b - 1 for b in bounds])
        at = np.take(jump, [b - 1 for b in bounds], axis=d)
        away = np.take(jump, rest, axis=d)
        sel[d] = slice(None)
        assert float(at[tuple(sel)].max()) <= float(away[tuple(sel)].max()) + 1e-5, (name, d)


def test_predictor_preinterpolates_onto_the_target_grid():
    """predict(): the source is resampled at u = n + delta with the method's kernel, then the network runs."""
    from unicoal.models.interpolation import resample_slices

    G, cfg = _net("deepresolve")
    with torch.no_grad():  # an untrained DeepResolve is the identity: output = pre-interpolation
        G.body[-1].weight.zero_()
        G.body[-1].bias.zero_()
    pred = VolumePredictor(G, modalities=["T1"], interpolation="cubic", window=cfg.inference_window)
    rng = np.random.default_rng(0)
    vol = np.clip(rng.random((9, 40, 36)).astype(np.float32) * 0.8 + 0.1, 0, 1)
    n = np.repeat(np.arange(9), 4)[1:-1]
    delta = np.tile([0.125, 0.375, 0.625, 0.875], 9)[1:-1]
    out = pred.predict(vol, n, delta, "T1")
    want = np.clip(resample_slices(vol, n + delta, "cubic"), 0, 1)
    assert out.shape == (34, 40, 36)
    np.testing.assert_allclose(out, want, atol=1e-5)
    from unicoal.errors import InputError

    with pytest.raises(InputError, match="produces T1, not 'T2'"):
        pred.predict(vol, n, delta, "T2")


def test_synthsr_predict_pads_centred_and_averages_the_flip():
    """SynthSR's predict script: zero (-1) padding, centred, to a multiple of 32, then the mean of
    the network on the volume and, flipped back, on its left-right mirror; the crop is undone."""
    import torch.nn as nn

    class Positional(nn.Module):  # output depends on the absolute voxel position: padding and flips show
        size_multiple, receptive_radius = 4, 0

        def forward(self, x, delta=None, c_out=None, z=None):
            d, h, w = x.shape[2:]
            pos = torch.arange(h, dtype=x.dtype).view(1, 1, 1, h, 1) * 0.01 + torch.arange(w, dtype=x.dtype).view(1, 1, 1, 1, w) * 0.002
            return torch.tanh(x + pos + x.roll(1, dims=3))

    G = Positional()
    vol = np.random.default_rng(0).random((5, 20, 13)).astype(np.float32) * 0.8 + 0.1
    n, delta = np.arange(5), np.zeros(5)
    pred = VolumePredictor(G, modalities=["T1"], interpolation="linear", window=None, pad_multiple=32, pad_centred=True, flip_axis=1)
    out = pred.predict(vol, n, delta, "T1")
    x = torch.full((1, 1, 32, 32, 32), -1.0)
    x[0, 0, 13:18, 6:26, 9:22] = torch.from_numpy(vol * 2 - 1)  # floor((32 - s) / 2) before
    y = 0.5 * G(x) + 0.5 * torch.flip(G(torch.flip(x, dims=(3,))), dims=(3,))
    want = np.clip((y[0, 0, 13:18, 6:26, 9:22].numpy() + 1) / 2, 0, 1)
    np.testing.assert_allclose(out, want, atol=1e-6)
    plain = VolumePredictor(G, modalities=["T1"], interpolation="linear", window=None).predict(vol, n, delta, "T1")
    assert np.abs(plain - out).max() > 1e-3  # the test can fail: without the flip and the centring it differs


def test_synthsr_checkpoint_wires_the_authors_inference():
    spec = get_method("synthsr")
    cfg = spec.model_config({"preset": "tiny", "modalities": ["T1"]})
    G, _ = spec.build_models(cfg)
    ckpt = {"model_config": cfg.to_dict(), "state_dict": G.state_dict(), "modalities": ["T1"]}
    pred = VolumePredictor.from_checkpoint(spec, ckpt)
    assert (pred.pad_multiple, pred.pad_centred, pred.flip_axis) == (8, True, 1)
    dr = get_method("deepresolve")
    c2 = dr.model_config({"preset": "tiny", "modalities": ["T1"]})
    p2 = VolumePredictor.from_checkpoint(dr, {"model_config": c2.to_dict(), "state_dict": dr.build_models(c2)[0].state_dict(), "modalities": ["T1"]})
    assert (p2.pad_multiple, p2.pad_centred, p2.flip_axis) == (1, False, None)

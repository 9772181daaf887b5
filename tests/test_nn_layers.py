"""Equalised-lr layers, modulated convolution (eq. 3), filtered leaky ReLU, alias-free layers."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unicoal.nn.activation import filtered_lrelu
from unicoal.nn.filters import design_lowpass_filter
from unicoal.nn.layers import AliasFreeLayer, Conv2d, FullyConnected, VanillaLayer, modulated_conv2d
from unicoal.nn.resample import as_filter
from unicoal.nn.shapes import check_shape


def _eq3_reference(x, weight, styles, eps=1e-8):
    """Literal eq. 3, one sample at a time."""
    out = []
    for xi, si in zip(x, styles):
        w = weight * si.reshape(1, -1, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + eps).sqrt()
        out.append(F.conv2d(xi[None], w, padding=1))
    return torch.cat(out)


@pytest.mark.parametrize("mode", ["grouped", "batched"])
def test_modulated_conv_matches_eq3(mode):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 10, 10, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 8, 3, 3, generator=gen, dtype=torch.float64)
    styles = 1 + torch.randn(3, 8, generator=gen, dtype=torch.float64)
    y = modulated_conv2d(x, weight, styles, padding=1, mode=mode)
    assert (y - _eq3_reference(x, weight, styles)).abs().max().item() < 1e-12
    bias = torch.randn(5, dtype=torch.float64)
    yb = modulated_conv2d(x, weight, styles, padding=1, mode=mode, bias=bias)
    assert (yb - y - bias.reshape(1, 5, 1, 1)).abs().max().item() < 1e-12


def test_demodulation_keeps_unit_variance():
    """Unit-variance i.i.d. input -> output variance 1 (measured 0.99 .. 1.01 per sample) whatever the
    styles; without demodulation it follows the styles (spread > 1000x across these samples)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, 48, 48, generator=gen)
    weight = torch.randn(64, 64, 3, 3, generator=gen)
    styles = torch.rand(4, 64, generator=gen) * torch.tensor([0.1, 1.0, 3.0, 10.0])[:, None]
    y = modulated_conv2d(x, weight, styles, padding=0)
    var = y.var(dim=[1, 2, 3])
    assert torch.all((var - 1).abs() < 0.03), var
    raw = modulated_conv2d(x, weight, styles, padding=0, demodulate=False).var(dim=[1, 2, 3])
    assert raw.max() / raw.min() > 1000


def test_modulated_conv_rejects_mismatched_styles():
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(torch.zeros(2, 4, 5, 5), torch.zeros(3, 4, 3, 3), torch.zeros(2, 5))


def test_equalised_lr_layers_keep_unit_scale():
    torch.manual_seed(2)
    fc = FullyConnected(512, 256)
    assert fc(torch.randn(4096, 512)).std().item() == pytest.approx(1.0, abs=0.03)
    slow = FullyConnected(512, 256, lr_multiplier=0.01)  # same output scale, 100x smaller effective lr
    assert slow(torch.randn(4096, 512)).std().item() == pytest.approx(1.0, abs=0.03)
    conv = Conv2d(64, 32, 3)
    assert conv(torch.randn(8, 64, 24, 24)).std().item() == pytest.approx(1.0, abs=0.05)
    assert Conv2d(8, 16, 3, down=2)(torch.randn(2, 8, 32, 32)).shape == (2, 16, 16, 16)
    assert Conv2d(8, 16, 1, down=2, bias=False)(torch.randn(2, 8, 32, 32)).shape == (2, 16, 16, 16)
    assert Conv2d(8, 16, 3, up=2)(torch.randn(2, 8, 16, 16)).shape == (2, 16, 32, 32)


@pytest.mark.parametrize("up, down", [(2, 2), (4, 2), (1, 2), (2, 1)])
def test_filtered_lrelu_fast_matches_reference(up, down):
    torch.manual_seed(3)
    fs = 64.0
    fu = as_filter(design_lowpass_filter(6 * up, 8.0, 8.0, fs)) if up > 1 else None
    fd = as_filter(design_lowpass_filter(6 * down, 8.0, 8.0, fs)) if down > 1 else None
    x = torch.randn(2, 6, 20, 20) * 50
    b = torch.randn(6)
    kw = dict(up=up, down=down, padding=[5, 4, 5, 4], gain=math.sqrt(2), slope=0.2, clamp=64.0)
    ref = filtered_lrelu(x, fu, fd, b, impl="ref", **kw)
    fast = filtered_lrelu(x.contiguous(memory_format=torch.channels_last), fu, fd, b, impl="fast", **kw)
    assert fast.shape == ref.shape
    assert (fast - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    assert ref.abs().max().item() <= 64.0 * 1.2  # clamp before the (DC-preserving) down filter


def test_alias_free_layer_lands_on_its_grid_and_describes_itself():
    # Paper synthesis layer 10: 181 ch @ 148 (s=128) -> 128 ch @ 276 (s=256); tmp rate 512.
    layer = AliasFreeLayer(32, 12, 8, 148, 276, 128, 256, 45.25, 64.0, 18.745, 64.0)
    assert (layer.up_factor, layer.down_factor, layer.up_taps, layer.down_taps) == (4, 2, 24, 12)
    y = layer(torch.randn(1, 12, 148, 148), torch.randn(1, 32))
    assert y.shape == (1, 8, 276, 276)
    text = repr(layer)
    assert "in_cutoff(f_c)=45.25" in text and "tmp_sampling_rate=512" in text
    # Encoder direction: 276 (s=256) -> 148 (s=128) with the activation applied directly.
    enc = AliasFreeLayer(32, 8, 12, 276, 148, 256, 128, 64.0, 45.25, 64.0, 18.745, lrelu_upsampling=1)
    assert (enc.up_factor, enc.down_factor, enc.up_taps, enc.down_taps) == (1, 2, 1, 12)
    assert enc(torch.randn(1, 8, 276, 276), torch.randn(1, 32)).shape == (1, 12, 148, 148)
    torgb = AliasFreeLayer(32, 8, 1, 256, 256, 256, 256, 128.0, 128.0, 29.6, 29.6, is_torgb=True)
    assert torgb(torch.randn(2, 8, 256, 256), torch.randn(2, 32)).shape == (2, 1, 256, 256)


@pytest.mark.parametrize("args, kw", [
    ((6, 5, 36, 52, 16, 32, 4.0, 5.657, 4.0, 10.343), {}),                                   # synthesis, up 4
    ((6, 5, 84, 52, 64, 32, 11.314, 5.657, 20.686, 10.343), dict(lrelu_upsampling=1)),        # encoder, down 2
    ((6, 5, 52, 52, 32, 32, 5.657, 5.657, 10.343, 10.343), dict(lrelu_upsampling=1)),         # encoder, same rate
    ((6, 5, 256, 276, 256, 256, 128.0, 128.0, 29.6, 29.6), dict(lrelu_upsampling=1)),         # encoder, into margin
])
def test_alias_free_layer_fast_matches_literal_reference(args, kw):
    torch.manual_seed(4)
    layer = AliasFreeLayer(16, *args, **kw)
    x, s = torch.randn(2, 6, args[2], args[2]) * 3, torch.randn(2, 16)
    fast = layer(x, s)
    layer.impl, layer.modconv_mode = "ref", "grouped"
    layer.conv_padding, layer.act_padding = layer.conv_kernel - 1, layer.padding  # StyleGAN3's literal order
    ref = layer(x, s)
    assert fast.shape == ref.shape == (2, 5, args[3], args[3])
    assert (fast - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


def test_vanilla_layer_resampling():
    torch.manual_seed(5)
    up = VanillaLayer(16, 6, 5, resample=2)
    down = VanillaLayer(16, 6, 5, resample=-2)
    x, s = torch.randn(2, 6, 16, 16), torch.randn(2, 16)
    assert up(x, s).shape == (2, 5, 32, 32)
    assert down(x, s).shape == (2, 5, 8, 8)
    with pytest.raises(ValueError):
        VanillaLayer(16, 6, 5, resample=3)


def test_check_shape_names_tensor_and_dim():
    check_shape(torch.zeros(2, 4, 8, 8), [None, 4, 8, 8], "x_in")
    with pytest.raises(ValueError, match=r"x_in: dim 1 is 3, expected 4"):
        check_shape(torch.zeros(2, 3, 8, 8), [None, 4, 8, 8], "x_in")
    with pytest.raises(ValueError, match=r"delta: has 2 dims, expected 1"):
        check_shape(torch.zeros(2, 1), [2], "delta")

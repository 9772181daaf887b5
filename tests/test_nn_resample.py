"""upfirdn2d fast (separable, polyphase, strided) vs reference; resampling helpers."""
from __future__ import annotations

import itertools

import pytest
import torch

from unicoal.nn.filters import binomial_filter, design_lowpass_filter
from unicoal.nn.resample import as_filter, downsample2d, filter2d, upfirdn2d, upsample2d

CASES = [(u, d, k, p) for u, d, k, p in itertools.product([1, 2, 4], [1, 2], [1, 4, 12, 24],
                                                         [(0, 0, 0, 0), (3, 5, 2, -1), (10, 10, 9, 11)])
         if 13 * u + p[2] + p[3] >= k]  # non-empty output for a 13 x 17 input


@pytest.mark.parametrize("up, down, taps, padding", CASES)
def test_fast_matches_reference(up, down, taps, padding):
    gen = torch.Generator().manual_seed(up * 100 + down * 10 + taps)
    x = torch.randn(2, 3, 13, 17, generator=gen, dtype=torch.float64)
    f = torch.randn(taps, generator=gen, dtype=torch.float64)
    ref = upfirdn2d(x, f, up, down, padding, gain=3.0, impl="ref")
    fast = upfirdn2d(x, f, up, down, padding, gain=3.0, impl="fast")
    assert fast.shape == ref.shape
    assert (fast - ref).abs().max().item() < 1e-12


def test_fast_matches_reference_float32_channels_last():
    f = as_filter(design_lowpass_filter(24, 16.0, 16.0, 256.0))
    x = torch.randn(2, 8, 20, 20).contiguous(memory_format=torch.channels_last)
    for kw in (dict(up=4, padding=[11, 12, 11, 12]), dict(down=2, padding=[3, 2, 3, 2])):
        ref = upfirdn2d(x.contiguous(), f, impl="ref", **kw)
        fast = upfirdn2d(x, f, impl="fast", **kw)
        assert (fast - ref).abs().max().item() < 1e-5


def test_resampling_keeps_dc_and_sizes():
    f = as_filter(binomial_filter(4))
    x = torch.full((1, 2, 16, 16), 0.7)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape[-2:] == (32, 32) and down.shape[-2:] == (8, 8) and same.shape[-2:] == (16, 16)
    for y in (up, down, same):  # interior (away from zero padding) keeps the constant
        assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.7), atol=1e-6)


def test_gradients_match_reference():
    f = torch.tensor([0.1, 0.4, 0.4, 0.1], dtype=torch.float64)
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64, requires_grad=True)
    grads = []
    for impl in ("ref", "fast"):
        (g,) = torch.autograd.grad(upfirdn2d(x, f, up=2, down=1, padding=2, impl=impl).square().sum(), x)
        grads.append(g)
    assert (grads[0] - grads[1]).abs().max().item() < 1e-12


def test_invalid_arguments():
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(2, 3, 4), None)
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, up=0)
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None, impl="cuda")

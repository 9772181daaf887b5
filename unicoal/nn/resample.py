"""Separable FIR up/down-sampling (``upfirdn2d``) in plain PyTorch.

``upfirdn2d`` = upsample by zero insertion, pad (or crop), convolve with the FIR filter, keep every
``down``-th sample: the same contract as StyleGAN3's ``torch_utils/ops/upfirdn2d.py``. Two
implementations share it:

* ``impl="ref"``: the literal sequence of operations (zero insertion and a dense depthwise conv),
  slow but obviously right;
* ``impl="fast"`` (default): for 1-D (separable) filters, one axis at a time; upsampling is a
  depthwise transposed convolution with stride ``up`` (polyphase: no multiplications with the
  inserted zeros) and downsampling a strided depthwise convolution (only the kept samples are
  computed). No Python loop over batch, channels or phases. Channels-last inputs run fastest.

Filters are 1-D tensors ``[K]`` (separable, applied along x and y) or 2-D ``[K, K]`` (ref only);
``None`` means the identity filter.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["upfirdn2d", "upsample2d", "downsample2d", "filter2d", "parse_padding", "as_filter"]


def as_filter(f: np.ndarray | Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    """Filter taps as a float32 tensor (``None`` stays ``None``, the identity filter)."""
    if f is None:
        return None
    return torch.as_tensor(np.asarray(f, dtype=np.float32) if not torch.is_tensor(f) else f, dtype=torch.float32)


def parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``int`` or ``[px, py]`` or ``[px0, px1, py0, py1]`` -> ``(px0, px1, py0, py1)``."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must have 1, 2 or 4 values, got {padding!r}")


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
    flip_filter: bool = False,
    impl: str = "fast",
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of 2-D images.

    Args:
        x: ``[N, C, H, W]``.
        f: filter ``[K]`` (separable) or ``[K, K]``, or ``None`` (identity).
        up, down: integer factors, the same along x and y.
        padding: ``(px0, px1, py0, py1)`` applied after upsampling; negative values crop.
        gain: overall signal gain (``up ** 2`` keeps the DC level when upsampling).
        flip_filter: correlate instead of convolve (irrelevant for symmetric filters).
        impl: ``"fast"`` or ``"ref"``.

    Returns:
        ``[N, C, (H * up + py0 + py1 - K + 1 + down - 1) // down, ...]``.
    """
    if x.ndim != 4:
        raise ValueError(f"x: expected [N, C, H, W], got shape {list(x.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    if impl not in ("fast", "ref"):
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    if f is None:
        f = torch.ones([1], dtype=torch.float32, device=x.device)
    px0, px1, py0, py1 = parse_padding(padding)
    if impl == "ref" or f.ndim == 2:
        return _upfirdn2d_ref(x, f, up, down, (px0, px1, py0, py1), gain, flip_filter)
    f = f.to(device=x.device, dtype=x.dtype) * (gain ** 0.5)
    if not flip_filter:
        f = f.flip(0)  # conv2d correlates; convolution = correlation with the flipped filter
    x = _fir_axis(x, f, up, down, px0, px1, axis=3)
    return _fir_axis(x, f, up, down, py0, py1, axis=2)


def _fir_axis(x: torch.Tensor, g: torch.Tensor, up: int, down: int, p0: int, p1: int, axis: int) -> torch.Tensor:
    """1-D upfirdn along ``axis`` (2 = y, 3 = x) with correlation kernel ``g`` (already flipped).

    Downsampling (and plain filtering) is a strided depthwise convolution; upsampling is a depthwise
    transposed convolution with stride ``up``, which multiplies only the non-zero samples (polyphase).
    Both keep the channels-last layout that oneDNN runs fastest on CPUs.
    """
    c = x.shape[1]
    k = g.shape[0]
    length = x.shape[axis]
    kshape = [c, 1, 1, k] if axis == 3 else [c, 1, k, 1]
    if up == 1:
        if k == 1:  # identity filter: pad/crop, decimate, scale
            if p0 or p1:
                x = F.pad(x, [p0, p1, 0, 0] if axis == 3 else [0, 0, p0, p1])
            if down > 1:
                x = x[..., ::down] if axis == 3 else x[..., ::down, :]
            return x * g[0] if float(g[0]) != 1.0 else x
        sym = max(min(p0, p1), 0)  # symmetric part of the padding goes into the conv itself
        pad = [p0 - sym, p1 - sym, 0, 0] if axis == 3 else [0, 0, p0 - sym, p1 - sym]
        if any(pad):
            x = F.pad(x, pad)
        stride = (1, down) if axis == 3 else (down, 1)
        padding = (0, sym) if axis == 3 else (sym, 0)
        return _DepthwiseConv.apply(x, g.reshape(1, 1, *kshape[2:]).expand(kshape).contiguous(), stride, padding)
    # Full convolution of the zero-inserted signal u (length L*up) with f = flip(g):
    # (u*f)[n] for n = 0 .. (L-1)*up + K - 1. The reference output j is (u*f)[j + K - 1 - p0],
    # j = 0 .. L*up + p0 + p1 - K; the symmetric part of the crop is done by the conv itself.
    f = g.flip(0).reshape(1, 1, *kshape[2:]).expand(kshape).contiguous()
    full = (length - 1) * up + k
    start = k - 1 - p0
    count = length * up + p0 + p1 - k + 1
    crop = max(min(start, full - start - count), 0)
    stride = (1, up) if axis == 3 else (up, 1)
    padding = (0, crop) if axis == 3 else (crop, 0)
    y = _DepthwiseTransposedConv.apply(x, f, stride, padding)
    start -= crop
    lo, hi = max(-start, 0), max(start + count - y.shape[axis], 0)
    if lo or hi:
        y = F.pad(y, [lo, hi, 0, 0] if axis == 3 else [0, 0, lo, hi])
        start += lo
    if start or y.shape[axis] != count or down > 1:
        y = y.narrow(axis, start, count)
        if down > 1:
            y = y[..., ::down] if axis == 3 else y[..., ::down, :]
    return y


class _DepthwiseConv(torch.autograd.Function):
    """``conv2d(x, f, stride, padding, groups=C)`` with a transposed convolution as the backward:
    PyTorch's CPU backward of depthwise convolutions with 1-D kernels loops over the channels.
    The filter is a constant (no gradient)."""

    @staticmethod
    def forward(ctx, x, f, stride, padding):
        ctx.save_for_backward(f)
        ctx.stride, ctx.padding, ctx.in_size = stride, padding, x.shape[2:]
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN depthwise path (else a per-channel loop)
        return F.conv2d(x, f, stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        f = f.to(grad.dtype)  # backward runs outside autocast
        extra = [ctx.in_size[d] - ((grad.shape[2 + d] - 1) * ctx.stride[d] - 2 * ctx.padding[d] + f.shape[2 + d])
                 for d in range(2)]
        return _DepthwiseTransposedConv.apply(grad, f, ctx.stride, ctx.padding, tuple(extra)), None, None, None


class _DepthwiseTransposedConv(torch.autograd.Function):
    """``conv_transpose2d(x, f, stride, padding, groups=C)`` with its adjoint (a strided depthwise
    ``conv2d``) as the backward: PyTorch's own CPU backward of grouped transposed convolutions
    loops over the groups. The filter is a constant (no gradient)."""

    @staticmethod
    def forward(ctx, x, f, stride, padding, output_padding=(0, 0)):
        ctx.save_for_backward(f)
        ctx.stride, ctx.padding, ctx.in_size = stride, padding, x.shape[2:]
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN path (else a per-channel loop)
        return F.conv_transpose2d(x, f, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        f = f.to(grad.dtype)
        gx = _DepthwiseConv.apply(grad, f, ctx.stride, ctx.padding)
        return gx[:, :, :ctx.in_size[0], :ctx.in_size[1]], None, None, None, None


def _upfirdn2d_ref(x, f, up, down, padding, gain, flip_filter):
    """Reference: zero insertion, pad/crop, dense depthwise convolution, decimation."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = f.to(device=x.device, dtype=x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int | Sequence[int] = 0,
               gain: float = 1.0, impl: str = "fast") -> torch.Tensor:
    """Upsample by ``up`` with the FIR ``f``, output size ``H * up`` (StyleGAN2's ``upsample2d``)."""
    px0, px1, py0, py1 = parse_padding(padding)
    k = f.shape[-1]
    p = [px0 + (k + up - 1) // 2, px1 + (k - up) // 2, py0 + (k + up - 1) // 2, py1 + (k - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int | Sequence[int] = 0,
                 gain: float = 1.0, impl: str = "fast") -> torch.Tensor:
    """Downsample by ``down`` with the FIR ``f``, output size ``H // down`` (StyleGAN2's ``downsample2d``)."""
    px0, px1, py0, py1 = parse_padding(padding)
    k = f.shape[-1]
    p = [px0 + (k - down + 1) // 2, px1 + (k - down) // 2, py0 + (k - down + 1) // 2, py1 + (k - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, gain=gain, impl=impl)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: int | Sequence[int] = 0, gain: float = 1.0,
             impl: str = "fast") -> torch.Tensor:
    """FIR-filter keeping the size (``same`` padding) plus ``padding``."""
    px0, px1, py0, py1 = parse_padding(padding)
    k = f.shape[-1]
    p = [px0 + k // 2, px1 + (k - 1) // 2, py0 + k // 2, py1 + (k - 1) // 2]
    return upfirdn2d(x, f, padding=p, gain=gain, impl=impl)

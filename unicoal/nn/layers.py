"""Equalised-learning-rate layers and the modulated convolution (paper eq. 3).

* :class:`FullyConnected` and :class:`Conv2d`: weights stored as N(0, 1) and scaled at run time by
  ``lr_multiplier / sqrt(fan_in)`` (Karras et al., equalised learning rate).
* :func:`modulated_conv2d`: ``w'_ijk = s_i w_ijk / sqrt(sum_ik (s_i w_ijk)^2 + eps)`` with
  eps = 1e-8, as one grouped convolution over the batch (``mode="grouped"``), or as the
  mathematically identical "scale input, shared conv, scale output" form (``mode="batched"``),
  which is faster on CPUs.
* :class:`AliasFreeLayer`: modulated conv + filtered leaky ReLU between two sampling grids of the
  alias-free schedule (StyleGAN3 ``SynthesisLayer``, generalised to downsampling for the encoder).
* :class:`VanillaLayer`: the StyleGAN2 / CoModGAN layer (modulated 3x3 conv, [1, 3, 3, 1] 2x
  resampling, leaky ReLU) used by the "vanilla" ablation rows of Table VI.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unicoal.nn.activation import bias_lrelu, filtered_lrelu
from unicoal.nn.filters import binomial_filter, design_lowpass_filter
from unicoal.nn.resample import as_filter, downsample2d, filter2d, upsample2d

__all__ = ["FullyConnected", "Conv2d", "modulated_conv2d", "AliasFreeLayer", "VanillaLayer", "MODCONV_MODES"]

MODCONV_MODES = ("batched", "grouped")
_DEFAULT_MODE = "batched"


class FullyConnected(nn.Module):
    """Equalised-lr linear layer, optional leaky ReLU (gain sqrt 2).

    Args:
        in_features, out_features: sizes.
        activation: ``"linear"`` or ``"lrelu"``.
        lr_multiplier: learning-rate multiplier (0.01 in the mapping networks).
        bias_init: constant or per-feature initial bias.
        weight_init: std of the initial weight (0 gives a constant output = bias).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float | Sequence[float] = 0.0, weight_init: float = 1.0):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features]).copy()
        self.bias = nn.Parameter(torch.from_numpy(init / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        x = F.linear(x, w, b)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class Conv2d(nn.Module):
    """Equalised-lr 2-D convolution with optional 2x FIR up/downsampling (StyleGAN2 ``Conv2dLayer``).

    ``up=2``: [1, 3, 3, 1] upsampling, then the conv. ``down=2``: [1, 3, 3, 1] blur, then a
    stride-2 conv (1x1 kernels: blur-downsample, then the conv). Output = act(conv + b) * gain,
    clamped to ``conv_clamp``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, conv_clamp: float | None = None,
                 resample_filter: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
            raise ValueError(f"expected up, down in {{1, 2}} and not both 2, got up={up}, down={down}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        f = np.asarray(resample_filter, dtype=np.float64)
        self.register_buffer("resample_filter", as_filter(f / f.sum()), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        pad = self.kernel_size // 2
        if self.up > 1:
            x = upsample2d(x, self.resample_filter, up=self.up)
        if self.down > 1 and self.kernel_size == 1:
            x = downsample2d(x, self.resample_filter, down=self.down)
            x = F.conv2d(x, w)
        elif self.down > 1:
            x = filter2d(x, self.resample_filter)
            x = F.conv2d(x, w, stride=self.down, padding=pad)
        else:
            x = F.conv2d(x, w, padding=pad)
        act_gain = (math.sqrt(2) if self.activation == "lrelu" else 1.0) * gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_lrelu(x, self.bias, slope=0.2 if self.activation == "lrelu" else 1.0, gain=act_gain,
                          clamp=clamp, inplace=True)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
                f"up={self.up}, down={self.down}, activation={self.activation}")


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
    mode: str = _DEFAULT_MODE,
    stride: int = 1,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated convolution with weight demodulation, paper eq. 3.

    Args:
        x: ``[N, I, H, W]``; weight: ``[O, I, k, k]``; styles: ``[N, I]`` (the s_i of eq. 3).
        demodulate: divide by ``sqrt(sum_{i,k} (s_i w_ijk)^2 + eps)`` per sample and output channel.
        mode: ``"grouped"``: per-sample weights, one conv with ``groups=N``;
            ``"batched"``: ``conv(x * s, w) * d`` (same result, one shared-weight conv).
        stride: convolution stride.
        bias: ``[O]`` added to the result (fused with the demodulation in ``"batched"`` mode).

    Returns:
        ``[N, O, H + 2 padding - k + 1, ...]``.
    """
    n, i = x.shape[0], x.shape[1]
    o, wi, kh, kw = weight.shape
    if wi != i or styles.shape != (n, i):
        raise ValueError(f"modulated_conv2d: x {list(x.shape)}, weight {list(weight.shape)} and styles "
                         f"{list(styles.shape)} disagree (expected styles [{n}, {i}] and weight [*, {i}, k, k])")
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    if mode == "grouped":
        w = weight.unsqueeze(0) * styles.reshape(n, 1, i, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + eps).rsqrt()
        y = F.conv2d(x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, kh, kw), padding=padding,
                     stride=stride, groups=n)
        y = y.reshape(n, o, *y.shape[2:])
        return y if bias is None else y + bias.to(y.dtype).reshape(1, o, 1, 1)
    if mode != "batched":
        raise ValueError(f"mode must be one of {MODCONV_MODES}, got {mode!r}")
    y = F.conv2d(x * styles.reshape(n, i, 1, 1), weight, padding=padding, stride=stride)
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + eps).rsqrt()  # [N, O]
        if bias is None:
            return y * dcoefs.reshape(n, o, 1, 1)
        return torch.addcmul(bias.to(y.dtype).reshape(1, o, 1, 1), y, dcoefs.reshape(n, o, 1, 1))
    return y if bias is None else y + bias.to(y.dtype).reshape(1, o, 1, 1)


class AliasFreeLayer(nn.Module):
    """One layer of the alias-free encoder or synthesizer (StyleGAN3-T ``SynthesisLayer``).

    modulated conv (k x k, full padding) -> bias -> upsample to ``tmp_sampling_rate`` (low-pass at
    the input cutoff) -> leaky ReLU (gain sqrt 2, clamp) -> low-pass at the output cutoff and
    downsample to ``out_sampling_rate``; output cropped/padded to ``out_size`` (the target
    sampling grid plus its margin). ``tmp_sampling_rate = max(in, out) * lrelu_upsampling``, so
    the same layer serves upsampling (synthesizer) and downsampling (encoder). A ``torgb`` layer is
    a 1x1 modulated conv without demodulation and with a linear activation.

    Args:
        style_dim: size of the vector the affine ``A`` maps to styles (bias init 1).
        in_channels, out_channels, in_size, out_size: feature-map shapes (size includes margins).
        in_sampling_rate, out_sampling_rate, in_cutoff, out_cutoff, in_half_width, out_half_width:
            the schedule values s, f_c and f_h of the input and output grids.
    """

    def __init__(self, style_dim: int, in_channels: int, out_channels: int, in_size: int, out_size: int,
                 in_sampling_rate: float, out_sampling_rate: float, in_cutoff: float, out_cutoff: float,
                 in_half_width: float, out_half_width: float, is_torgb: bool = False, conv_kernel: int = 3,
                 filter_size: int = 6, lrelu_upsampling: int = 2, conv_clamp: float | None = 256,
                 impl: str = "fast", modconv_mode: str = _DEFAULT_MODE):
        super().__init__()
        self.is_torgb = is_torgb
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.impl, self.modconv_mode = impl, modconv_mode
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)

        self.affine = FullyConnected(style_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))

        self.up_factor = int(round(self.tmp_sampling_rate / in_sampling_rate))
        self.down_factor = int(round(self.tmp_sampling_rate / out_sampling_rate))
        if in_sampling_rate * self.up_factor != self.tmp_sampling_rate or \
                out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError(f"sampling rates {in_sampling_rate} -> {self.tmp_sampling_rate} -> {out_sampling_rate} "
                             "are not integer multiples")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        up_f = design_lowpass_filter(self.up_taps, in_cutoff, in_half_width, self.tmp_sampling_rate)
        down_f = design_lowpass_filter(self.down_taps, out_cutoff, out_half_width, self.tmp_sampling_rate)
        self.register_buffer("up_filter", as_filter(up_f), persistent=False)
        self.register_buffer("down_filter", as_filter(down_f), persistent=False)

        # Padding so that the output lands on the out_size grid (StyleGAN3, Appendix C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        self.padding = [pad_lo, pad_total - pad_lo, pad_lo, pad_total - pad_lo]
        # Without an upsampling filter, a symmetric crop of the conv output is the same as a conv
        # with less padding (computes only the kept pixels; bias and activation are point-wise).
        self.conv_padding = self.conv_kernel - 1
        self.act_padding = list(self.padding)
        if self.up_taps == 1 and self.up_factor == 1 and len(set(self.padding)) == 1 and self.padding[0] < 0:
            self.conv_padding += max(self.padding[0], -self.conv_padding)
            self.act_padding = [self.padding[0] + (self.conv_kernel - 1 - self.conv_padding)] * 4

    def forward(self, x: torch.Tensor, style_input: torch.Tensor) -> torch.Tensor:
        styles = self.affine(style_input)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=self.conv_padding,
                             mode=self.modconv_mode, bias=self.bias)
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, None, up=self.up_factor,
                           down=self.down_factor, padding=self.act_padding, gain=gain, slope=slope,
                           clamp=self.conv_clamp, impl=self.impl)
        return x

    def extra_repr(self) -> str:
        return "\n".join([
            f"torgb={self.is_torgb}, in_channels={self.in_channels}, out_channels={self.out_channels},",
            f"in_size={self.in_size}, out_size={self.out_size},",
            f"in_sampling_rate(s)={self.in_sampling_rate:g}, out_sampling_rate(s)={self.out_sampling_rate:g}, "
            f"tmp_sampling_rate={self.tmp_sampling_rate:g},",
            f"in_cutoff(f_c)={self.in_cutoff:g}, out_cutoff(f_c)={self.out_cutoff:g},",
            f"in_half_width(f_h)={self.in_half_width:g}, out_half_width(f_h)={self.out_half_width:g},",
            f"up={self.up_factor} ({self.up_taps} taps), down={self.down_factor} ({self.down_taps} taps)"])


class VanillaLayer(nn.Module):
    """StyleGAN2 / CoModGAN layer for the "vanilla" ablation: modulated conv, no margins.

    ``resample=+2``: [1, 3, 3, 1] 2x upsampling before the 3x3 conv; ``-2``: [1, 3, 3, 1] blur and a
    stride-2 conv; ``1``: plain conv. Then bias, leaky ReLU (gain sqrt 2), clamp. A ``torgb`` layer
    is a 1x1 modulated conv without demodulation and with a linear activation.
    """

    def __init__(self, style_dim: int, in_channels: int, out_channels: int, resample: int = 1,
                 is_torgb: bool = False, conv_kernel: int = 3, conv_clamp: float | None = 256,
                 impl: str = "fast", modconv_mode: str = _DEFAULT_MODE):
        super().__init__()
        if resample not in (1, 2, -2):
            raise ValueError(f"resample must be 1, 2 or -2, got {resample}")
        self.is_torgb, self.resample = is_torgb, resample
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.impl, self.modconv_mode = conv_clamp, impl, modconv_mode
        self.affine = FullyConnected(style_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", as_filter(binomial_filter(4)), persistent=False)

    def forward(self, x: torch.Tensor, style_input: torch.Tensor) -> torch.Tensor:
        styles = self.affine(style_input)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        pad = self.conv_kernel // 2
        if self.resample == 2:
            x = upsample2d(x, self.resample_filter, up=2, impl=self.impl)
        if self.resample == -2:
            x = filter2d(x, self.resample_filter, impl=self.impl)  # blur, then a stride-2 conv
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=pad,
                             mode=self.modconv_mode, stride=2 if self.resample == -2 else 1)
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        return bias_lrelu(x, self.bias, slope=slope, gain=gain, clamp=self.conv_clamp, inplace=True)

    def extra_repr(self) -> str:
        return (f"torgb={self.is_torgb}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"resample={self.resample}")

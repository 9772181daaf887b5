"""Filtered leaky ReLU (Alias-Free GAN; paper Sec. III-D2).

The point-wise nonlinearity creates frequencies above the Nyquist limit of the feature map. It is
therefore wrapped between an upsampling (usually 2x, low-pass ``fu``) and a downsampling (low-pass
``fd``) so that the new high frequencies are removed before the signal is sampled again:

    bias -> upfirdn2d(up, fu, padding) -> leaky ReLU * gain -> clamp -> upfirdn2d(down, fd)

``impl="ref"`` runs the reference resampling; ``impl="fast"`` the separable polyphase one.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from unicoal.nn.resample import upfirdn2d

__all__ = ["bias_lrelu", "filtered_lrelu"]


def bias_lrelu(x: torch.Tensor, b: torch.Tensor | None = None, slope: float = 0.2, gain: float = math.sqrt(2),
               clamp: float | None = None, inplace: bool = False) -> torch.Tensor:
    """``clamp(leaky_relu(x + b, slope) * gain, -clamp, clamp)``.

    With ``inplace=True`` ``x`` is overwritten, but only when no gradient is needed through it.
    """
    inplace = inplace and not (torch.is_grad_enabled() and x.requires_grad)
    if b is not None:
        x = x.add_(b.reshape(1, -1, 1, 1)) if inplace else x + b.reshape(1, -1, 1, 1)
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=inplace)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    impl: str = "fast",
) -> torch.Tensor:
    """Bias, upsample (``fu``, factor ``up``, ``padding``), leaky ReLU with ``gain`` and ``clamp``,
    then downsample (``fd``, factor ``down``).

    Args:
        x: ``[N, C, H, W]``; b: ``[C]`` or ``None``; fu, fd: 1-D filters or ``None`` (identity).
        padding: ``(px0, px1, py0, py1)`` applied after upsampling (StyleGAN3 convention).

    Returns:
        ``[N, C, H', W']`` with ``H' = (H * up + py0 + py1 - len(fu) - len(fd) + 2) // down`` (rounded up).
    """
    if impl == "ref":
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1).to(x.dtype)
        x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, impl="ref")
        x = bias_lrelu(x, None, slope=slope, gain=gain, clamp=clamp)
        return upfirdn2d(x, fd, down=down, impl="ref")
    # Fast: identical maths, fewer passes over large tensors.
    x0 = x
    if b is not None:
        x = x + b.reshape(1, -1, 1, 1).to(x.dtype)
    if up == 1 and fu is None:
        # No upsampling filter: the padding/cropping commutes with the point-wise ops (lrelu(0) = 0),
        # so it moves into the down filter's convolution (no padded copy of the tensor).
        if fd is None:
            x = bias_lrelu(x, None, slope=slope, gain=gain, clamp=clamp, inplace=x is not x0)
            return upfirdn2d(x, None, down=down, padding=padding, impl=impl)
        x = bias_lrelu(x, None, slope=slope, gain=1.0, clamp=None if clamp is None else clamp / gain,
                       inplace=x is not x0)
        return upfirdn2d(x, fd, down=down, padding=padding, gain=gain, impl=impl)
    # The gain is linear: clamp(g * lrelu(t), -c, c) = g * clamp(lrelu(t), -c/g, c/g), and g moves
    # into the down filter.
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, impl=impl)
    x = bias_lrelu(x, None, slope=slope, gain=1.0, clamp=None if clamp is None else clamp / gain,
                   inplace=x is not x0)
    return upfirdn2d(x, fd, down=down, gain=gain, impl=impl)

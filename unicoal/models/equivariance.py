"""EQ-T-style translation equivariance of the generator (Alias-Free GAN, Sec. 3 / Appendix E).

Shift-then-generate versus generate-then-shift for sub-pixel translations: the source slices are
translated by (dx, dy) pixels, the Fourier-feature input of the synthesizer by the same amount,
and the output is compared with the translated output of the untranslated input, inside a central
crop (away from the borders where content enters or leaves the field of view). The score is a
PSNR in dB with the reference crop's dynamic range as peak; higher = more equivariant.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fractional_shift", "bandlimited_images", "translation_equivariance_psnr"]


def _shift_kernel(frac: float, radius: int) -> torch.Tensor:
    """Kaiser-windowed sinc taps that delay a signal by ``frac`` samples (2 * radius taps)."""
    k = np.arange(-radius + 1, radius + 1, dtype=np.float64) - frac
    h = np.sinc(k) * np.i0(8.0 * np.sqrt(np.clip(1 - (k / (radius + 1)) ** 2, 0, 1)))
    return torch.as_tensor(h / h.sum(), dtype=torch.float64)


def fractional_shift(x: torch.Tensor, dx: float, dy: float, radius: int = 8) -> torch.Tensor:
    """Translate ``[N, C, H, W]`` images by (dx, dy) pixels (content moves right/down) with a
    separable windowed-sinc interpolator; borders are replicated."""
    out = x.double()
    for shift, axis in ((dx, 3), (dy, 2)):
        whole = math.floor(shift)
        frac = shift - whole
        h = _shift_kernel(frac, radius).to(out.device)
        # y[i] = sum_k x[i - whole - k] * h(k + frac) for k in -radius+1 .. radius, via padding + correlation.
        pad = [radius + whole, radius - whole - 1]
        if axis == 3:
            y = F.pad(out, pad + [0, 0], mode="replicate")
            y = F.conv2d(y.reshape(-1, 1, *y.shape[2:]), h.flip(0).reshape(1, 1, 1, -1))
            out = y.reshape(*out.shape[:2], out.shape[2], -1)
        else:
            y = F.pad(out, [0, 0] + pad, mode="replicate")
            y = F.conv2d(y.reshape(-1, 1, *y.shape[2:]), h.flip(0).reshape(1, 1, -1, 1))
            out = y.reshape(*out.shape[:2], -1, out.shape[3])
    return out.to(x.dtype)


def bandlimited_images(n: int, c: int, size: int, cutoff: float = 0.125, seed: int = 0) -> torch.Tensor:
    """Smooth random images in about [-1, 1]: white noise low-passed at ``cutoff`` cycles/pixel."""
    gen = torch.Generator().manual_seed(seed)
    spec = torch.fft.rfft2(torch.randn(n, c, size, size, generator=gen, dtype=torch.float64))
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    spec = spec * ((fx ** 2 + fy ** 2).sqrt() <= cutoff)
    x = torch.fft.irfft2(spec, s=(size, size))
    return (x / (3 * x.std(dim=[2, 3], keepdim=True))).clamp(-1, 1).float()


@torch.no_grad()
def translation_equivariance_psnr(G: torch.nn.Module, x_in: torch.Tensor, delta: torch.Tensor, c_out: torch.Tensor,
                                  z: torch.Tensor, shifts: list[tuple[float, float]], crop: int | None = None) -> float:
    """Mean PSNR (dB) between G(shift(x)) and shift(G(x)) over ``shifts`` (pixels), in a central crop.

    The synthesizer's Fourier-feature input is translated with the slices (its ``transform``
    buffer), as in StyleGAN3's EQ-T; the buffer is restored afterwards.
    """
    r = x_in.shape[-1]
    crop = crop if crop is not None else r // 8
    was_training = G.training
    G.eval()
    transform = G.synthesis.input.transform
    saved = transform.clone()
    try:
        ref = G(x_in, delta, c_out, z).double()
        scores = []
        for dx, dy in shifts:
            m = torch.eye(3, dtype=transform.dtype, device=transform.device)
            m[0, 2], m[1, 2] = -dx / r, -dy / r  # the features sample p + t: t = -d / r moves content by +d
            transform.copy_(saved @ m)
            out = G(fractional_shift(x_in, dx, dy), delta, c_out, z).double()
            transform.copy_(saved)
            want = fractional_shift(ref, dx, dy)
            a = out[..., crop:r - crop, crop:r - crop]
            b = want[..., crop:r - crop, crop:r - crop]
            peak = (b.amax(dim=[1, 2, 3]) - b.amin(dim=[1, 2, 3])).clamp_min(1e-12)
            mse = (a - b).square().mean(dim=[1, 2, 3])
            scores.append((10 * torch.log10(peak.square() / mse.clamp_min(1e-30))).mean().item())
        return float(np.mean(scores))
    finally:
        transform.copy_(saved)
        G.train(was_training)

"""The alias-free layer schedule (paper Sec. III-D; StyleGAN3-T formulas) as one pure function.

A handful of numbers (output resolution, layer count, critical layers, first cutoff and stopband,
last relative stopband, margin, channel budget) determine, for every feature map i = 0 .. N of the
synthesizer (i = 0 is the Fourier-feature input, i = N the output image):

    f_c[i] = f_c0 * (r/2 / f_c0) ** min(i / (N - N_crit), 1)          cutoff
    f_t[i] = f_t0 * (f_tN / f_t0) ** min(i / (N - N_crit), 1)         stopband, f_tN = 2^0.3 * r/2
    s[i]   = 2 ** ceil(log2(min(2 f_t[i], r)))                       sampling rate
    f_h[i] = max(f_t[i], s[i] / 2) - f_c[i]                           transition half-width
    size[i] = s[i] + 2 * margin  (the last two: r)                    feature-map size
    channels[i] = round(min(channel_base / 2 / f_c[i], channel_max))  (the last: image channels)

The encoder walks the same table backwards (i = N .. 0), the synthesizer forwards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayerSpec", "alias_free_schedule", "format_schedule"]


@dataclass(frozen=True)
class LayerSpec:
    """Sampling grid of feature map ``index``: cutoff ``f_c``, stopband ``f_t``, sampling rate ``s``,
    half-width ``f_h``, spatial ``size`` (with margin), ``channels``; ``critical`` = critically sampled."""

    index: int
    f_c: float
    f_t: float
    s: int
    f_h: float
    size: int
    channels: int
    critical: bool


def alias_free_schedule(
    img_resolution: int = 256,
    img_channels: int = 1,
    num_layers: int = 14,
    num_critical: int = 2,
    first_cutoff: float = 2.0,
    first_stopband: float = 2 ** 2.1,
    last_stopband_rel: float = 2 ** 0.3,
    margin_size: int = 10,
    channel_base: int = 16384,
    channel_max: int = 512,
) -> tuple[LayerSpec, ...]:
    """Per-layer table of the alias-free generator, ``num_layers + 1`` entries (see module doc)."""
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    if not 0 <= num_critical < num_layers:
        raise ValueError(f"need 0 <= num_critical < num_layers, got {num_critical}, {num_layers}")
    if not 0 < first_cutoff < img_resolution / 2:
        raise ValueError(f"first_cutoff must lie in (0, {img_resolution / 2}), got {first_cutoff}")
    last_cutoff = img_resolution / 2                                  # f_c,N
    last_stopband = last_cutoff * last_stopband_rel                   # f_t,N
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    f_c = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    f_t = first_stopband * (last_stopband / first_stopband) ** exponents
    s = np.exp2(np.ceil(np.log2(np.minimum(f_t * 2, img_resolution))))
    f_h = np.maximum(f_t, s / 2) - f_c
    sizes = s + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / f_c, channel_max))
    channels[-1] = img_channels
    return tuple(
        LayerSpec(index=i, f_c=float(f_c[i]), f_t=float(f_t[i]), s=int(s[i]), f_h=float(f_h[i]),
                  size=int(sizes[i]), channels=int(channels[i]), critical=bool(i >= num_layers - num_critical))
        for i in range(num_layers + 1))


def format_schedule(table: tuple[LayerSpec, ...]) -> str:
    """The table as aligned text (for logs, ``extra_repr`` and docs)."""
    lines = [f"{'i':>3} {'f_c':>8} {'f_t':>8} {'s':>5} {'f_h':>8} {'size':>5} {'ch':>5} crit"]
    for t in table:
        lines.append(f"{t.index:>3} {t.f_c:>8.3f} {t.f_t:>8.3f} {t.s:>5} {t.f_h:>8.3f} {t.size:>5} {t.channels:>5} "
                     f"{'yes' if t.critical else ''}")
    return "\n".join(lines)

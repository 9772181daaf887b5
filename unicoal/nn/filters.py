"""FIR low-pass filter design as pure functions (Alias-Free GAN, paper Sec. III-D).

The alias-free encoder and synthesizer resample feature maps with separable Kaiser-windowed sinc
filters. :func:`design_lowpass_filter` maps (taps, cutoff f_c, transition half-width f_h, sampling
rate s) to a 1-D filter exactly like ``scipy.signal.firwin(numtaps, f_c, width=2 f_h, fs=s)``: the
Kaiser window's beta follows from the attenuation that the tap count buys for that transition band
(Kaiser 1974 formulas). The filter is normalised to unit DC gain. The vanilla (StyleGAN2) ablation
uses the binomial [1, 3, 3, 1] filter from :func:`binomial_filter`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "kaiser_atten",
    "kaiser_beta",
    "design_lowpass_filter",
    "binomial_filter",
    "frequency_response",
    "stopband_attenuation_db",
    "passband_ripple_db",
]


def kaiser_atten(numtaps: int, width: float, fs: float) -> float:
    """Stopband attenuation in dB that a Kaiser design with ``numtaps`` taps reaches for a
    transition band of total ``width`` (same units as the sampling rate ``fs``)."""
    return 2.285 * (numtaps - 1) * math.pi * (width / (0.5 * fs)) + 7.95


def kaiser_beta(atten_db: float) -> float:
    """Kaiser window shape parameter beta for a stopband attenuation of ``atten_db`` dB."""
    if atten_db > 50:
        return 0.1102 * (atten_db - 8.7)
    if atten_db > 21:
        return 0.5842 * (atten_db - 21) ** 0.4 + 0.07886 * (atten_db - 21)
    return 0.0


def design_lowpass_filter(numtaps: int, cutoff: float, half_width: float, fs: float) -> np.ndarray | None:
    """Kaiser-windowed sinc low-pass filter (float64, unit DC gain), or ``None`` for one tap.

    Args:
        numtaps: filter length (6 per unit of up/down factor in the paper config); 1 = identity.
        cutoff: cutoff frequency f_c (-6 dB point), in the units of ``fs``.
        half_width: transition-band half-width f_h; the stopband starts at f_c + f_h.
        fs: sampling rate s of the signal the filter runs at.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff must lie in (0, fs/2) = (0, {fs / 2}), got {cutoff}")
    if half_width <= 0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    beta = kaiser_beta(kaiser_atten(numtaps, 2 * half_width, fs))
    m = np.arange(numtaps, dtype=np.float64) - (numtaps - 1) / 2
    c = cutoff / (fs / 2)  # normalised to Nyquist
    h = c * np.sinc(c * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def binomial_filter(taps: int = 4) -> np.ndarray:
    """Binomial low-pass filter of ``taps`` taps ([1, 3, 3, 1] / 8 for 4), unit DC gain (StyleGAN2)."""
    if taps < 1:
        raise ValueError(f"taps must be >= 1, got {taps}")
    h = np.array([math.comb(taps - 1, k) for k in range(taps)], dtype=np.float64)
    return h / h.sum()


def frequency_response(h: np.ndarray, freqs: np.ndarray, fs: float) -> np.ndarray:
    """Magnitude |H(f)| of the 1-D FIR ``h`` at frequencies ``freqs`` (units of ``fs``)."""
    n = np.arange(len(h)) - (len(h) - 1) / 2
    return np.abs(np.exp(-2j * np.pi * np.outer(np.asarray(freqs) / fs, n)) @ h)


def stopband_attenuation_db(h: np.ndarray, stopband: float, fs: float, n: int = 4096) -> float:
    """Minimum attenuation in dB (positive) of ``h`` over [stopband, fs/2]."""
    f = np.linspace(stopband, fs / 2, n)
    return float(-20 * np.log10(max(frequency_response(h, f, fs).max(), 1e-300)))


def passband_ripple_db(h: np.ndarray, passband: float, fs: float, n: int = 4096) -> float:
    """Peak deviation in dB of |H| from 1 over [0, passband]."""
    resp = frequency_response(h, np.linspace(0, passband, n), fs)
    return float(np.max(np.abs(20 * np.log10(np.maximum(resp, 1e-300)))))

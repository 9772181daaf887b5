"""The identity baseline "copy the source" for CMS and CMSR (a reference row, not in the paper).

It answers "how far is the *source* contrast from the target?": the source volume is resampled
onto the target grid with linear interpolation along the slice axis
(:func:`unicoal.models.interpolation.resample_slices`) and returned unchanged otherwise. For
CMS (same thickness) the target positions are the source slices, so the output is the source
volume itself; for CMSR it is linear slice interpolation of the *other* contrast. Any learned
CMS / CMSR method should beat it by a wide margin.
"""
from __future__ import annotations

import numpy as np

from unicoal.models.interpolation import resample_slices

__all__ = ["CopySourcePredictor"]


class CopySourcePredictor:
    """:class:`unicoal.predictors.Predictor` of the ``copy`` method (deterministic, any modality)."""

    stochastic = False
    modalities = None  # writes the source contrast whatever the target modality is called
    kernel = "linear"

    def __init__(self, name: str = "copy"):
        self.name = name

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None = None, *, seed: int = 0,
                batch_size: int = 16, progress: bool = False) -> np.ndarray:
        u = np.asarray(n, dtype=np.float64) + np.asarray(delta, dtype=np.float64)
        return resample_slices(volume, u, self.kernel)

"""Interpolation baselines along the slice axis: linear, cubic convolution and Lanczos-3.

Super-resolution only (same modality), not trainable; they run through the same
``unicoal synthesize`` target-grid path as every learned method (:mod:`unicoal.infer`): the
predictor receives each target slice's position ``u = n + delta`` in source slice-index units
(from :func:`unicoal.geometry.slice_positions`) and resamples the source volume there. Edges
replicate the first / last source slice; weights are renormalised to sum to one so a constant
volume stays constant.

Kernels (``x`` in source slices):

* ``linear``: ``max(1 - |x|, 0)``, support 1;
* ``cubic``: Keys (1981) cubic convolution with ``a = -0.5`` (Catmull-Rom), support 2;
* ``lanczos``: ``sinc(x) sinc(x / 3)`` for ``|x| < 3`` (Lanczos-3 windowed sinc), support 3.
"""
from __future__ import annotations

import numpy as np

__all__ = ["KERNELS", "kernel_weights", "resample_matrix", "resample_slices", "InterpolationPredictor"]


def _linear(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    out = np.zeros_like(x)
    m1 = x <= 1
    m2 = (x > 1) & (x < 2)
    out[m1] = (a + 2) * x[m1] ** 3 - (a + 3) * x[m1] ** 2 + 1
    out[m2] = a * x[m2] ** 3 - 5 * a * x[m2] ** 2 + 8 * a * x[m2] - 4 * a
    return out


def _lanczos(x: np.ndarray, lobes: int = 3) -> np.ndarray:
    return np.where(np.abs(x) < lobes, np.sinc(x) * np.sinc(x / lobes), 0.0)


KERNELS: dict[str, tuple] = {"linear": (_linear, 1), "cubic": (_cubic, 2), "lanczos": (_lanczos, 3)}


def kernel_weights(name: str, x: np.ndarray) -> np.ndarray:
    """Kernel ``name`` evaluated at offsets ``x`` (source slices)."""
    if name not in KERNELS:
        raise ValueError(f"unknown interpolation kernel {name!r}; expected one of {', '.join(KERNELS)}")
    return KERNELS[name][0](np.asarray(x, dtype=np.float64))


def resample_matrix(num_slices: int, u: np.ndarray, kernel: str) -> np.ndarray:
    """Weights ``[K, N]`` mapping ``N`` source slices to positions ``u`` (rows sum to 1)."""
    fn, support = KERNELS[kernel] if kernel in KERNELS else (None, 0)
    if fn is None:
        raise ValueError(f"unknown interpolation kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    u = np.asarray(u, dtype=np.float64).ravel()
    base = np.floor(u)
    taps = np.arange(-support + 1, support + 1)  # e.g. -1, 0, 1, 2 for support 2
    j = base[:, None] + taps[None, :]  # [K, T]
    w = fn(u[:, None] - j)
    w = w / w.sum(axis=1, keepdims=True)
    idx = np.clip(j, 0, num_slices - 1).astype(np.int64)
    mat = np.zeros((u.size, num_slices))
    np.add.at(mat, (np.repeat(np.arange(u.size), taps.size), idx.ravel()), w.ravel())
    return mat


def resample_slices(volume: np.ndarray, u: np.ndarray, kernel: str) -> np.ndarray:
    """Resample ``volume`` ([N, ...], slice axis first) at slice positions ``u`` -> [K, ...]."""
    mat = resample_matrix(volume.shape[0], u, kernel).astype(np.float32)
    return np.tensordot(mat, np.asarray(volume, dtype=np.float32), axes=([1], [0]))


class InterpolationPredictor:
    """:class:`unicoal.predictors.Predictor` for the interpolation baselines (deterministic, SR only)."""

    stochastic = False
    modalities = None  # modality-agnostic

    def __init__(self, kernel: str):
        if kernel not in KERNELS:
            raise ValueError(f"unknown interpolation kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
        self.kernel = kernel
        self.name = kernel

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None = None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        u = np.asarray(n, dtype=np.float64) + np.asarray(delta, dtype=np.float64)
        return resample_slices(volume, u, self.kernel)  # synthesize clips to the input's range

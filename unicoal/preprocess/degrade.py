"""Thick-slice simulation (paper Sec. IV-A, after DeepResolve [5]): filter along the slice axis
with a slice profile of width ``h0``, then sample one slice every ``h0`` mm.

Slice profiles (``profile``), all as a weight matrix ``W[j, k]`` from HR slice ``k`` to LR
slice ``j`` (rows sum to 1), with LR centres ``c_j = phase + j * r`` in HR index units
(see :mod:`unicoal.geometry`):

* ``rect`` (default): the ideal slab. Each HR slice is its own slab ``[k - 1/2, k + 1/2]``;
  LR slice ``j`` averages the HR signal over ``[c_j - r/2, c_j + r/2]``, so ``W[j, k]`` is the
  overlap length divided by ``r``. Exact for any real ``r`` (e.g. 5.33).
* ``gaussian``: a Gaussian slice profile with FWHM ``h0`` (sigma = r / 2.3548 HR slices),
  integrated over each HR slab, truncated at 3 sigma and renormalised.
* ``select``: no filter; the HR signal is sampled at ``c_j`` by linear interpolation. With the
  default phase 0 and an integer ``r`` this is plain slice selection (every r-th slice), as in
  the authors' public loader (``--parity official``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from unicoal.errors import InputError
from unicoal.geometry import Grid, default_phase, slice_count, thick_slice_grid

__all__ = ["PROFILES", "slice_profile_matrix", "degrade_array", "degrade_file"]

PROFILES = ("rect", "gaussian", "select")


def slice_profile_matrix(num_slices: int, ratio: float, phase: float, count: int, profile: str = "rect") -> np.ndarray:
    """Weights ``[count, num_slices]`` mapping HR slices to LR slices (rows sum to 1)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown slice profile {profile!r}; expected one of {', '.join(PROFILES)}")
    centres = phase + ratio * np.arange(count, dtype=np.float64)[:, None]  # [M, 1]
    k = np.arange(num_slices, dtype=np.float64)[None, :]  # [1, N]
    if profile == "rect":
        lo = np.maximum(centres - ratio / 2, k - 0.5)
        hi = np.minimum(centres + ratio / 2, k + 0.5)
        w = np.clip(hi - lo, 0.0, None)
    elif profile == "gaussian":
        sigma = ratio / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        s2 = sigma * math.sqrt(2.0)
        erf = np.vectorize(math.erf)
        w = 0.5 * (erf((k + 0.5 - centres) / s2) - erf((k - 0.5 - centres) / s2))
        w[np.abs(k - centres) > 3 * sigma + 0.5] = 0.0
    else:  # select: linear interpolation at the centre
        w = np.clip(1.0 - np.abs(k - centres), 0.0, None)
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a low-resolution slice has no support inside the volume")
    return w / total


def degrade_array(data: np.ndarray, ratio: float, axis: int = 2, profile: str = "rect", phase: float | None = None) -> tuple[np.ndarray, float]:
    """Simulate slices ``ratio`` times thicker along ``axis``. Returns ``(lr, phase)``.

    ``lr`` has ``slice_count(N, ratio, phase)`` slices along ``axis``; ``phase`` is the HR index
    of the first LR centre (default: flush with the HR edge; 0 for ``select``).
    """
    if not (math.isfinite(ratio) and ratio >= 1.0 - 1e-9):
        raise ValueError(f"thickness ratio must be >= 1, got {ratio}")
    ph = default_phase(ratio, profile) if phase is None else float(phase)
    n = data.shape[axis]
    count = slice_count(n, ratio, ph, "point" if profile == "select" else "slab")
    if count < 1:
        raise ValueError(f"no slice of ratio {ratio} fits in {n} slices")
    w = slice_profile_matrix(n, ratio, ph, count, profile).astype(np.float32)
    moved = np.moveaxis(np.asarray(data, dtype=np.float32), axis, 0)
    lr = np.tensordot(w, moved, axes=([1], [0]))
    return np.moveaxis(lr, 0, axis), ph


def degrade_file(src: str | Path, dst: str | Path, thickness: float | None = None, *, factor: float | None = None, axis: int | None = None, profile: str = "rect", phase: float | None = None) -> dict:
    """``unicoal degrade``: read an HR NIfTI, write the LR NIfTI and its JSON sidecar atomically.

    Give the LR slice ``thickness`` in mm, or ``factor`` = thickness / input slice thickness.
    """
    from unicoal.io import load_volume, save_volume, sidecar_path, software_versions, write_json

    if profile not in PROFILES:
        raise InputError(src, f"unknown slice profile {profile!r}", f"use one of {', '.join(PROFILES)}")
    if (thickness is None) == (factor is None):
        raise InputError(src, "give exactly one of thickness and factor", "pass --thickness MM or --factor R")
    if factor is not None and not (math.isfinite(factor) and factor >= 1):
        raise InputError(src, f"factor must be >= 1, got {factor}", "pass --factor R with R >= 1, e.g. 4 or 5.33")
    if thickness is not None and not (math.isfinite(thickness) and thickness > 0):
        raise InputError(src, f"thickness must be > 0 mm, got {thickness}", "pass --thickness in mm, e.g. 4.0")
    data, img = load_volume(src, allow_empty=True)
    hr = Grid.from_image(img, axis)
    if factor is not None:
        thickness = factor * hr.thickness
    try:
        lr_grid = thick_slice_grid(hr, thickness, phase=phase, profile=profile)
        lr, ph = degrade_array(data, thickness / hr.thickness, hr.slice_axis, profile, phase)
    except ValueError as err:
        raise InputError(src, str(err), f"choose --thickness >= {hr.thickness:.4g} mm (the input slice thickness)") from None
    assert lr.shape == lr_grid.shape, (lr.shape, lr_grid.shape)
    meta = {
        "step": "degrade",
        "source": str(src),
        "thickness_mm": thickness,
        "ratio": thickness / hr.thickness,
        "profile": profile,
        "phase": ph,
        "hr_grid": hr.to_json(),
        "lr_grid": lr_grid.to_json(),
        "versions": software_versions("nibabel", "numpy"),
    }
    side = sidecar_path(dst)
    save_volume(dst, lr, lr_grid.matrix)
    write_json(side, meta)
    return meta

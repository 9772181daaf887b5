"""Image-quality metrics between a synthesized volume and its ground truth: PSNR, SSIM, MAE.

Paper Sec. IV-A: "we use PSNR and SSIM to quantify the quality of generated MR images"; the
authors' recipe (see ``reference-facts.md``, "Data and evaluation"):

* ``published`` (default): each volume (prediction and target separately) is clipped at its own
  0.5 / 99.5 percentiles over the *whole* volume (background included) and scaled to [0, 1];
  scikit-image ``peak_signal_noise_ratio`` / ``structural_similarity`` with ``data_range=1`` and
  default parameters (7-voxel uniform window, sample covariance) on the whole 3D volume. The
  background inflates SSIM by about 0.1 and PSNR by about 5 dB relative to in-brain metrics.
* ``brainmask``: percentiles computed inside the brain mask, voxels outside the mask set to 0
  after scaling; PSNR and MAE use in-mask voxels only; SSIM is the mean of scikit-image's
  SSIM map over in-mask voxels (both cropped by the window half-width, as scikit-image crops
  for its own mean).
* ``wang``: the ``published`` normalisation with the SSIM settings of Wang et al. 2004
  (Gaussian window sigma 1.5, truncated at 3.5 sigma = 11 taps, population covariance).
* ``targetscale``: both volumes are mapped with the *ground truth's* 0.5 / 99.5 percentiles
  (both then clipped to [0, 1]), then the ``published`` metrics.
  Unlike the others it sees a global gain / offset error of the prediction.

Every convention also gives the slice-wise mean over axial slices (``PSNR_slice``,
``SSIM_slice``, ``MAE_slice``): the same 2D computation per axial slice of the normalised volumes,
averaged over slices whose target is not constant (in-mask slices only for ``brainmask``).
``PSNR_slice`` is never infinite: a slice identical to its target (PSNR ``inf``; e.g. an acquired
slice that an SR method keeps, ``--parity official``) is *excluded* from the PSNR mean (the
others are averaged; SSIM 1 and MAE 0 of such slices still count). If every slice is identical,
``PSNR_slice`` is NaN (undefined, left out of tables and tests).

Identical volumes give SSIM 1 and whole-volume PSNR ``inf`` (returned as ``math.inf``, written as ``inf``).

``published``, ``brainmask`` and ``wang`` do not see a global gain or offset error: each volume is
scaled by its *own* percentiles, so ``2 t + 5`` scores like ``t`` against ``t``. That is the
authors' recipe (``published``) and stays the default for parity; reports state it and show
``targetscale`` and ``brainmask`` beside it.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unicoal.errors import InputError

__all__ = [
    "CONVENTIONS",
    "METRIC_NAMES",
    "GRID_TOLERANCE_MM",
    "Convention",
    "get_convention",
    "normalize_percentile",
    "image_metrics",
    "volume_metrics",
    "axial_axis",
    "check_same_grid",
    "evaluate_files",
]

GRID_TOLERANCE_MM = 1e-3
METRIC_NAMES: tuple[str, ...] = ("PSNR", "SSIM", "MAE", "PSNR_slice", "SSIM_slice", "MAE_slice")


@dataclass(frozen=True)
class Convention:
    """How PSNR/SSIM/MAE are computed (see module docstring)."""

    name: str
    percentiles: tuple[float, float] = (0.5, 99.5)
    use_mask: bool = False
    gaussian_weights: bool = False
    sigma: float = 1.5
    use_sample_covariance: bool = True
    scale_by_target: bool = False
    description: str = ""

    def __post_init__(self):
        lo, hi = self.percentiles
        if not (0.0 <= lo < hi <= 100.0):
            raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {self.percentiles}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    @property
    def ssim_kwargs(self) -> dict:
        """Keyword arguments for ``skimage.metrics.structural_similarity`` (besides data_range=1)."""
        if self.gaussian_weights:
            return {"gaussian_weights": True, "sigma": self.sigma, "use_sample_covariance": self.use_sample_covariance}
        return {}

    @property
    def win_size(self) -> int:
        """The SSIM window length per axis (scikit-image's rule)."""
        return 2 * int(3.5 * self.sigma + 0.5) + 1 if self.gaussian_weights else 7


CONVENTIONS: dict[str, Convention] = {
    "published": Convention(
        "published",
        description="whole-volume 0.5/99.5 percentile clip to [0,1], scikit-image defaults (7^3 uniform window), data_range 1",
    ),
    "brainmask": Convention(
        "brainmask", use_mask=True,
        description="in-mask 0.5/99.5 percentile clip to [0,1], background 0, metrics averaged inside the brain mask",
    ),
    "wang": Convention(
        "wang", gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        description="published normalisation, SSIM of Wang et al. 2004 (Gaussian sigma 1.5, population covariance)",
    ),
    "targetscale": Convention(
        "targetscale", scale_by_target=True,
        description="both volumes scaled by the ground truth's 0.5/99.5 percentiles and clipped to [0,1]: "
                    "sees gain/offset errors; scikit-image defaults, data_range 1",
    ),
}


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown metric convention {name!r}; expected one of {', '.join(CONVENTIONS)}") from None


def normalize_percentile(data: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5), mask: np.ndarray | None = None) -> np.ndarray:
    """Clip ``data`` at its own percentiles (over ``mask`` if given) and scale to [0, 1] (float64).

    With a mask, voxels outside it are set to 0. A constant volume maps to all zeros.
    """
    x = np.asarray(data, dtype=np.float64)
    sample = x[mask] if mask is not None else x
    lo, hi = np.percentile(sample, list(percentiles))
    out = np.zeros_like(x) if hi <= lo else (np.clip(x, lo, hi) - lo) / (hi - lo)
    if mask is not None:
        out = np.where(mask, out, 0.0)
    return out


def _crop(a: np.ndarray, pad: int) -> np.ndarray:
    return a[tuple(slice(pad, s - pad) for s in a.shape)] if pad else a


def image_metrics(pred: np.ndarray, target: np.ndarray, convention: Convention, mask: np.ndarray | None = None) -> dict[str, float]:
    """PSNR, SSIM, MAE of two already-normalised arrays in [0, 1] (2D or 3D), data range 1.

    ``mask`` (boolean, same shape) restricts PSNR/MAE to in-mask voxels and averages the SSIM
    map over in-mask voxels; without it the scikit-image scalar SSIM is returned unchanged.
    """
    from skimage.metrics import structural_similarity

    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {pred.shape} vs {target.shape}")
    if min(pred.shape) < convention.win_size:
        raise ValueError(f"array of shape {pred.shape} is smaller than the SSIM window ({convention.win_size} voxels per axis)")
    diff = pred - target
    sel = diff[mask] if mask is not None else diff
    if sel.size == 0:
        return {"PSNR": math.nan, "SSIM": math.nan, "MAE": math.nan}
    mse = float(np.mean(sel * sel))
    psnr = math.inf if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))
    mae = float(np.mean(np.abs(sel)))
    if mask is None:
        ssim = float(structural_similarity(target, pred, data_range=1.0, **convention.ssim_kwargs))
    else:
        _, smap = structural_similarity(target, pred, data_range=1.0, full=True, **convention.ssim_kwargs)
        pad = (convention.win_size - 1) // 2
        m = _crop(mask, pad)
        ssim = float(_crop(smap, pad)[m].mean()) if m.any() else math.nan
    return {"PSNR": psnr, "SSIM": ssim, "MAE": mae}


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to world superior-inferior (axial slices are taken across it)."""
    a = np.asarray(affine, dtype=np.float64)[:3, :3]
    direction = a / np.linalg.norm(a, axis=0)
    return int(np.argmax(np.abs(direction[2])))


def volume_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    convention: str | Convention = "published",
    mask: np.ndarray | None = None,
    axial: int = 2,
) -> dict[str, float]:
    """All metrics of :data:`METRIC_NAMES` for raw (un-normalised) volumes under ``convention``.

    Example:
        >>> v = np.random.default_rng(0).random((16, 16, 16))
        >>> volume_metrics(v, v)["PSNR"]
        inf
    """
    conv = get_convention(convention) if isinstance(convention, str) else convention
    if conv.use_mask:
        if mask is None:
            raise ValueError(f"convention {conv.name!r} needs a brain mask")
        mask = np.asarray(mask) > 0
        if not mask.any():
            raise ValueError("brain mask is empty")
    else:
        mask = None
    t = normalize_percentile(target, conv.percentiles, mask)
    if conv.scale_by_target:
        x = np.asarray(target, dtype=np.float64)
        lo, hi = np.percentile(x[mask] if mask is not None else x, list(conv.percentiles))
        p = np.clip((np.asarray(pred, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(t)
        if mask is not None:
            p = np.where(mask, p, 0.0)
    else:
        p = normalize_percentile(pred, conv.percentiles, mask)
    out = image_metrics(p, t, conv, mask)
    per_slice = []
    for k in range(t.shape[axial]):
        ts = np.take(t, k, axis=axial)
        ms = None if mask is None else np.take(mask, k, axis=axial)
        if ms is not None and not ms.any():
            continue
        if np.ptp(ts if ms is None else ts[ms]) == 0:
            continue
        per_slice.append(image_metrics(np.take(p, k, axis=axial), ts, conv, ms))
    for name in ("PSNR", "SSIM", "MAE"):
        # math.isfinite: an identical slice (PSNR inf) is excluded from the PSNR mean (module doc)
        vals = [d[name] for d in per_slice if math.isfinite(d[name])]
        out[f"{name}_slice"] = float(np.mean(vals)) if vals else math.nan
    return out


def check_same_grid(ref_path, ref_img, other_path, other_img, what: str) -> None:
    """Refuse volumes whose shape or affine differ (affine beyond :data:`GRID_TOLERANCE_MM`)."""
    rs, os_ = tuple(ref_img.shape[:3]), tuple(other_img.shape[:3])
    if rs != os_:
        raise InputError(other_path, f"{what} grid shape {os_} differs from {ref_path} shape {rs}",
                         "resample onto the ground-truth grid (synthesized volumes must carry the target grid)")
    dev = float(np.max(np.abs(np.asarray(ref_img.affine) - np.asarray(other_img.affine))))
    if dev > GRID_TOLERANCE_MM:
        raise InputError(other_path, f"{what} affine differs from {ref_path} by {dev:.4g} mm (tolerance {GRID_TOLERANCE_MM} mm)",
                         "resample onto the ground-truth grid or fix the header")


def evaluate_files(
    pred_path: str | os.PathLike,
    target_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    convention: str = "published",
) -> dict[str, float]:
    """Load, validate grids and compute :func:`volume_metrics` for two NIfTI files."""
    from unicoal.io import load_volume

    conv = get_convention(convention)
    target, timg = load_volume(target_path)
    pred, pimg = load_volume(pred_path, allow_empty=True)
    check_same_grid(target_path, timg, pred_path, pimg, "prediction")
    mask = None
    if mask_path is not None:
        mdata, mimg = load_volume(mask_path)
        check_same_grid(target_path, timg, mask_path, mimg, "mask")
        mask = mdata > 0
        if not conv.use_mask:
            warnings.warn(f"--mask is ignored by convention {conv.name!r}; use --convention brainmask", stacklevel=2)
    elif conv.use_mask:
        raise InputError(None, f"convention {conv.name!r} needs a brain mask", "pass --mask MASK.nii.gz")
    win = conv.win_size
    if min(target.shape) < win:
        raise InputError(target_path, f"volume shape {tuple(target.shape)} is smaller than the SSIM window ({win} voxels per axis)",
                         "evaluate volumes at least that large")
    return volume_metrics(pred, target, conv, mask, axial=axial_axis(timg.affine))

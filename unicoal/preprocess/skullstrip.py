"""Skull stripping: one brain mask per subject, applied to every co-registered modality.

Methods (``method``):

* ``deepbet`` (default, for a T1-weighted image): deepbet (Fisch et al. 2024, "deepbet: Fast
  brain extraction of T1-weighted MRI using convolutional neural networks"), a bounding-box
  network at 128^3 followed by a segmentation network on the box resized to 256^3, with largest
  component and hole filling. Its TorchScript weights ship inside the ``deepbet`` wheel (nothing is
  downloaded); it runs on the CPU here. deepbet reorients to RAS and rescales intensities by their
  0.5/99.5 percentiles itself, so any orientation, resolution and intensity range is accepted.
* ``threshold`` (fallback when no T1w exists, e.g. a T2/PD/FLAIR-only subject): Otsu threshold of
  the positive voxels, erosion by ``erode_mm`` to cut thin bridges between brain and scalp,
  largest connected component, dilation back by ``erode_mm`` within the foreground, closing by
  ``close_mm`` and 3D hole filling (sulcal and ventricular CSF), then a final dilation by
  ``dilate_mm``. All radii are in millimetres (Euclidean distance transforms with the voxel
  spacing), so the method works on anisotropic grids. It assumes the brain is the largest bright
  connected structure after erosion, which holds for T1w/T2w/PD/FLAIR with a dark skull.

The mask (``<stem>_brainmask.nii.gz``, uint8) is computed on the mask source (``t1`` or
``reference``) and applied (voxels outside set to 0) to it and to every ``inputs`` volume, which
must be on the same grid (run ``unicoal register`` first). Each output has a JSON sidecar.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.geometry import Grid
from unicoal.io import check_output_names, load_volume, nifti_stem, save_volume, software_versions, write_json
from unicoal.io import staged_outputs

__all__ = [
    "METHODS",
    "SkullStripConfig",
    "SkullStripOutputs",
    "deepbet_mask",
    "threshold_mask",
    "brain_mask",
    "skullstrip",
]

METHODS = ("deepbet", "threshold")


@dataclass(frozen=True)
class SkullStripConfig:
    """Parameters of :func:`skullstrip`.

    Attributes:
        method: ``deepbet`` or ``threshold`` (see the module docstring).
        threshold: deepbet probability threshold in (0, 1).
        n_dilate: deepbet: voxel layers added (> 0) or removed (< 0) after thresholding.
        threads: CPU threads for torch (deepbet).
        erode_mm, close_mm, dilate_mm: radii of the ``threshold`` method's morphology.
    """

    method: str = "deepbet"
    threshold: float = 0.5
    n_dilate: int = 0
    threads: int = 1
    erode_mm: float = 4.0
    close_mm: float = 4.0
    dilate_mm: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(None, f"unknown skull-stripping method {self.method!r}", f"use one of {', '.join(METHODS)}")
        if not 0.0 < self.threshold < 1.0:
            raise InputError(None, f"threshold must be in (0, 1), got {self.threshold}", "use e.g. --threshold 0.5")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise InputError(None, f"threads must be a positive integer, got {self.threads!r}", "use e.g. --threads 1")
        for name in ("erode_mm", "close_mm", "dilate_mm"):
            if not getattr(self, name) >= 0:
                raise InputError(None, f"{name} must be >= 0, got {getattr(self, name)}", "use a non-negative radius in mm")


@dataclass(frozen=True)
class SkullStripOutputs:
    """Paths written by :func:`skullstrip`: the mask and the masked volumes (source first)."""

    mask: Path
    volumes: tuple[Path, ...]


def deepbet_mask(data: np.ndarray, affine: np.ndarray, *, threshold: float = 0.5, n_dilate: int = 0, threads: int = 1) -> np.ndarray:
    """Brain mask of a T1w volume with deepbet on the CPU (weights from the deepbet wheel)."""
    import nibabel as nib
    import torch
    from deepbet import BrainExtraction

    torch.set_num_threads(threads)
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=np.float64))
    with warnings.catch_warnings():  # deepbet loads TorchScript, which torch now flags as deprecated
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        bet = BrainExtraction(no_gpu=True)
    try:
        _, mask_img, _ = bet.run(img, threshold=threshold, n_dilate=n_dilate)
    except (ValueError, AssertionError) as err:  # empty foreground: no component / no bounding box
        raise InputError(None, f"deepbet found no brain ({err})", "check that the input is a head MRI, or use --method threshold") from None
    return np.asanyarray(mask_img.dataobj).astype(bool)


def _distance_outside(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.distance_transform_edt(~mask, sampling=spacing)


def _dilate(mask: np.ndarray, radius: float, spacing: np.ndarray) -> np.ndarray:
    return mask.copy() if radius <= 0 else _distance_outside(mask, spacing) <= radius


def _erode(mask: np.ndarray, radius: float, spacing: np.ndarray) -> np.ndarray:
    return mask.copy() if radius <= 0 else ~_dilate(~mask, radius, spacing)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def threshold_mask(data: np.ndarray, affine: np.ndarray, *, erode_mm: float = 4.0, close_mm: float = 4.0, dilate_mm: float = 1.0) -> np.ndarray:
    """Brain mask from Otsu + morphology (the documented fallback; see the module docstring)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    positive = data[data > 0]
    if positive.size == 0 or positive.min() == positive.max():
        raise InputError(None, "cannot threshold a volume without positive intensity variation", "check the input volume")
    fg = data > threshold_otsu(positive)
    core = _largest_component(_erode(fg, erode_mm, spacing))
    if not core.any():
        raise InputError(None, f"no foreground left after a {erode_mm} mm erosion", "lower erode_mm")
    brain = _dilate(core, erode_mm, spacing) & fg
    brain = _largest_component(brain)
    brain = _erode(_dilate(brain, close_mm, spacing), close_mm, spacing)
    brain = ndimage.binary_fill_holes(brain)
    return _dilate(brain, dilate_mm, spacing)


def brain_mask(data: np.ndarray, affine: np.ndarray, config: SkullStripConfig = SkullStripConfig()) -> np.ndarray:
    """Brain mask (bool, same shape as ``data``) by ``config.method``."""
    if config.method == "deepbet":
        return deepbet_mask(data, affine, threshold=config.threshold, n_dilate=config.n_dilate, threads=config.threads)
    return threshold_mask(data, affine, erode_mm=config.erode_mm, close_mm=config.close_mm, dilate_mm=config.dilate_mm)


def skullstrip(
    out_dir: str | os.PathLike,
    *,
    t1: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    config: SkullStripConfig = SkullStripConfig(),
) -> SkullStripOutputs:
    """Compute the brain mask on ``t1`` (or, without a T1w, on ``reference``) and apply it.

    Exactly one of ``t1`` and ``reference`` is given. Outputs in ``out_dir``:
    ``<source stem>_brainmask.nii.gz`` and ``<stem>.nii.gz`` (masked) for the source and every
    input, each with a JSON sidecar. Nothing is written if any input is invalid.

    Raises:
        InputError: invalid volumes, inputs on another grid, colliding names, no brain found.
    """
    if (t1 is None) == (reference is None):
        raise InputError(None, "give exactly one mask source: --t1 or --reference", "use --t1 T1.nii.gz, or --reference X.nii.gz without a T1w")
    source = Path(t1 if t1 is not None else reference)  # type: ignore[arg-type]
    paths = [source, *(Path(p) for p in inputs)]
    out = Path(out_dir)
    check_output_names(paths, out)
    volumes = [load_volume(p) for p in paths]
    grid = Grid.from_image(volumes[0][1])
    for p, (_, img) in zip(paths[1:], volumes[1:]):
        other = Grid.from_image(img)
        if not other.same_as(grid):
            raise InputError(
                p,
                f"grid {other.shape} differs from the mask source {source.name} grid {grid.shape} (shape or affine)",
                "register all modalities to one grid first (unicoal register)",
            )

    t0 = time.perf_counter()
    mask = brain_mask(volumes[0][0], grid.matrix, config)
    seconds = time.perf_counter() - t0
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    mask_name = f"{nifti_stem(source)}_brainmask.nii.gz"
    common = {
        "step": "skullstrip",
        "mask_source": str(source),
        "mask_source_role": "T1w" if t1 is not None else "reference",
        "parameters": asdict(config),
        "software": software_versions(*(("deepbet", "torch") if config.method == "deepbet" else ("scikit-image", "scipy"))),
    }
    with staged_outputs(out) as stage:
        save_volume(stage / mask_name, mask.astype(np.uint8), grid.matrix, dtype=np.uint8)
        write_json(
            stage / f"{nifti_stem(source)}_brainmask.json",
            {**common, "voxels": int(mask.sum()), "volume_ml": round(float(mask.sum()) * voxel_ml, 3), "seconds": round(seconds, 3)},
        )
        names = []
        for p, (data, _) in zip(paths, volumes):
            stem = nifti_stem(p)
            save_volume(stage / f"{stem}.nii.gz", np.where(mask, data, 0.0), grid.matrix)
            write_json(stage / f"{stem}.json", {**common, "input": str(p), "mask": str(out / mask_name)})
            names.append(f"{stem}.nii.gz")
    return SkullStripOutputs(mask=out / mask_name, volumes=tuple(out / n for n in names))

"""Small preprocessed-like cohorts for tests and benchmarks of training and synthesis.

``unicoal train`` expects what preprocessing produces: every modality of a subject on one
high-resolution grid, intensities in [0, 1]. :func:`make_synthetic_cohort` writes such a cohort
directly (smooth nested-ellipsoid "brains" with white matter, grey matter, ventricles and a
lesion blob; per-modality tissue contrasts roughly like T1 / T2 / PD / FLAIR / T1CE), in
seconds and without ANTs.
:func:`micro_overrides` shrinks the tiny model further (32 x 32, 4 layers) for fast tests.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["CONTRASTS", "synthetic_subject", "make_synthetic_cohort", "micro_overrides"]

# tissue intensities: background, WM, GM, CSF, lesion
CONTRASTS: dict[str, tuple[float, float, float, float, float]] = {
    "T1": (0.0, 0.85, 0.55, 0.15, 0.35),
    "T2": (0.0, 0.35, 0.55, 0.95, 0.80),
    "PD": (0.0, 0.60, 0.75, 0.85, 0.80),
    "FLAIR": (0.0, 0.45, 0.60, 0.10, 0.95),
    "T1CE": (0.0, 0.85, 0.55, 0.15, 0.90),
}


def _ellipsoid(grid, centre, radii) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))


def synthetic_subject(shape: Sequence[int], modalities: Sequence[str], seed: int, smooth: float = 1.0) -> dict[str, np.ndarray]:
    """Volumes ``{modality: [X, Y, Z] float32 in [0, 1]}`` of one random smooth subject."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    centre = rng.uniform(-0.05, 0.05, 3)
    head = _ellipsoid(grid, centre, rng.uniform(0.75, 0.9, 3))
    wm = _ellipsoid(grid, centre + rng.uniform(-0.05, 0.05, 3), rng.uniform(0.45, 0.6, 3))
    vent = _ellipsoid(grid, centre + rng.uniform(-0.05, 0.05, 3), rng.uniform(0.1, 0.2, 3) * np.array([1.0, 1.6, 1.0]))
    lesion = _ellipsoid(grid, centre + rng.uniform(-0.35, 0.35, 3), rng.uniform(0.08, 0.16, 3))
    # wavy cortex: modulate the grey/white boundary
    wave = 0.08 * np.sin(rng.uniform(4, 8) * grid[0] + rng.uniform(0, 6)) * np.cos(rng.uniform(4, 8) * grid[1])
    labels = np.zeros(shape, dtype=np.int8)
    labels[head < 1] = 2  # GM
    labels[wm + wave < 1] = 1  # WM
    labels[vent < 1] = 3  # CSF
    labels[lesion < 1] = 4
    out = {}
    for m in modalities:
        lut = np.asarray(CONTRASTS[m], dtype=np.float32)
        vol = lut[labels]
        if smooth > 0:
            vol = gaussian_filter(vol, smooth)
        vol *= 1.0 + 0.05 * rng.standard_normal() * grid[2]  # mild bias field
        out[m] = np.clip(vol / max(float(vol.max()), 1e-6), 0.0, 1.0).astype(np.float32)
    return out


def make_synthetic_cohort(
    out_dir: str | os.PathLike,
    subjects: int = 4,
    *,
    shape: Sequence[int] = (40, 40, 32),
    spacing: Sequence[float] = (1.0, 1.0, 1.25),
    modalities: Sequence[str] = ("T1", "T2", "PD"),
    splits: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``subjects`` synthetic subjects and ``out_dir/samplesheet.csv``; returns the sheet.

    The slice axis is voxel axis 2 (spacing ``spacing[2]``, the largest). ``splits`` defaults to
    all ``train`` except the last subject (``test``) when there are at least two.
    """
    from unicoal.cohort.samplesheet import SampleRow, write_samplesheet
    from unicoal.io import save_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = ["train"] * subjects if subjects < 2 else ["train"] * (subjects - 1) + ["test"]
    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = [-s * sp / 2 for s, sp in zip(shape, spacing)]
    rows = []
    for i in range(subjects):
        sid = f"syn{i + 1:03d}"
        vols = synthetic_subject(shape, modalities, seed * 1000 + i)
        for m, vol in vols.items():
            path = out / sid / f"{sid}_{m}.nii.gz"
            save_volume(path, vol, affine)
            rows.append(SampleRow(sid, m, path, None, splits[i]))
    return write_samplesheet(out / "samplesheet.csv", rows)


def micro_overrides(batch_size: int = 4, **extra) -> dict:
    """Config overrides for a seconds-per-step CPU model (32 x 32, 4 layers) used by tests:
    ``load_config("tiny", micro_overrides())``."""
    from unicoal.train.config import deep_merge

    base = {
        "model": {"img_resolution": 32, "num_layers": 4, "margin_size": 4},
        "optim": {"batch_size": batch_size},
        "run": {"log_every": 1, "tensorboard": False},
    }
    return deep_merge(base, extra)

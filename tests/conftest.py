"""Shared fixtures: tiny synthetic volumes with known geometry."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def smooth_volume(shape=(24, 20, 60), seed=0) -> np.ndarray:
    """A smooth positive volume (sum of Gaussian blobs), values in about [0, 1]."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    vol = np.zeros(shape)
    for _ in range(6):
        c = [rng.uniform(0.2, 0.8) * s for s in shape]
        w = [rng.uniform(0.15, 0.3) * s for s in shape]
        vol += rng.uniform(0.3, 1.0) * np.exp(-sum((g - ci) ** 2 / (2 * wi**2) for g, ci, wi in zip(grids, c, w)))
    return (vol / vol.max()).astype(np.float32)


def oblique_affine(spacing=(0.9375, 0.9375, 1.2), angle_deg=10.0, origin=(-90.0, -110.0, -70.0)) -> np.ndarray:
    """A rotated (about x) affine with the given voxel spacing."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


@pytest.fixture
def hr_nifti(tmp_path):
    """An HR NIfTI (oblique affine, 1.2 mm slices) and its data."""
    from unicoal.io import save_volume

    data = smooth_volume()
    path = tmp_path / "hr.nii.gz"
    save_volume(path, data, oblique_affine())
    return path, data

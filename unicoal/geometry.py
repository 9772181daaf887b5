"""Slice geometry: the one source of truth for grids, thickness and (n, delta).

Conventions (paper Sec. III-A, eq. 1):

* A :class:`Grid` is a voxel lattice (shape + 4x4 voxel-to-world affine, mm) with one *slice
  axis*. Slices are contiguous: the slice thickness equals the spacing along that axis.
* Thick-slice simulation of thickness ``h0`` from a high-resolution (HR) grid of thickness ``h``
  uses the ratio ``r = h0 / h``. Low-resolution (LR) slice ``j`` is centred at the HR index
  ``c_j = phase + j * r``. The default phase ``(r - 1) / 2`` makes the first slab start flush
  with the first HR slab's outer edge, so slab ``j`` covers HR indices
  ``[c_j - r/2, c_j + r/2] = [j*r - 1/2, (j+1)*r - 1/2]``. Only slabs fully inside the HR
  extent are kept, so the LR grid has ``floor(N / r)`` slices for ``N`` HR slices (default
  phase). Non-integer ``r`` (e.g. 5.33) is fine.
* A target slice ``k`` of a grid of thickness ``h1`` sits, in LR index units, at
  ``u = n + delta`` with ``n = floor(u)`` and ``0 <= delta < 1``. When origins align this is
  the paper's ``n = floor(k h1 / h0)``, ``delta = k h1 / h0 - n``. The encoder sees the
  ``m`` LR slices ``n - (m/2 - 1) .. n + m/2`` (``n-1 .. n+2`` for ``m = 4``).

Every function here is pure and works on any slice axis; affines carry all positions, so an
output written on a target grid overlays the ground truth in any viewer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Grid",
    "thick_slice_grid",
    "default_phase",
    "target_grid",
    "slice_positions",
    "input_indices",
    "slice_count",
]

_TOL = 1e-4  # mm / voxel tolerance for "same position" checks


def _as_affine(affine: Any) -> tuple[tuple[float, ...], ...]:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("affine contains non-finite values")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise ValueError("affine is singular")
    return tuple(tuple(float(v) for v in row) for row in a)


def _guess_slice_axis(affine: np.ndarray) -> int:
    """The axis with clearly the largest spacing; else the axis closest to world S (axial)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    order = np.argsort(spacing)[::-1]
    if spacing[order[0]] > spacing[order[1]] * 1.05:
        return int(order[0])
    direction = affine[:3, :3] / spacing
    return int(np.argmax(np.abs(direction[2])))


@dataclass(frozen=True)
class Grid:
    """A 3D voxel grid: ``shape``, voxel-to-world ``affine`` (mm) and the ``slice_axis``.

    Example:
        >>> g = Grid((4, 4, 10), np.diag([1.0, 1.0, 1.25, 1.0]), slice_axis=2)
        >>> g.thickness
        1.25
    """

    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    slice_axis: int = 2

    def __init__(self, shape, affine, slice_axis: int | None = None):
        shp = tuple(int(s) for s in shape)
        if len(shp) != 3 or min(shp) < 1:
            raise ValueError(f"grid shape must be 3 positive ints, got {tuple(shape)}")
        aff = _as_affine(affine)
        axis = _guess_slice_axis(np.asarray(aff)) if slice_axis is None else int(slice_axis)
        if axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "affine", aff)
        object.__setattr__(self, "slice_axis", axis)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_image(cls, img, slice_axis: int | None = None) -> "Grid":
        """Grid of a nibabel image (its first three dimensions)."""
        return cls(tuple(img.shape[:3]), img.affine, slice_axis)

    @classmethod
    def from_json(cls, obj: dict) -> "Grid":
        return cls(tuple(obj["shape"]), obj["affine"], obj.get("slice_axis"))

    def to_json(self) -> dict:
        return {
            "shape": list(self.shape),
            "affine": [list(r) for r in self.affine],
            "slice_axis": self.slice_axis,
            "spacing": [round(float(s), 6) for s in self.spacing],
            "thickness": round(self.thickness, 6),
        }

    # --- derived properties -------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """The affine as a float64 4x4 array (a fresh copy)."""
        return np.array(self.affine, dtype=np.float64)

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.matrix[:3, :3], axis=0)

    @property
    def thickness(self) -> float:
        """Slice thickness in mm (= spacing along the slice axis; slices are contiguous)."""
        return float(self.spacing[self.slice_axis])

    @property
    def num_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def inplane_axes(self) -> tuple[int, int]:
        a, b = (ax for ax in range(3) if ax != self.slice_axis)
        return a, b

    @property
    def inplane_shape(self) -> tuple[int, int]:
        a, b = self.inplane_axes
        return self.shape[a], self.shape[b]

    def index_to_world(self, ijk) -> np.ndarray:
        ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        m = self.matrix
        return ijk @ m[:3, :3].T + m[:3, 3]

    def world_to_index(self, xyz) -> np.ndarray:
        xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        inv = np.linalg.inv(self.matrix)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def slice_centres(self) -> np.ndarray:
        """World coordinates [num_slices, 3] of the centre of each slice's first in-plane voxel."""
        ijk = np.zeros((self.num_slices, 3))
        ijk[:, self.slice_axis] = np.arange(self.num_slices)
        return self.index_to_world(ijk)

    def with_slice_axis(self, axis: int) -> "Grid":
        return Grid(self.shape, self.affine, axis)

    def same_as(self, other: "Grid", tol: float = 1e-3) -> bool:
        """Same shape and affine within ``tol`` (mm)."""
        return self.shape == other.shape and bool(np.allclose(self.matrix, other.matrix, atol=tol))

    def resliced(self, ratio: float, phase: float, count: int) -> "Grid":
        """A grid with slice spacing ``ratio`` times this one's and ``count`` slices, whose slice
        ``j`` sits at this grid's slice index ``phase + j * ratio``. In-plane unchanged."""
        if ratio <= 0 or not math.isfinite(ratio):
            raise ValueError(f"slice spacing ratio must be a positive number, got {ratio}")
        if count < 1:
            raise ValueError(f"a grid needs at least one slice, got {count}")
        a = self.slice_axis
        m = self.matrix
        step = np.eye(4)
        step[a, a] = ratio
        step[a, 3] = phase
        shape = list(self.shape)
        shape[a] = int(count)
        return Grid(tuple(shape), m @ step, a)


def slice_count(num_slices: int, ratio: float, phase: float, extent: str = "slab") -> int:
    """Number of LR slices of spacing ``ratio`` (HR index units) starting at ``phase`` that fit.

    ``extent="slab"``: the whole slab ``[c - r/2, c + r/2]`` lies inside the HR extent
    ``[-1/2, N - 1/2]``. ``extent="point"``: only the centre must lie in ``[0, N - 1]``.
    """
    if extent == "slab":
        last = num_slices - 0.5 - ratio / 2.0
        first = -0.5 + ratio / 2.0
    elif extent == "point":
        last, first = num_slices - 1.0, 0.0
    else:
        raise ValueError(f"extent must be 'slab' or 'point', got {extent!r}")
    if phase < first - 1e-6:
        raise ValueError(f"phase {phase} puts the first slab outside the volume (minimum {first})")
    return int(math.floor((last - phase) / ratio + 1e-6)) + 1 if last >= phase - 1e-6 else 0


def default_phase(ratio: float, profile: str = "rect") -> float:
    """Index of the first LR centre: flush with the HR edge for slab profiles, 0 for 'select'."""
    return 0.0 if profile == "select" else (ratio - 1.0) / 2.0


def thick_slice_grid(hr: Grid, thickness: float, *, phase: float | None = None, profile: str = "rect") -> Grid:
    """The LR grid of a thick-slice simulation of ``thickness`` mm from ``hr`` (see module doc).

    Raises:
        ValueError: thickness not positive, thinner than the HR slices, or no slab fits.
    """
    if not (isinstance(thickness, (int, float)) and math.isfinite(thickness) and thickness > 0):
        raise ValueError(f"thickness must be a positive number of mm, got {thickness}")
    if thickness < hr.thickness - 1e-6:
        raise ValueError(
            f"thickness {thickness} mm is below the input slice thickness {hr.thickness:.4g} mm "
            "(thick-slice simulation can only make slices thicker)"
        )
    ratio = thickness / hr.thickness
    ph = default_phase(ratio, profile) if phase is None else float(phase)
    count = slice_count(hr.num_slices, ratio, ph, "point" if profile == "select" else "slab")
    if count < 1:
        raise ValueError(f"no {thickness} mm slab fits in {hr.num_slices} slices of {hr.thickness:.4g} mm")
    return hr.resliced(ratio, ph, count)


def target_grid(source: Grid, thickness: float) -> Grid:
    """A grid of ``thickness`` mm slices covering the slab extent of ``source``.

    The first target slab starts at the outer edge of the first source slab; the count is the
    number of whole target slabs in the source extent. In-plane sampling is unchanged.
    """
    if not (math.isfinite(thickness) and thickness > 0):
        raise ValueError(f"thickness must be a positive number of mm, got {thickness}")
    ratio = thickness / source.thickness  # target spacing in source index units
    count = int(math.floor(source.num_slices / ratio + 1e-6))
    if count < 1:
        raise ValueError(f"target thickness {thickness} mm exceeds the input extent")
    return source.resliced(ratio, (ratio - 1.0) / 2.0, count)


def slice_positions(source: Grid, target: Grid) -> tuple[np.ndarray, np.ndarray]:
    """For every target slice ``k``: ``n[k]`` and ``delta[k]`` with ``u = n + delta`` its
    position in source slice-index units (``0 <= delta < 1``).

    Both grids must share the slice axis and in-plane sampling (same in-plane shape, and the
    same in-plane position of every slice up to ``_TOL`` voxels).
    """
    a = source.slice_axis
    if target.slice_axis != a:
        raise ValueError(f"slice axes differ: source {a}, target {target.slice_axis}")
    if source.inplane_shape != target.inplane_shape:
        raise ValueError(f"in-plane shapes differ: source {source.inplane_shape}, target {target.inplane_shape}")
    ijk = np.zeros((target.num_slices, 3))
    ijk[:, a] = np.arange(target.num_slices)
    src_idx = source.world_to_index(target.index_to_world(ijk))
    others = [ax for ax in range(3) if ax != a]
    if np.abs(src_idx[:, others]).max() > _TOL * 10:
        raise ValueError("target slices are not in the source's slice planes (in-plane offset or rotation)")
    # in-plane axes must map with unit scale as well
    probe = np.zeros((2, 3))
    for ax in others:
        probe[1] = 0
        probe[1, ax] = 1
        d = np.diff(source.world_to_index(target.index_to_world(probe)), axis=0)[0]
        e = np.zeros(3)
        e[ax] = 1
        if not np.allclose(d, e, atol=_TOL * 10):
            raise ValueError("in-plane sampling differs between source and target grids")
    u = src_idx[:, a]
    n = np.floor(u + 1e-9).astype(np.int64)
    delta = np.clip(u - n, 0.0, np.nextafter(1.0, 0.0))
    return n, delta


def input_indices(n: int | np.ndarray, count: int, m: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Source slice indices ``n-(m/2-1) .. n+m/2`` for each ``n`` (even ``m``: the slabs around
    ``u = n + delta``), or ``n-(m-1)/2 .. n+(m-1)/2`` (odd ``m``: centred on ``n``, e.g. pGAN's
    three neighbouring cross-sections), clipped to ``[0, count-1]``.

    Returns ``(idx, inside)``, both shaped ``[..., m]``: ``idx`` replicate-clipped indices and
    ``inside`` a boolean mask of which were in range (for constant padding, e.g. -1 as in the
    authors' loader). ``m = 1`` gives just ``n``.
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if count < 1:
        raise ValueError("count must be >= 1")
    offsets = np.arange(-(m // 2), m // 2 + 1) if m % 2 else np.arange(-(m // 2 - 1), m // 2 + 1)
    raw = np.asarray(n)[..., None] + offsets
    inside = (raw >= 0) & (raw < count)
    return np.clip(raw, 0, count - 1), inside

"""Per-volume robust intensity normalisation to [0, 1], invertible through its JSON sidecar.

DESIGN.md, "Intensities": each volume is clipped at percentiles of its brain (foreground)
intensities and scaled linearly to [0, 1]; networks later map [0, 1] to [-1, 1]. The authors'
data used the foreground (> 0) 0.5 / 99.5 percentiles (``reference-facts.md``), the default here.

With ``low``/``high`` the ``percentiles`` of the foreground voxels (inside ``mask``, or > 0
without a mask)::

    y = clip((x - low) / (high - low), 0, 1)  inside the foreground,   y = 0  outside.

:func:`denormalize` maps back, ``x = low + y (high - low)``, exact (up to float rounding) for
voxels whose value lay inside ``[low, high]``; clipped values come back as ``low``/``high`` and
background voxels as ``low`` (the mask is not stored in the sidecar).

Example:
    >>> y, params = normalize_array(x, percentiles=(0.5, 99.5))
    >>> np.allclose(denormalize(y, params), np.clip(x, params["low"], params["high"]))  # inside fg
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from unicoal.errors import InputError
from unicoal.geometry import Grid
from unicoal.io import load_volume, read_json, save_volume, sidecar_path, software_versions, write_json
from unicoal.io import staged_outputs

__all__ = ["NormalizeConfig", "normalize_array", "denormalize", "normalize_volume"]


@dataclass(frozen=True)
class NormalizeConfig:
    """Percentiles (in [0, 100], ``low < high``) of the foreground mapped to 0 and 1."""

    percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        p = tuple(float(v) for v in self.percentiles)
        if len(p) != 2 or not (0.0 <= p[0] < p[1] <= 100.0):
            raise InputError(
                None, f"percentiles must be two numbers 0 <= low < high <= 100, got {list(self.percentiles)}", "use e.g. --percentiles 0.5 99.5"
            )
        object.__setattr__(self, "percentiles", p)


def normalize_array(
    data: np.ndarray, mask: np.ndarray | None = None, config: NormalizeConfig = NormalizeConfig()
) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale ``data`` to [0, 1] (float32) by foreground percentiles; returns ``(y, params)``.

    ``params`` holds ``low``, ``high``, ``percentiles``, ``foreground`` and ``foreground_voxels``:
    everything :func:`denormalize` needs.

    Raises:
        InputError: empty foreground, or a foreground of constant intensity.
    """
    x = np.asarray(data, dtype=np.float32)
    fg = (x > 0) if mask is None else np.asarray(mask, dtype=bool)
    if fg.shape != x.shape:
        raise InputError(None, f"mask shape {fg.shape} differs from volume shape {x.shape}", "give a mask on the volume's grid")
    values = x[fg]
    if values.size == 0:
        raise InputError(None, "the foreground is empty (no voxel inside the mask, or none > 0)", "check the mask or the volume")
    low, high = (float(v) for v in np.percentile(values.astype(np.float64), config.percentiles))
    if not high > low:
        raise InputError(None, f"foreground intensities are constant between the percentiles ({low:g})", "check the volume or widen --percentiles")
    y = np.zeros_like(x)
    y[fg] = np.clip((values - low) / (high - low), 0.0, 1.0)
    params = {
        "low": low,
        "high": high,
        "percentiles": list(config.percentiles),
        "foreground": "mask" if mask is not None else "> 0",
        "foreground_voxels": int(values.size),
        "output_range": [0.0, 1.0],
        "formula": "y = clip((x - low) / (high - low), 0, 1) in the foreground, 0 outside; inverse x = low + y * (high - low)",
    }
    return y, params


def denormalize(data: np.ndarray, sidecar: Mapping[str, Any] | str | os.PathLike) -> np.ndarray:
    """Map normalised intensities back: ``x = low + y (high - low)`` (float32).

    ``sidecar`` is the params dict of :func:`normalize_array`, a sidecar dict containing it (key
    ``normalization``), or the path of a JSON sidecar / of the normalised NIfTI next to it.
    """
    meta: Any = sidecar
    if isinstance(sidecar, (str, os.PathLike)):
        p = Path(sidecar)
        meta = read_json(p if p.suffix == ".json" else sidecar_path(p))
    if isinstance(meta, Mapping) and "normalization" in meta:
        meta = meta["normalization"]
    if not isinstance(meta, Mapping) or "low" not in meta or "high" not in meta:
        raise InputError(str(sidecar) if isinstance(sidecar, (str, os.PathLike)) else None,
                         "no normalisation parameters (low, high) found", "pass the JSON sidecar written by unicoal normalize")
    low, high = float(meta["low"]), float(meta["high"])
    return (low + np.asarray(data, dtype=np.float64) * (high - low)).astype(np.float32)


def normalize_volume(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    mask: str | os.PathLike | None = None,
    config: NormalizeConfig = NormalizeConfig(),
) -> Path:
    """Normalise a NIfTI volume; writes ``output`` and its JSON sidecar (``normalization`` key).

    Raises:
        InputError: invalid volume or mask, mask on another grid, output equal to the input.
    """
    src, dst = Path(input), Path(output)
    if dst.resolve() == src.resolve():
        raise InputError(dst, "output would overwrite the input", "write to another path")
    data, img = load_volume(src)
    grid = Grid.from_image(img)
    mask_data = None
    if mask is not None:
        m, mimg = load_volume(mask, allow_empty=True)
        mgrid = Grid.from_image(mimg)
        if not mgrid.same_as(grid):
            raise InputError(mask, f"mask grid {mgrid.shape} differs from the volume grid {grid.shape} (shape or affine)", "give the brain mask of this volume's grid")
        mask_data = m > 0.5
        if not mask_data.any():
            raise InputError(mask, "mask is empty", "check the mask (unicoal skullstrip)")
    try:
        y, params = normalize_array(data, mask_data, config)
    except InputError as err:
        raise InputError(src, err.problem, err.fix) from None
    sidecar = {
        "step": "normalize",
        "input": str(src),
        "mask": None if mask is None else str(mask),
        "normalization": params,
        "software": software_versions("numpy"),
    }
    name = dst.name
    with staged_outputs(dst.parent) as stage:
        save_volume(stage / name, y, grid.matrix)
        write_json(sidecar_path(stage / name), sidecar)
    return dst

"""Dice of label maps per region, and its rows (paper Sec. IV: the DSC of Tables I-III, VI).

``|P & T| * 2 / (|P| + |T|)`` per region of :data:`REGION_SETS`: ``lesion`` (metric ``DSC``, any
label > 0) or ``brats`` (``DSC_WT`` {1, 2, 4}, ``DSC_TC`` {1, 4}, ``DSC_ET`` {4}, plus ``DSC`` = a
summary region, whole tumour by default), written into the shared long-format rows
(:mod:`unicoal.evaluate.rows`).

Dice conventions (stated in every row's ``convention`` column and in the JSON sidecar): a region
empty in *both* prediction and truth scores 1.0 (convention ``brats-empty-1``: the BraTS challenge
convention, the default) or NaN (``nnunet-empty-nan``: what nnU-Net's own evaluation returns), and
the sidecar flags it (``empty_both``); a region empty in exactly one of them scores 0. (Rows
written before this naming say ``nnunet`` for the BraTS convention.)

This module needs neither torch nor nnU-Net; the label maps come from
:mod:`unicoal.evaluate.nnunet` (or any segmenter).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from unicoal.errors import InputError
from unicoal.io import load_volume

__all__ = [
    "REGION_SETS",
    "EMPTY_CONVENTIONS",
    "DiceResult",
    "dice",
    "region_masks",
    "region_dice",
    "dice_files",
    "dice_rows",
    "dice_convention",
    "check_regions",
    "check_label_grid",
]

#: Dice regions per label scheme: metric name -> label values forming the region (None: any label > 0).
#: BraTS: whole tumour {1, 2, 4}, tumour core {1, 4}, enhancing tumour {4} (reference-facts).
REGION_SETS: dict[str, dict[str, tuple[int, ...] | None]] = {
    "lesion": {"DSC": None},
    "brats": {"DSC_WT": (1, 2, 4), "DSC_TC": (1, 4), "DSC_ET": (4,)},
}
#: value of a region empty in both prediction and truth -> ``convention`` column text
EMPTY_CONVENTIONS: dict[str, str] = {"one": "brats-empty-1", "nan": "nnunet-empty-nan"}


def check_regions(regions: str) -> None:
    """Refuse a region-set name that is not a key of :data:`REGION_SETS`."""
    if regions not in REGION_SETS:
        raise InputError(None, f"unknown --regions {regions!r}", f"use one of {', '.join(REGION_SETS)}")


@dataclass(frozen=True)
class DiceResult:
    """Dice of one region: value and the voxel counts it came from."""

    value: float
    intersection: int
    pred_voxels: int
    truth_voxels: int

    @property
    def empty_both(self) -> bool:
        return self.pred_voxels == 0 and self.truth_voxels == 0


def dice(pred: np.ndarray, truth: np.ndarray, *, empty: str = "one") -> DiceResult:
    """Dice ``2|P & T| / (|P| + |T|)`` of two boolean masks of equal shape.

    ``empty``: value when both masks are empty -- ``"one"`` (1.0) or ``"nan"``. One empty mask
    and one non-empty mask give 0.
    """
    if empty not in EMPTY_CONVENTIONS:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_CONVENTIONS)}, got {empty!r}")
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    inter = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    if n_p + n_t == 0:
        value = 1.0 if empty == "one" else math.nan
    else:
        value = 2.0 * inter / (n_p + n_t)
    return DiceResult(value, inter, n_p, n_t)


def region_masks(labels: np.ndarray, regions: str) -> dict[str, np.ndarray]:
    """Boolean mask per region of :data:`REGION_SETS` ``[regions]`` from an integer label map."""
    check_regions(regions)
    lab = np.rint(np.asarray(labels)).astype(np.int64)
    return {metric: (lab > 0) if values is None else np.isin(lab, values) for metric, values in REGION_SETS[regions].items()}


def region_dice(pred: np.ndarray, truth: np.ndarray, regions: str = "lesion", *, empty: str = "one") -> dict[str, DiceResult]:
    """Dice per region (metric name -> :class:`DiceResult`) of two label maps."""
    pm, tm = region_masks(pred, regions), region_masks(truth, regions)
    return {k: dice(pm[k], tm[k], empty=empty) for k in pm}


def dice_files(pred: str | os.PathLike, truth: str | os.PathLike, regions: str = "lesion", *, empty: str = "one") -> dict[str, DiceResult]:
    """Dice per region of two label-map files on the same grid (shape and affine within 1e-3 mm)."""
    p, pimg = load_volume(pred, allow_empty=True)
    t, timg = load_volume(truth, allow_empty=True)
    check_label_grid(timg, pimg, pred, f"prediction grid differs from the ground-truth grid of {truth}",
                "predict on volumes that lie on the label's grid (synthesize onto the target grid)")
    return region_dice(p, t, regions, empty=empty)


def check_label_grid(ref_img, other_img, other_path, problem: str, fix: str) -> None:
    """The one grid check of the segmentation code: shape and affine (:meth:`unicoal.geometry.Grid.same_as`)."""
    from unicoal.geometry import Grid

    g_ref, g_other = Grid.from_image(ref_img), Grid.from_image(other_img)
    if not g_ref.same_as(g_other):
        raise InputError(other_path, f"{problem} (shape {g_other.shape} vs {g_ref.shape}, or the affine)", fix)


def dice_convention(empty: str = "one") -> str:
    """``convention`` column text for Dice rows (constant for a run, so statistics group it)."""
    if empty not in EMPTY_CONVENTIONS:
        raise InputError(None, f"unknown empty-region convention {empty!r}", f"use one of {', '.join(EMPTY_CONVENTIONS)}")
    return EMPTY_CONVENTIONS[empty]


def dice_rows(results: Mapping[str, DiceResult], *, method: str, subject: str, dataset: str = "", task: str = "",
              source: str = "", target: str = "", scale: float = 1.0, table: str = "", empty: str = "one",
              summary: str | None = "DSC_WT"):
    """Result rows (:class:`unicoal.evaluate.rows.ResultRow`) of one subject's region Dice values.

    For BraTS region sets ``summary`` names the region also written as plain ``DSC`` (the single
    DSC column of Tables I and VI; the paper does not say which region -- whole tumour by default;
    ``"mean"`` averages the three; ``None`` writes none).
    """
    from unicoal.evaluate.rows import ResultRow

    conv = dice_convention(empty)
    values = {k: r.value for k, r in results.items()}
    if "DSC" not in values and summary is not None:
        if summary == "mean":
            vals = [v for v in values.values() if not math.isnan(v)]
            values["DSC"] = float(np.mean(vals)) if vals else math.nan
        elif summary in values:
            values["DSC"] = values[summary]
        else:
            raise InputError(None, f"unknown summary region {summary!r}", f"use one of {', '.join(values)} or mean")
    return [ResultRow(table=table, dataset=dataset, task=task, method=method, subject=subject, source=source,
                      target=target, scale=float(scale), metric=k, value=float(v), convention=conv)
            for k, v in values.items()]


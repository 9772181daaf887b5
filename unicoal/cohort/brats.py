"""BraTS 2019 adapter: case folders -> samplesheet with the tumour segmentation as label.

Layout of the official release (``MICCAI_BraTS_2019_Data_Training/{HGG,LGG}/<case>/``)::

    <case>/<case>_t1.nii.gz  _t1ce.nii.gz  _t2.nii.gz  _flair.nii.gz  _seg.nii.gz

Modalities map to ``T1, T1CE, T2, FLAIR``; every row of a case carries the ``_seg`` file as its
label (labels 1, 2, 4 -> whole tumour / core / enhancing, reference-facts). The paper (Sec. IV,
"BRATS") randomly divides 335 BraTS'19 training cases into 235 / 50 / 50 subjects for training,
validation and testing. Validation/test releases have no ``_seg``: their label stays empty unless
``require_label``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from unicoal.cohort.samplesheet import SampleRow, save_cohort
from unicoal.errors import InputError

__all__ = ["BRATS_SUFFIXES", "PAPER_SPLIT", "scan_brats", "brats_samplesheet"]

BRATS_SUFFIXES = {"T1": "t1", "T1CE": "t1ce", "T2": "t2", "FLAIR": "flair"}
PAPER_SPLIT = (235, 50, 50)


def _find(case_dir: Path, case: str, suffix: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        p = case_dir / f"{case}_{suffix}{ext}"
        if p.is_file():
            return p
    return None


def scan_brats(root: str | os.PathLike, *, modalities: Sequence[str] = ("T1", "T1CE", "T2", "FLAIR"), require_label: bool = False) -> list[SampleRow]:
    """Rows for every case folder below ``root`` holding all ``modalities`` (and ``_seg`` if ``require_label``)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(base, "BraTS root folder not found", "give the folder holding the <case>/<case>_t1.nii.gz folders")
    bad = [m for m in modalities if m not in BRATS_SUFFIXES]
    if bad:
        raise InputError(None, f"BraTS has no modality {', '.join(bad)} (allowed: {', '.join(BRATS_SUFFIXES)})", "drop it from --modalities")
    cases: dict[str, Path] = {}
    for t1 in sorted(base.rglob("*_t1.nii*")):
        case = t1.parent.name
        if not t1.name.startswith(case + "_t1.nii"):
            continue  # a file not inside its own case folder
        if case in cases:
            raise InputError(t1.parent, f"case {case} appears twice (also {cases[case]})", "keep one copy of each case below --root")
        cases[case] = t1.parent
    rows = []
    for case, folder in sorted(cases.items()):
        files = {m: _find(folder, case, BRATS_SUFFIXES[m]) for m in modalities}
        if any(p is None for p in files.values()):
            continue
        seg = _find(folder, case, "seg")
        if seg is None and require_label:
            continue
        rows.extend(SampleRow(case, m, files[m].resolve(), seg.resolve() if seg else None) for m in modalities)
    return rows


def brats_samplesheet(root: str | os.PathLike, out: str | os.PathLike, *, modalities: Sequence[str] = ("T1", "T1CE", "T2", "FLAIR"),
                      require_label: bool = False, fractions: Sequence[float] = PAPER_SPLIT, seed: int = 0) -> Path:
    """Write the BraTS samplesheet (absolute paths, ``label`` = ``_seg``, splits by case)."""
    rows = scan_brats(root, modalities=modalities, require_label=require_label)
    if not rows:
        need = ", ".join(f"_{BRATS_SUFFIXES[m]}" for m in modalities) + (", _seg" if require_label else "")
        raise InputError(root, f"no BraTS case folder with all of {need}", "check --root (the folder above the case folders)")
    return save_cohort(rows, out, fractions=fractions, seed=seed, source=root, relative=False)

"""Samplesheet CSVs: the one input format of the pipeline (DESIGN.md Sec. 3).

Columns ``subject,modality,path[,label][,split]``, one row per subject and modality:

* ``subject``  -- subject id (letters, digits, ``-``, ``_``, ``.``);
* ``modality`` -- one of :data:`MODALITIES` (``T1, T2, PD, FLAIR, T1CE``); common spellings
  (``t1``, ``T1w``, ``T2w``, ``PDw``, ``T1Gd``, ``T1c`` ...) are accepted and canonicalised;
* ``path``     -- the NIfTI volume; relative paths resolve against the CSV's folder;
* ``label``    -- optional lesion label map (paper Sec. IV: BraTS tumour / CSDH clot masks used for
  the DSC of Tables I-III), empty when there is none;
* ``split``    -- optional ``train``, ``val`` or ``test``. When absent, :func:`assign_splits` draws
  a deterministic split *by subject* (all modalities of a subject share a split), as the paper
  divides subjects, not images (e.g. IXI 285/12/12, CSDH and ADNI 70/10/20).

Every problem is raised as :class:`unicoal.errors.InputError`: one line naming the file, the CSV
line and the fix.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.io import read_csv
from unicoal.io import atomic_path

__all__ = [
    "MODALITIES",
    "SPLITS",
    "REQUIRED_COLUMNS",
    "COLUMNS",
    "SampleRow",
    "canonical_modality",
    "read_samplesheet",
    "validate_rows",
    "write_samplesheet",
    "assign_splits",
    "split_counts",
    "with_splits",
    "subjects_of",
    "check_files_exist",
    "save_cohort",
]

MODALITIES: tuple[str, ...] = ("T1", "T2", "PD", "FLAIR", "T1CE")
SPLITS: tuple[str, ...] = ("train", "val", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "modality", "path")
COLUMNS: tuple[str, ...] = ("subject", "modality", "path", "label", "split")

_ALIASES = {
    "T1": "T1", "T1W": "T1", "T1-W": "T1", "MPRAGE": "T1",
    "T2": "T2", "T2W": "T2", "T2-W": "T2",
    "PD": "PD", "PDW": "PD", "PD-W": "PD",
    "FLAIR": "FLAIR", "T2FLAIR": "FLAIR", "T2-FLAIR": "FLAIR",
    "T1CE": "T1CE", "T1GD": "T1CE", "T1C": "T1CE", "T1-CE": "T1CE", "T1POST": "T1CE",
}
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def canonical_modality(name: str) -> str | None:
    """Canonical modality for a user spelling (``"t1w"`` -> ``"T1"``), or ``None`` if unknown."""
    return _ALIASES.get(str(name).strip().upper().replace("_", "-"))


@dataclass(frozen=True)
class SampleRow:
    """One samplesheet row. Paths are absolute once read through :func:`read_samplesheet`."""

    subject: str
    modality: str
    path: Path
    label: Path | None = None
    split: str | None = None

    def __post_init__(self):
        if not isinstance(self.subject, str) or not _SUBJECT_RE.match(self.subject):
            raise ValueError(f"subject id {self.subject!r} must be letters, digits, '.', '-' or '_'")
        canon = canonical_modality(self.modality)
        if canon is None:
            raise ValueError(f"unknown modality {self.modality!r} (allowed: {', '.join(MODALITIES)})")
        object.__setattr__(self, "modality", canon)
        object.__setattr__(self, "path", Path(self.path))
        if self.label is not None:
            object.__setattr__(self, "label", Path(self.label))
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} must be one of {', '.join(SPLITS)}")


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def read_samplesheet(path: str | os.PathLike, *, check_files: bool = True) -> list[SampleRow]:
    """Read and validate a samplesheet; returns rows with absolute paths.

    Raises:
        InputError: missing file or column, unknown modality (the message lists the allowed
            names), duplicate subject/modality, missing image or label file, bad split value,
            or an empty sheet. The message names the CSV line.
    """
    sheet = Path(path)
    if not sheet.exists():
        raise InputError(sheet, "samplesheet not found", "check the path")
    if sheet.is_dir():
        raise InputError(sheet, "is a directory, expected a samplesheet CSV", "give the CSV file")
    base = sheet.resolve().parent
    header, records = read_csv(sheet, "samplesheet")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            sheet,
            f"missing required column(s) {', '.join(missing)} (header: {','.join(header) or 'empty'})",
            f"the first line must be {','.join(COLUMNS)} (label and split optional)",
        )
    rows: list[SampleRow] = []
    seen: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records):
        line = i + 2
        where = f"line {line}"
        if not any(_cell(rec, k) for k in header):
            continue  # blank line
        subject, modality, img = _cell(rec, "subject"), _cell(rec, "modality"), _cell(rec, "path")
        label, split = _cell(rec, "label"), _cell(rec, "split").lower()
        if not subject:
            raise InputError(sheet, f"{where}: empty subject", "give every row a subject id")
        if not _SUBJECT_RE.match(subject):
            raise InputError(sheet, f"{where}: subject id {subject!r} has characters other than letters, digits, '.', '-', '_'", "rename the subject")
        canon = canonical_modality(modality)
        if canon is None:
            raise InputError(sheet, f"{where}: unknown modality {modality!r} (allowed: {', '.join(MODALITIES)})", "use one of the allowed modality names")
        key = (subject, canon)
        if key in seen:
            raise InputError(sheet, f"{where}: duplicate subject/modality {subject}/{canon} (first on line {seen[key]})", "keep one row per subject and modality")
        seen[key] = line
        if not img:
            raise InputError(sheet, f"{where}: empty path for {subject}/{canon}", "give the NIfTI path (relative paths resolve against the CSV's folder)")
        img_path = _resolve(base, img)
        if check_files and not img_path.is_file():
            raise InputError(sheet, f"{where}: image file not found: {img_path}", "fix the path (relative paths resolve against the CSV's folder)")
        label_path = _resolve(base, label) if label else None
        if check_files and label_path is not None and not label_path.is_file():
            raise InputError(sheet, f"{where}: label file not found: {label_path}", "fix the label path or leave the cell empty")
        if split and split not in SPLITS:
            raise InputError(sheet, f"{where}: bad split {split!r} (allowed: {', '.join(SPLITS)})", "use train, val or test, or leave the column out to assign splits")
        rows.append(SampleRow(subject, canon, img_path, label_path, split or None))
    if not rows:
        raise InputError(sheet, "samplesheet has no rows", "add one row per subject and modality")
    validate_rows(rows, source=sheet)
    return rows


def validate_rows(rows: Sequence[SampleRow], *, source: str | os.PathLike | None = None) -> None:
    """Checks across rows: unique subject/modality, one split per subject (all or none given)."""
    seen: set[tuple[str, str]] = set()
    split_of: dict[str, str | None] = {}
    for r in rows:
        key = (r.subject, r.modality)
        if key in seen:
            raise InputError(source, f"duplicate subject/modality {r.subject}/{r.modality}", "keep one row per subject and modality")
        seen.add(key)
        if r.subject in split_of and split_of[r.subject] != r.split:
            raise InputError(source, f"subject {r.subject} has rows with different splits ({split_of[r.subject]} and {r.split})", "give all rows of a subject the same split")
        split_of[r.subject] = r.split
    given = {s is not None for s in split_of.values()}
    if len(given) > 1:
        missing = sorted(s for s, v in split_of.items() if v is None)
        raise InputError(source, f"split given for some subjects but not for {', '.join(missing[:5])}", "fill the split column for every row or drop the column")


def _rel(path: Path, base: Path, relative: bool) -> str:
    path = Path(path)
    if relative:
        try:
            return Path(os.path.relpath(path.resolve(), base)).as_posix()
        except ValueError:  # different drive on Windows
            pass
    return str(path.resolve())


def write_samplesheet(path: str | os.PathLike, rows: Iterable[SampleRow], *, relative: bool = True) -> Path:
    """Write rows atomically, sorted by subject then modality order.

    With ``relative=True`` paths are written relative to the CSV's folder (so a cohort folder can
    be moved as a whole); otherwise absolute. ``label`` / ``split`` columns are written only when
    some row has them.
    """
    rows = list(rows)
    dest = Path(path)
    if not rows:
        raise InputError(dest, "no samplesheet rows to write", "check the input folder or filters")
    validate_rows(rows, source=dest)
    order = {m: i for i, m in enumerate(MODALITIES)}
    rows.sort(key=lambda r: (r.subject, order[r.modality]))
    cols = list(REQUIRED_COLUMNS)
    if any(r.label is not None for r in rows):
        cols.append("label")
    if any(r.split is not None for r in rows):
        cols.append("split")
    base = dest.resolve().parent
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(cols)
            for r in rows:
                values = {
                    "subject": r.subject,
                    "modality": r.modality,
                    "path": _rel(r.path, base, relative),
                    "label": "" if r.label is None else _rel(r.label, base, relative),
                    "split": r.split or "",
                }
                w.writerow([values[c] for c in cols])
    return dest


def split_counts(n: int, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> tuple[int, int, int]:
    """Numbers of (train, val, test) subjects for ``n`` subjects.

    Test and validation get ``round(n * f)``; with 3 or more subjects at least one test subject,
    with 4 or more at least one validation subject (when its fraction is > 0); train keeps the
    rest and at least one subject. Paper: CSDH/ADNI 70/10/20 subjects of 100.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test), got {tuple(fractions)}")
    total = float(sum(fractions))
    f_train, f_val, f_test = (f / total for f in fractions)
    if n <= 0:
        return (0, 0, 0)
    if n < 3:
        return (n, 0, 0) if f_train > 0 else (0, 0, n)
    n_test = int(round(n * f_test))
    n_val = int(round(n * f_val))
    if f_test > 0:
        n_test = max(n_test, 1)
    if f_val > 0 and n >= 4:
        n_val = max(n_val, 1)
    if f_train > 0:
        while n - n_test - n_val < 1:
            if n_val >= n_test and n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
    return (n - n_test - n_val, n_val, n_test)


def assign_splits(subjects: Iterable[str], fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, str]:
    """Deterministic subject -> split map: sort ids, permute with ``seed``, cut by :func:`split_counts`.

    The result depends only on the set of ids, the fractions and the seed (not on row order).
    """
    ids = sorted(set(subjects))
    n_train, n_val, _ = split_counts(len(ids), fractions)
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).permutation(len(ids))
    out = {}
    for rank, idx in enumerate(perm):
        out[ids[idx]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def with_splits(rows: Sequence[SampleRow], fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0, *, overwrite: bool = False) -> list[SampleRow]:
    """Rows with a split on each; existing splits are kept unless ``overwrite``."""
    if not overwrite and rows and all(r.split is not None for r in rows):
        return list(rows)
    splits = assign_splits((r.subject for r in rows), fractions, seed)
    return [replace(r, split=splits[r.subject]) for r in rows]


def subjects_of(rows: Sequence[SampleRow]) -> dict[str, dict[str, SampleRow]]:
    """``{subject: {modality: row}}`` in sheet order."""
    out: dict[str, dict[str, SampleRow]] = {}
    for r in rows:
        out.setdefault(r.subject, {})[r.modality] = r
    return out


def check_files_exist(rows: Sequence[SampleRow], *, source: str | os.PathLike | None = None) -> None:
    """Raise :class:`InputError` naming the first row whose image or label file does not exist."""
    for r in rows:
        if not Path(r.path).is_file():
            raise InputError(source, f"{r.subject}/{r.modality}: image file not found: {r.path}", "fix the path or remove the row")
        if r.label is not None and not Path(r.label).is_file():
            raise InputError(source, f"{r.subject}/{r.modality}: label file not found: {r.label}", "fix the label path or leave it empty")


def save_cohort(rows: Sequence[SampleRow], out: str | os.PathLike, *, fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0,
                source: str | os.PathLike | None = None, relative: bool = True) -> Path:
    """What every adapter ends with: check files, assign splits where absent, write the sheet atomically."""
    rows = list(rows)
    if not rows:
        raise InputError(source, "no subjects found", "check the input folder, the file names and the filters")
    validate_rows(rows, source=source)
    check_files_exist(rows, source=source)
    return write_samplesheet(out, with_splits(rows, fractions, seed), relative=relative)

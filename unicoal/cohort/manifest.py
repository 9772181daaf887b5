"""Generic manifest adapter (ADNI, in-house cohorts such as the paper's CSDH) -> samplesheet.

Two manifest shapes are understood, column names given by the user:

* **long**: one row per image, columns for subject, modality and path (plus optional label and
  split), e.g. an ADNI search export::

      unicoal cohort manifest --manifest adni.csv --out sheet.csv \\
          --subject-col "Subject ID" --modality-col Description --path-col File \\
          --modality-map MPRAGE=T1 --modality-map "Axial FLAIR=FLAIR"

* **wide**: one row per subject, one column per modality (``--column T1=t1_file``)::

      unicoal cohort manifest --manifest csdh.csv --out sheet.csv --subject-col id \\
          --column T1=t1 --column FLAIR=flair --label-col clot_mask

Relative paths resolve against ``--base`` (default: the manifest's folder). Modality names pass
through ``--modality-map`` then the canonical spellings (``T1, T2, PD, FLAIR, T1CE``). Rows whose
modality maps to nothing are an error unless ``--skip-unknown``. The paper splits CSDH and ADNI
70 / 10 / 20 subjects (the default fractions).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from unicoal.cohort.samplesheet import MODALITIES, SampleRow, canonical_modality, save_cohort, SPLITS
from unicoal.errors import InputError

__all__ = ["ManifestSpec", "PAPER_SPLIT", "parse_mapping", "read_manifest", "manifest_samplesheet"]

PAPER_SPLIT = (70, 10, 20)


def parse_mapping(items, what: str) -> dict[str, str]:
    """``["T1=t1_file", ...]`` -> ``{"T1": "t1_file"}``; one-line error on a malformed item."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(None, f"{what} {item!r} is not KEY=VALUE", f"write e.g. {what} T1=t1_path")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ManifestSpec:
    """How to read a manifest. Exactly one of ``modality_col``+``path_col`` (long) or ``columns`` (wide)."""

    subject_col: str
    modality_col: str | None = None
    path_col: str | None = None
    columns: dict[str, str] = field(default_factory=dict)   # wide: canonical modality -> column
    label_col: str | None = None
    split_col: str | None = None
    modality_map: dict[str, str] = field(default_factory=dict)  # raw value -> modality
    skip_unknown: bool = False

    def __post_init__(self):
        long = self.modality_col is not None or self.path_col is not None
        if long and self.columns:
            raise InputError(None, "both --modality-col/--path-col and --column given", "use --modality-col and --path-col (one row per image) or --column MOD=COL (one row per subject)")
        if not self.columns and (self.modality_col is None or self.path_col is None):
            raise InputError(None, "manifest format not given", "pass --modality-col and --path-col, or one --column MOD=COL per modality")
        canon_cols = {}
        for mod, col in self.columns.items():
            c = canonical_modality(mod)
            if c is None:
                raise InputError(None, f"--column {mod}={col}: unknown modality {mod!r} (allowed: {', '.join(MODALITIES)})", "use a canonical modality name before '='")
            if c in canon_cols:
                raise InputError(None, f"two --column options for {c} ({canon_cols[c]} and {col})", "give one column per modality")
            canon_cols[c] = col
        object.__setattr__(self, "columns", canon_cols)
        for raw, mod in self.modality_map.items():
            if canonical_modality(mod) is None:
                raise InputError(None, f"--modality-map {raw}={mod}: unknown modality {mod!r} (allowed: {', '.join(MODALITIES)})", "map to a canonical modality name")

    def needed_columns(self) -> list[str]:
        cols = [self.subject_col, *(c for c in (self.modality_col, self.path_col) if c), *self.columns.values()]
        return cols + [c for c in (self.label_col, self.split_col) if c]

    def modality_of(self, raw: str) -> str | None:
        raw = raw.strip()
        mapped = self.modality_map.get(raw)
        if mapped is None:
            mapped = next((v for k, v in self.modality_map.items() if k.lower() == raw.lower()), raw)
        return canonical_modality(mapped)


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).resolve()


def read_manifest(manifest: str | os.PathLike, spec: ManifestSpec, *, base: str | os.PathLike | None = None) -> list[SampleRow]:
    """Rows of a manifest, with the manifest line named in every error."""
    src = Path(manifest)
    if not src.is_file():
        raise InputError(src, "manifest not found", "check --manifest")
    root = Path(base).resolve() if base else src.resolve().parent
    try:
        with open(src, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(src, f"not a readable CSV ({err})", "save the manifest as UTF-8 CSV") from None
    missing = [c for c in spec.needed_columns() if c not in header]
    if missing:
        raise InputError(src, f"missing column(s) {', '.join(repr(c) for c in missing)} (columns: {', '.join(header)})", "fix the --*-col / --column names")
    rows: list[SampleRow] = []
    for i, rec in enumerate(records):
        where = f"line {i + 2}"
        get = lambda col: (rec.get(col) or "").strip() if col else ""  # noqa: E731
        subject = get(spec.subject_col)
        if not subject:
            if not any((v or "").strip() for v in rec.values()):
                continue
            raise InputError(src, f"{where}: empty subject in column {spec.subject_col!r}", "fill the subject id")
        label = get(spec.label_col)
        split = get(spec.split_col).lower() or None
        if split is not None and split not in SPLITS:
            raise InputError(src, f"{where}: bad split {split!r} (allowed: {', '.join(SPLITS)})", "use train, val or test")
        if spec.columns:
            items = [(mod, get(col)) for mod, col in spec.columns.items()]
            items = [(m, v) for m, v in items if v]  # an empty cell = modality not acquired
        else:
            raw = get(spec.modality_col)
            mod = spec.modality_of(raw)
            if mod is None:
                if spec.skip_unknown:
                    continue
                raise InputError(src, f"{where}: unknown modality {raw!r} (allowed: {', '.join(MODALITIES)})", f"add --modality-map '{raw}=<MODALITY>' or --skip-unknown")
            items = [(mod, get(spec.path_col))]
        for mod, value in items:
            if not value:
                raise InputError(src, f"{where}: empty path for {subject}/{mod}", "fill the path column")
            path = _resolve(root, value)
            if not path.is_file():
                raise InputError(src, f"{where}: image file not found: {path}", "fix the path (relative paths resolve against --base or the manifest's folder)")
            lab = _resolve(root, label) if label else None
            if lab is not None and not lab.is_file():
                raise InputError(src, f"{where}: label file not found: {lab}", "fix the label path")
            try:
                rows.append(SampleRow(subject, mod, path, lab, split))
            except ValueError as err:
                raise InputError(src, f"{where}: {err}", "fix the row") from None
    seen: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r.subject, r.modality)
        if key in seen:
            raise InputError(src, f"duplicate subject/modality {r.subject}/{r.modality}", "keep one image per subject and modality (filter the manifest first)")
        seen[key] = 1
    return rows


def manifest_samplesheet(manifest: str | os.PathLike, out: str | os.PathLike, spec: ManifestSpec, *, base: str | os.PathLike | None = None,
                         fractions=PAPER_SPLIT, seed: int = 0) -> Path:
    """Write the samplesheet of a manifest (absolute paths; splits from ``split_col`` or assigned)."""
    rows = read_manifest(manifest, spec, base=base)
    if not rows:
        raise InputError(manifest, "manifest has no usable rows", "check the column options and --modality-map")
    return save_cohort(rows, out, fractions=fractions, seed=seed, source=manifest, relative=False)

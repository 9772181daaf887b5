"""Per-subject result rows: the ONE CSV schema shared by ``evaluate``, ``segment``, ``stats`` and ``tables``.

Long format, one metric per row (paper Sec. IV: PSNR, SSIM, DSC per test subject)::

    table,dataset,task,method,subject,source,target,scale,metric,value,convention

* ``table``: the paper table a row feeds (``table1`` .. ``table6``) or empty for "any table whose
  cell selector matches".
* ``task``: ``CMS``, ``SR`` or ``CMSR`` (empty allowed for rows that are not synthesis results,
  e.g. DSC of the real images).
* ``source`` / ``target``: canonical modality names (T1, T2, PD, FLAIR, T1CE).
* ``scale``: thickness ratio ``h0 / h1`` as a plain number (``1``, ``2``, ``5.33``).
* ``metric``: ``PSNR``, ``SSIM``, ``MAE``, ``PSNR_slice``, ``SSIM_slice``, ``MAE_slice``, ``DSC``,
  ``DSC_WT`` ... (any name; tables pick the ones they show).
* ``value``: a float; ``inf`` (identical volumes: PSNR) and ``nan`` (undefined, e.g. Dice of a
  region empty in both volumes) are written literally as ``inf`` / ``nan``.
* ``convention``: how the value was computed (``published``, ``brainmask``, ``wang`` for image
  metrics; ``brats-empty-1`` / ``nnunet-empty-nan`` for Dice).

Example:
    >>> r = ResultRow(table="table4", dataset="IXI", task="SR", method="Uni-COAL", subject="IXI002",
    ...               source="T1", target="T1", scale=2.0, metric="PSNR", value=34.9, convention="published")
    >>> write_rows("rows.csv", [r]); read_rows(["rows.csv"])[0] == r
    True
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterable, Sequence

from unicoal.errors import InputError
from unicoal.io import write_csv

__all__ = [
    "ROW_COLUMNS",
    "TASKS",
    "ResultRow",
    "write_rows",
    "read_rows",
    "format_scale",
    "format_value",
    "parse_value",
]

ROW_COLUMNS: tuple[str, ...] = (
    "table", "dataset", "task", "method", "subject", "source", "target", "scale", "metric", "value", "convention",
)
TASKS: tuple[str, ...] = ("CMS", "SR", "CMSR")


def format_scale(scale: float) -> str:
    """``2.0 -> "2"``, ``5.33 -> "5.33"`` (shortest round-trip text, no trailing ``.0``)."""
    text = repr(float(scale))
    return text[:-2] if text.endswith(".0") else text


def format_value(value: float) -> str:
    """Shortest round-trip text of a float; ``inf``, ``-inf`` and ``nan`` spelled out."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def parse_value(text: str) -> float:
    """Inverse of :func:`format_value`; empty text is NaN. Raises ``ValueError`` on junk."""
    t = str(text).strip().lower()
    if t in ("", "nan", "na"):
        return math.nan
    if t in ("inf", "+inf", "infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    return float(t)


@dataclass(frozen=True)
class ResultRow:
    """One subject x one metric of one method on one task (see module docstring for the columns)."""

    table: str
    dataset: str
    task: str
    method: str
    subject: str
    source: str
    target: str
    scale: float
    metric: str
    value: float
    convention: str

    def __post_init__(self):
        for f in fields(self):
            if f.name not in ("scale", "value") and not isinstance(getattr(self, f.name), str):
                raise TypeError(f"ResultRow.{f.name} must be str, got {type(getattr(self, f.name)).__name__}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "value", float(self.value))
        if self.task and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)} or empty, got {self.task!r}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be a positive number (thickness ratio h0/h1), got {self.scale}")
        if not self.method:
            raise ValueError("method must not be empty")
        if not self.metric:
            raise ValueError("metric must not be empty")

    def as_dict(self) -> dict[str, str]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["scale"] = format_scale(self.scale)
        out["value"] = format_value(self.value)
        return out

    def with_(self, **changes) -> "ResultRow":
        return replace(self, **changes)


def write_rows(path: str | os.PathLike, rows: Iterable[ResultRow]) -> Path:
    """Write rows as CSV (header = :data:`ROW_COLUMNS`) atomically."""
    return write_csv(path, ROW_COLUMNS, [r.as_dict() for r in rows])


def read_rows(paths: Sequence[str | os.PathLike]) -> list[ResultRow]:
    """Read and validate one or more row CSVs (extra columns are ignored).

    Raises:
        InputError: missing file, missing columns, or a bad value (the line number is named).
    """
    out: list[ResultRow] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise InputError(p, "file not found", "pass a per-subject CSV written by `unicoal evaluate` or `unicoal segment`")
        with open(p, newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in ROW_COLUMNS if c not in header]
            if missing:
                raise InputError(p, f"missing column(s) {', '.join(missing)} (got {', '.join(header) or 'no header'})",
                                 f"the row CSV needs the columns {','.join(ROW_COLUMNS)}")
            for lineno, rec in enumerate(reader, start=2):
                try:
                    kw = {c: (rec[c] or "").strip() for c in ROW_COLUMNS}
                    kw["scale"] = float(kw["scale"] or "1")
                    kw["value"] = parse_value(kw["value"])
                    out.append(ResultRow(**kw))
                except (ValueError, TypeError) as err:
                    raise InputError(p, f"line {lineno}: {err}", "fix or regenerate the row") from None
    return out

"""Summary records (mean +- std per table cell): the paper's published numbers and our aggregates.

``reports/reference/tableN.csv`` hold the numbers of Tables I-VI transcribed from the paper,
one tidy row per printed cell (:data:`SUMMARY_COLUMNS`)::

    table,group,method,task,dataset,source,target,scale,metric,mean,std,bold

``mean`` and ``std`` are kept exactly as printed (``0.912``, ``1.00``), ``bold`` is 1 where the
paper prints the value in bold, cells printed as '-' have no row. Table V (capabilities) uses
``metric`` = ``Spec.`` / ``Arb. In`` / ``Arb. Out`` and ``mean`` = 1 (tick) or 0, with empty
dataset, modalities and scale. ``unicoal tables`` writes our aggregates in the same schema
(plus ``n``, ``convention`` and p-values), so either file can be fed back as input.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.evaluate.rows import ROW_COLUMNS, ResultRow, format_scale, format_value, parse_value, read_rows
from unicoal.evaluate.stats import method_key
from unicoal.report.specs import table_key

__all__ = [
    "SUMMARY_COLUMNS",
    "SummaryRecord",
    "cell_key",
    "aggregate_rows",
    "read_summary",
    "write_summary",
    "read_results",
    "default_reference_dir",
    "load_reference",
]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "table", "group", "method", "task", "dataset", "source", "target", "scale", "metric", "mean", "std", "bold",
)
_EXTRA_COLUMNS = ("n", "convention", "wilcoxon_p", "ttest_p")


def cell_key(method: str, dataset: str, task: str, source: str, target: str, scale: float | str, metric: str) -> tuple:
    """Normalised identity of a cell used to match rows to table specs (case-insensitive names)."""
    s = float(scale) if str(scale).strip() not in ("", "nan") else 1.0
    return (method_key(method), dataset.strip().lower(), task.strip().upper(), source.strip().upper(),
            target.strip().upper(), round(s, 6), metric.strip())


@dataclass(frozen=True)
class SummaryRecord:
    """Mean +- std of one method on one cell. ``mean_text``/``std_text`` keep printed strings."""

    table: str
    group: str
    method: str
    task: str
    dataset: str
    source: str
    target: str
    scale: float
    metric: str
    mean: float
    std: float
    n: int = 0
    bold: bool = False
    convention: str = ""
    mean_text: str = ""
    std_text: str = ""

    @property
    def key(self) -> tuple:
        return cell_key(self.method, self.dataset, self.task, self.source, self.target, self.scale, self.metric)


def _std(values: np.ndarray, ddof: int) -> float:
    if values.size < 2 or values.size - ddof <= 0:  # no spread from one subject: printed as the mean alone
        return math.nan
    if np.any(np.isinf(values)):
        return math.nan
    return float(np.std(values, ddof=ddof))


def aggregate_rows(rows: Iterable[ResultRow], ddof: int = 0) -> list[SummaryRecord]:
    """Mean and standard deviation over subjects per (table, method, cell, convention).

    NaN values (undefined, e.g. Dice of a region absent in both volumes) are left out and
    ``n`` counts the rest; any ``inf`` (identical volumes) makes the mean ``inf`` and the std NaN,
    as does a single subject (a std over one value would print as a misleading ``±0.00``).
    ``ddof=0`` is numpy's default (population std), the usual choice in synthesis papers.
    """
    groups: dict[tuple, list[ResultRow]] = {}
    seen: set[tuple] = set()
    for r in rows:
        k = (table_key(r.table), r.method, r.dataset, r.task, r.source, r.target, r.scale, r.metric, r.convention)
        if (k, r.subject) in seen:
            raise ValueError(f"subject {r.subject!r} appears twice for {r.method} {r.metric} on {r.dataset} "
                             f"{r.source}->{r.target} x{format_scale(r.scale)} ({r.convention}); pass each row file once")
        seen.add((k, r.subject))
        groups.setdefault(k, []).append(r)
    out = []
    for (tab, method, dataset, task, source, target, scale, metric, conv), rs in groups.items():
        vals = np.array([r.value for r in rs], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        mean = math.nan if vals.size == 0 else (math.inf if np.any(np.isposinf(vals)) else float(np.mean(vals)))
        out.append(SummaryRecord(tab, "", method, task, dataset, source, target, scale, metric, mean, _std(vals, ddof),
                                 n=int(vals.size), convention=conv))
    return out


def read_summary(path: str | os.PathLike) -> list[SummaryRecord]:
    """Read a summary/reference CSV (:data:`SUMMARY_COLUMNS`, optional ``n``, ``convention``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found", "pass a reference/summary CSV")
    out = []
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SUMMARY_COLUMNS if c not in (reader.fieldnames or []) and c != "bold"]
        if missing:
            raise InputError(p, f"missing column(s) {', '.join(missing)}", f"a summary CSV needs {','.join(SUMMARY_COLUMNS)}")
        for lineno, rec in enumerate(reader, start=2):
            try:
                mean_text = (rec["mean"] or "").strip()
                std_text = (rec["std"] or "").strip()
                scale_text = (rec["scale"] or "").strip()
                out.append(SummaryRecord(
                    table=table_key(rec["table"] or ""), group=rec["group"] or "", method=rec["method"].strip(),
                    task=(rec["task"] or "").strip(), dataset=(rec["dataset"] or "").strip(),
                    source=(rec["source"] or "").strip(), target=(rec["target"] or "").strip(),
                    scale=float(scale_text) if scale_text else 1.0, metric=rec["metric"].strip(),
                    mean=parse_value(mean_text), std=parse_value(std_text),
                    n=int(rec.get("n") or 0), bold=(rec.get("bold") or "0").strip() in ("1", "true", "True"),
                    convention=(rec.get("convention") or "").strip(), mean_text=mean_text, std_text=std_text,
                ))
            except (ValueError, AttributeError) as err:
                raise InputError(p, f"line {lineno}: {err}", "fix the row") from None
    return out


def write_summary(path: str | os.PathLike, records: Sequence[SummaryRecord], pvalues: dict | None = None) -> Path:
    """Write records in :data:`SUMMARY_COLUMNS` + ``n, convention, wilcoxon_p, ttest_p``."""
    from unicoal.io import atomic_path

    dest = Path(path)
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(SUMMARY_COLUMNS + _EXTRA_COLUMNS))
            w.writeheader()
            for r in records:
                wp, tp = (pvalues or {}).get((r.table, r.key), (math.nan, math.nan))
                w.writerow({
                    "table": r.table, "group": r.group, "method": r.method, "task": r.task, "dataset": r.dataset,
                    "source": r.source, "target": r.target, "scale": format_scale(r.scale), "metric": r.metric,
                    "mean": r.mean_text or format_value(r.mean), "std": r.std_text or format_value(r.std),
                    "bold": int(r.bold), "n": r.n, "convention": r.convention,
                    "wilcoxon_p": format_value(wp), "ttest_p": format_value(tp),
                })
    return dest


def read_results(paths: Sequence[str | os.PathLike], ddof: int = 0) -> list[SummaryRecord]:
    """Read per-subject row CSVs (aggregated here) and/or summary CSVs, by header."""
    out: list[SummaryRecord] = []
    row_files: list[Path] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise InputError(p, "file not found", "pass per-subject rows (`unicoal evaluate`/`segment`) or a summary CSV")
        with open(p, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if all(c in header for c in ROW_COLUMNS):
            row_files.append(p)  # aggregated together below: subjects may come one file each
        elif all(c in header for c in ("mean", "std", "metric", "method")):
            out.extend(read_summary(p))
        else:
            raise InputError(p, f"unrecognised columns {','.join(header)}",
                             f"expected per-subject rows ({','.join(ROW_COLUMNS)}) or a summary ({','.join(SUMMARY_COLUMNS)})")
    if row_files:
        out.extend(aggregate_rows(read_rows(row_files), ddof=ddof))
    return out


def default_reference_dir() -> Path | None:
    """``reports/reference`` of the current directory or of the source checkout, if present."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        d = base / "reports" / "reference"
        if d.is_dir() and any(d.glob("table*.csv")):
            return d
    return None


def load_reference(directory: str | os.PathLike) -> list[SummaryRecord]:
    d = Path(directory)
    files = sorted(d.glob("table*.csv")) if d.is_dir() else []
    if not files:
        raise InputError(d, "no reference CSVs (table*.csv) found", "point --reference at reports/reference")
    out: list[SummaryRecord] = []
    for f in files:
        out.extend(read_summary(f))
    return out

"""Paired significance tests of every method against Uni-COAL (paper Sec. IV-C: "p < 0.05").

For each comparison cell ``(table, dataset, task, source, target, scale, metric, convention)``
the subjects that both a method and the reference method have (finite values only) are paired,
and scipy's two-sided Wilcoxon signed-rank test and paired t-test are applied to
``method - reference``. Fewer than 2 pairs, or all differences zero, give NaN p-values.

Output CSV columns: :data:`STATS_COLUMNS`.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.evaluate.rows import ResultRow, format_scale, format_value, parse_value
from unicoal.io import write_csv

__all__ = ["STATS_COLUMNS", "CELL_KEYS", "PairedTest", "paired_test", "compare_methods", "write_stats", "read_stats", "method_key"]

CELL_KEYS: tuple[str, ...] = ("table", "dataset", "task", "source", "target", "scale", "metric", "convention")
STATS_COLUMNS: tuple[str, ...] = CELL_KEYS + (
    "method", "reference", "n", "mean_method", "mean_reference", "mean_diff", "wilcoxon_p", "ttest_p",
)


def method_key(name: str) -> str:
    """Case- and punctuation-insensitive method identity (``Uni-COAL_multi`` == ``unicoal-multi``)."""
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


@dataclass(frozen=True)
class PairedTest:
    """Result of one method-vs-reference comparison (one row of the stats CSV)."""

    cell: tuple
    method: str
    reference: str
    n: int
    mean_method: float
    mean_reference: float
    mean_diff: float
    wilcoxon_p: float
    ttest_p: float

    def as_dict(self) -> dict[str, str]:
        d = dict(zip(CELL_KEYS, self.cell))
        d["scale"] = format_scale(float(d["scale"]))
        d.update(
            method=self.method, reference=self.reference, n=str(self.n),
            mean_method=format_value(self.mean_method), mean_reference=format_value(self.mean_reference),
            mean_diff=format_value(self.mean_diff), wilcoxon_p=format_value(self.wilcoxon_p), ttest_p=format_value(self.ttest_p),
        )
        return d


def paired_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided (Wilcoxon signed-rank p, paired t-test p) of ``a - b``; NaN when undefined."""
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    d = x - y
    if d.size < 2 or not np.any(d != 0):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = float(stats.wilcoxon(x, y).pvalue)
        t = float(stats.ttest_rel(x, y).pvalue) if np.ptp(d) > 0 else (0.0 if d[0] != 0 else math.nan)
    return w, t


def compare_methods(rows: Iterable[ResultRow], reference: str | Callable[[str, list[str]], str] = "Uni-COAL") -> list[PairedTest]:
    """Pair every method with the reference method per cell over subjects.

    ``reference`` is a method name or a function ``(table, methods in the cell) -> method name``
    (per-table reference, e.g. ``Uni-COAL_multi`` in Table I). Rows of the reference method
    itself give no test. Cells without the reference method are skipped.
    """
    ref_of = reference if callable(reference) else (lambda _t, _m, r=reference: r)
    by_cell: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    names: dict[str, str] = {}
    for r in rows:
        cell = (r.table, r.dataset, r.task, r.source, r.target, r.scale, r.metric, r.convention)
        key = method_key(r.method)
        names.setdefault(key, r.method)
        by_cell[cell][key][r.subject] = r.value
    out: list[PairedTest] = []
    for cell in sorted(by_cell, key=lambda c: tuple(str(v) for v in c)):
        methods = by_cell[cell]
        ref_name = ref_of(cell[0], [names[k] for k in sorted(methods)])
        ref_key = method_key(ref_name)
        if ref_key not in methods:
            continue
        ref_vals = methods[ref_key]
        for key in sorted(methods):
            if key == ref_key:
                continue
            subjects = sorted(s for s in methods[key] if s in ref_vals
                              and math.isfinite(methods[key][s]) and math.isfinite(ref_vals[s]))
            a = [methods[key][s] for s in subjects]
            b = [ref_vals[s] for s in subjects]
            w, t = paired_test(a, b)
            ma = float(np.mean(a)) if a else math.nan
            mb = float(np.mean(b)) if b else math.nan
            out.append(PairedTest(cell, names[key], names[ref_key], len(subjects), ma, mb, ma - mb, w, t))
    return out


def write_stats(path: str | os.PathLike, tests: Iterable[PairedTest]) -> Path:
    return write_csv(path, STATS_COLUMNS, [t.as_dict() for t in tests])


def read_stats(path: str | os.PathLike) -> list[PairedTest]:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found", "pass the CSV written by `unicoal stats`")
    out = []
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in STATS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(p, f"missing column(s) {', '.join(missing)}", "regenerate it with `unicoal stats`")
        for lineno, rec in enumerate(reader, start=2):
            try:
                cell = tuple(float(rec[k]) if k == "scale" else rec[k] for k in CELL_KEYS)
                out.append(PairedTest(cell, rec["method"], rec["reference"], int(rec["n"]),
                                      parse_value(rec["mean_method"]), parse_value(rec["mean_reference"]),
                                      parse_value(rec["mean_diff"]), parse_value(rec["wilcoxon_p"]), parse_value(rec["ttest_p"])))
            except ValueError as err:
                raise InputError(p, f"line {lineno}: {err}", "regenerate it with `unicoal stats`") from None
    return out

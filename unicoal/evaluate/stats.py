"""Paired significance tests of methods against a reference method (paper Sec. IV-C: "p < 0.05").

For each comparison cell ``(table, dataset, task, source, target, scale, metric, convention)``
every method is paired over subjects with *its* reference method (Table I tests the 2D group
against Uni-COAL_one and the 2.5D/3D group against Uni-COAL_multi: a reference is chosen per
method, see :func:`unicoal.report.specs.reference_method_for`), and scipy's two-sided Wilcoxon
signed-rank test and paired t-test are applied to ``method - reference``.

* Only subjects both methods have are paired; pairs with a non-finite value (PSNR ``inf`` of
  identical volumes, ``nan``) are dropped and counted in ``n_dropped``; ``n`` counts the pairs
  tested. Fewer than 2 pairs, or all differences zero, give NaN p-values.
* A subject given twice for one method and cell is refused (it would silently replace the other).
* ``wilcoxon_min_p`` is the smallest two-sided p the exact signed-rank test can give with ``n``
  pairs, ``2 / 2**n`` (0.0625 for n = 5): with ``n <= 5`` no Wilcoxon p can reach 0.05.
* ``*_p_holm`` are Holm(-Bonferroni) adjusted p-values (:func:`holm`); the family is every test of
  one table and convention (all its cells, metrics and methods), each test kind separately; with
  ``unicoal stats`` the reference rows that the paper does not have (interpolation, copy) form a
  family of their own.

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

__all__ = ["STATS_COLUMNS", "CELL_KEYS", "PairedTest", "paired_test", "wilcoxon_min_p", "holm", "compare_methods", "write_stats",
           "read_stats", "method_key"]

CELL_KEYS: tuple[str, ...] = ("table", "dataset", "task", "source", "target", "scale", "metric", "convention")
STATS_COLUMNS: tuple[str, ...] = CELL_KEYS + (
    "method", "reference", "n", "mean_method", "mean_reference", "mean_diff", "wilcoxon_p", "ttest_p",
    "wilcoxon_p_holm", "ttest_p_holm", "wilcoxon_min_p", "n_dropped",
)
#: columns added after the first release; older stats files without them still read (NaN / 0)
_OPTIONAL_COLUMNS = ("wilcoxon_p_holm", "ttest_p_holm", "wilcoxon_min_p", "n_dropped")


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
    wilcoxon_p_holm: float = math.nan
    ttest_p_holm: float = math.nan
    wilcoxon_min_p: float = math.nan
    n_dropped: int = 0

    def as_dict(self) -> dict[str, str]:
        d = dict(zip(CELL_KEYS, self.cell))
        d["scale"] = format_scale(float(d["scale"]))
        d.update(
            method=self.method, reference=self.reference, n=str(self.n),
            mean_method=format_value(self.mean_method), mean_reference=format_value(self.mean_reference),
            mean_diff=format_value(self.mean_diff), wilcoxon_p=format_value(self.wilcoxon_p), ttest_p=format_value(self.ttest_p),
            wilcoxon_p_holm=format_value(self.wilcoxon_p_holm), ttest_p_holm=format_value(self.ttest_p_holm),
            wilcoxon_min_p=format_value(self.wilcoxon_min_p), n_dropped=str(self.n_dropped),
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


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p-value of the exact Wilcoxon signed-rank test with ``n`` nonzero pairs:
    all differences of one sign, ``2 / 2**n`` (capped at 1). NaN for ``n < 2`` (no test)."""
    return math.nan if n < 2 else min(1.0, 2.0 / 2.0 ** n)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in input order; NaN entries stay NaN and do not count.

    With the ``m`` finite p-values sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))``.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(order)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def compare_methods(rows: Iterable[ResultRow], reference: str | Callable[[str, str, list[str]], str | None] = "Uni-COAL",
                    family: Callable[[str, str], str] | None = None) -> list[PairedTest]:
    """Pair every method with its reference method per cell over subjects; Holm-adjust per table.

    ``reference`` is a method name or a function ``(table, method, methods in the cell) -> name``
    (a reference per table and row group, e.g. Uni-COAL_one for Table I's 2D group; ``None``
    skips the method). A method is never tested against itself; cells without the method's
    reference give no test. ``family(table, method)`` splits a table's Holm family further (the
    ``auto`` statistics keep the paper's methods apart from the reference rows the paper does not
    have, so those extra tests do not weaken the paper's comparisons). Seed replicates
    (``<method>@seed<N>``, :func:`unicoal.plan.replicate_of`) are left out: the tests and their
    Holm families are the table's own runs (the seed spread is in ``methods.md``).

    Raises:
        ValueError: a subject appears twice for one method and cell.
    """
    from unicoal.plan import replicate_of

    ref_of = reference if callable(reference) else (lambda _t, _m, _ms, r=reference: r)
    by_cell: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    names: dict[str, str] = {}
    for r in rows:
        cell = (r.table, r.dataset, r.task, r.source, r.target, r.scale, r.metric, r.convention)
        key = method_key(r.method)
        names.setdefault(key, r.method)
        if r.subject in by_cell[cell][key]:
            raise ValueError(
                f"subject {r.subject!r} appears twice for method {r.method!r} in {r.table or '(no table)'} {r.dataset} "
                f"{r.task} {r.source}->{r.target} x{format_scale(r.scale)} {r.metric} ({r.convention}); "
                "each subject must be given once per method and cell")
        by_cell[cell][key][r.subject] = r.value
    out: list[PairedTest] = []
    for cell in sorted(by_cell, key=lambda c: tuple(str(v) for v in c)):
        methods = by_cell[cell]
        present = [names[k] for k in sorted(methods)]
        for key in sorted(methods):
            ref_name = None if replicate_of(names[key]) else ref_of(cell[0], names[key], present)
            if ref_name is None:
                continue
            ref_key = method_key(ref_name)
            if key == ref_key or ref_key not in methods:
                continue
            ref_vals = methods[ref_key]
            common = sorted(s for s in methods[key] if s in ref_vals)
            subjects = [s for s in common if math.isfinite(methods[key][s]) and math.isfinite(ref_vals[s])]
            a = [methods[key][s] for s in subjects]
            b = [ref_vals[s] for s in subjects]
            w, t = paired_test(a, b)
            ma = float(np.mean(a)) if a else math.nan
            mb = float(np.mean(b)) if b else math.nan
            nonzero = int(sum(1 for x, y in zip(a, b) if x != y))
            out.append(PairedTest(cell, names[key], names[ref_key], len(subjects), ma, mb, ma - mb, w, t,
                                  wilcoxon_min_p=wilcoxon_min_p(nonzero), n_dropped=len(common) - len(subjects)))
    return _with_holm(out, family)


def _with_holm(tests: list[PairedTest], family: Callable[[str, str], str] | None = None) -> list[PairedTest]:
    """Holm-adjust within each family = (table, convention[, family(table, method)]), Wilcoxon and
    t-test separately."""
    from dataclasses import replace

    families: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tests):
        families[(t.cell[0], t.cell[7], family(t.cell[0], t.method) if family else "")].append(i)
    out = list(tests)
    for members in families.values():
        wh = holm([tests[i].wilcoxon_p for i in members])
        th = holm([tests[i].ttest_p for i in members])
        for i, w, t in zip(members, wh, th):
            out[i] = replace(out[i], wilcoxon_p_holm=w, ttest_p_holm=t)
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
        missing = [c for c in STATS_COLUMNS if c not in (reader.fieldnames or []) and c not in _OPTIONAL_COLUMNS]
        if missing:
            raise InputError(p, f"missing column(s) {', '.join(missing)}", "regenerate it with `unicoal stats`")
        for lineno, rec in enumerate(reader, start=2):
            try:
                cell = tuple(float(rec[k]) if k == "scale" else rec[k] for k in CELL_KEYS)
                out.append(PairedTest(cell, rec["method"], rec["reference"], int(rec["n"]),
                                      parse_value(rec["mean_method"]), parse_value(rec["mean_reference"]),
                                      parse_value(rec["mean_diff"]), parse_value(rec["wilcoxon_p"]), parse_value(rec["ttest_p"]),
                                      parse_value(rec.get("wilcoxon_p_holm") or ""), parse_value(rec.get("ttest_p_holm") or ""),
                                      parse_value(rec.get("wilcoxon_min_p") or ""), int(rec.get("n_dropped") or 0)))
            except ValueError as err:
                raise InputError(p, f"line {lineno}: {err}", "regenerate it with `unicoal stats`") from None
    return out

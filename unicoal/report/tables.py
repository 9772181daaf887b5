"""Tables I-VI in the paper's layout (CSV, Markdown, LaTeX) and the comparison with the paper.

A table is built from a :class:`~unicoal.report.specs.TableSpec` (the layout, as data) and
summary records (mean +- std per method and cell, see :mod:`unicoal.report.reference`):

* cells print ``mean±std`` with the paper's decimals (PSNR 2, SSIM 3, DSC 3), ``inf`` for an
  infinite mean (identical volumes). A cell without a value says why: ``-`` the method cannot
  perform the task (as the paper prints it; from the method registry, else the paper's Table V),
  ``n.r.`` not run in this experiment, ``n/a`` does not apply (image metrics of the real images);
* the best value of each comparison set (per column, or per row across methods for Table IV)
  is bold, comparing the printed (rounded) values so printed ties are all bold; reference rows
  and columns that the paper does not have never take part;
* ``§`` marks the cells of a method trained without the user's pretrained weights (pGAN /
  AutoGAN without VGG16, ResViT without its ImageNet ViT: a logged fallback ran, not the paper's
  setting), read from the train configs (:mod:`unicoal.report.marks`), with a note naming what
  ran instead; ``¶`` marks a row whose published code leaves something open
  (:data:`unicoal.report.specs.METHOD_NOTES`, e.g. AutoGAN's unreleased cell sequence), with a note;
* with paired tests (``unicoal stats``), a ``*`` marks a method whose values differ from its
  reference method (Uni-COAL's variant of the table or row group) with uncorrected p < alpha
  (two-sided Wilcoxon by default, as in the paper) and a ``‡`` one that stays below alpha
  after Holm's correction over the table; the notes say when ``n`` is too small for any ``*``.

Feeding the reference CSVs back as results reproduces the paper's printed numbers exactly.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from unicoal.evaluate.stats import PairedTest, method_key
from unicoal.report.reference import SummaryRecord, cell_key, write_summary
from unicoal.report.marks import FALLBACK_MARK, fallbacks_from_configs, mark_fallbacks
from unicoal.report.specs import HIGHER_IS_BETTER, METHOD_NOTE_MARK, METHOD_NOTES, METRIC_DECIMALS, TABLE_SPECS, TableSpec, table_key

__all__ = [
    "IMAGE_METRICS",
    "CellView",
    "RenderedTable",
    "ResultIndex",
    "pvalue_index",
    "format_cell",
    "build_table",
    "to_markdown",
    "to_latex",
    "to_csv",
    "comparison_rows",
    "comparison_markdown",
    "ranking_rows",
    "Capabilities",
    "write_tables",
    "FALLBACK_MARK",
    "mark_fallbacks",
    "fallbacks_from_configs",
]

#: metrics whose value depends on the metric convention (published / brainmask / wang)
IMAGE_METRICS = frozenset({"PSNR", "SSIM", "MAE", "PSNR_slice", "SSIM_slice", "MAE_slice"})
_CHECK = "✓"
CANNOT, NOT_RUN, NOT_APPLICABLE = "-", "n.r.", "n/a"
HOLM_MARK = "‡"


def _base_metric(metric: str) -> str:
    return metric.split("_")[0]


def format_cell(mean: float, std: float, metric: str) -> str:
    """``mean±std`` with the metric's printed decimals; ``inf`` for an infinite mean."""
    d = METRIC_DECIMALS.get(_base_metric(metric), 3)
    if math.isnan(mean):
        return "-"
    if math.isinf(mean):
        return "inf" if mean > 0 else "-inf"
    if math.isnan(std):
        return f"{mean:.{d}f}"
    return f"{mean:.{d}f}±{std:.{d}f}"


@dataclass
class CellView:
    """One printed cell."""

    text: str
    bold: bool = False
    significant: bool = False
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    pvalue: float = math.nan
    pvalue_holm: float = math.nan
    significant_holm: bool = False
    reference: str = ""
    status: str = "value"  # value | cannot | not_run | n/a | check
    role: str = "paper"
    mark: str = ""  # FALLBACK_MARK: trained without the user's pretrained weights

    @property
    def display(self) -> str:
        return self.text + ("*" if self.significant else "") + (HOLM_MARK if self.significant_holm else "") + self.mark


@dataclass
class RenderedTable:
    """A table ready to print: header blocks, sub-columns, and body (group headings and rows)."""

    name: str
    roman: str
    title: str
    corner: str
    blocks: list[tuple[str, list[str]]]  # (block label, sub-column labels)
    body: list[dict] = field(default_factory=list)  # {"group": str} or {"label": str, "role": str, "cells": [CellView]}
    notes: list[str] = field(default_factory=list)
    in_paper: bool = True

    @property
    def columns(self) -> list[str]:
        return [f"{b} {m}".strip() if m else b for b, ms in self.blocks for m in ms]

    def to_json(self) -> dict:
        d = asdict(self)
        for row in d["body"]:
            for c in row.get("cells", []):
                for k in ("mean", "std", "pvalue", "pvalue_holm"):
                    if isinstance(c[k], float) and not math.isfinite(c[k]):
                        c[k] = str(c[k])
        return d


class ResultIndex:
    """Look up summary records by table and cell, honouring table-specific rows and conventions."""

    def __init__(self, records: Iterable[SummaryRecord], convention: str = "published", slicewise: bool = False):
        self.convention = convention
        self.slicewise = slicewise
        self._by: dict[tuple, list[SummaryRecord]] = {}
        self.used: set[tuple] = set()
        for r in records:
            if r.metric in IMAGE_METRICS and r.convention not in ("", convention):
                continue
            self._by.setdefault((r.table, r.key), []).append(r)

    def metric_name(self, metric: str) -> str:
        return f"{metric}_slice" if self.slicewise and metric in ("PSNR", "SSIM", "MAE") else metric

    def get(self, table: str, key: tuple) -> SummaryRecord | None:
        for t in (table, ""):
            found = self._by.get((t, key))
            if found:
                self.used.add((t, key))
                if len(found) > 1:
                    raise ValueError(
                        f"{table}: {len(found)} results for method {found[0].method!r} on {key[1:]} "
                        "(the same cell given twice, e.g. the same CSV passed twice or two conventions)")
                return found[0]
        return None

    def __len__(self) -> int:
        return len(self._by)

    def unused(self) -> list[SummaryRecord]:
        """Records no table cell asked for (e.g. a scale or dataset no table shows)."""
        return [r for k, rs in self._by.items() if k not in self.used for r in rs]


def pvalue_index(tests: Iterable[PairedTest], convention: str = "published") -> dict[tuple, PairedTest]:
    """``(table, cell key) -> PairedTest`` (p-values, Holm-adjusted ones, n) for one convention."""
    out = {}
    for t in tests:
        tab, dataset, task, source, target, scale, metric, conv = t.cell
        if metric in IMAGE_METRICS and conv not in ("", convention):
            continue
        out[(table_key(tab), cell_key(t.method, dataset, task, source, target, scale, metric))] = t
    return out


class Capabilities:
    """Can a table's method perform a task at all? (the "cannot" of a cell, never a hard-coded list)

    The method registry (:data:`unicoal.methods.METHODS`, found through each table's experiment
    file, ``id -> method``) answers for registered methods; otherwise the paper's Table V
    ("Spec." row) does, when it lists the method; otherwise the answer is unknown (``None``).
    """

    def __init__(self, reference: Iterable[SummaryRecord] = ()):
        self._table5: dict[tuple[str, str], bool] = {}
        for r in reference:
            if r.table == "table5" and r.metric == "Spec.":
                self._table5[(method_key(r.method), r.task.upper())] = r.mean >= 0.5
        self._ids: dict[tuple[str, str], str] = {}
        try:
            from unicoal.plan import TABLES, load_experiment

            for name in TABLES:
                for m in load_experiment(name).methods:
                    self._ids[(name, method_key(m.id))] = m.method
        except Exception:  # noqa: BLE001 - experiments unreadable: fall back to names and Table V
            pass

    def _spec(self, table: str, method: str):
        try:
            from unicoal.methods import METHODS
            from unicoal.plan import resolve_method
        except ImportError:  # pragma: no cover
            return None
        name = self._ids.get((table, method_key(method)))
        if name is not None:
            return resolve_method(name, METHODS)
        return resolve_method(method, METHODS)

    def can(self, table: str, method: str, task: str) -> bool | None:
        if not task or method_key(method) == "real":
            return None
        spec = self._spec(table, method)
        if spec is not None:
            return task.lower() in spec.tasks
        return self._table5.get((method_key(method), task.upper()))


def _rounded(cell: CellView, metric: str) -> float:
    if math.isinf(cell.mean):
        return cell.mean
    return round(cell.mean, METRIC_DECIMALS.get(_base_metric(metric), 3))


def _missing_cell(spec: TableSpec, role: str, sel, capabilities: Capabilities | None) -> CellView:
    if role == "real" and not sel.metric.startswith("DSC"):
        return CellView(NOT_APPLICABLE, status="n/a", role=role)
    can = capabilities.can(spec.source_table, sel.method, sel.task) if capabilities is not None else None
    if can is False:
        return CellView(CANNOT, status="cannot", role=role)
    return CellView(NOT_RUN, status="not_run", role=role)


def build_table(
    spec: TableSpec,
    index: ResultIndex,
    pvalues: dict | None = None,
    alpha: float = 0.05,
    test: str = "wilcoxon",
    bold_keys: set | None = None,
    capabilities: Capabilities | None = None,
    fallbacks: dict | None = None,
) -> RenderedTable:
    """Fill ``spec`` with the records of ``index``; bold the best, mark significance, explain gaps.

    ``bold_keys``, if given, receives ``(table, cell key)`` of every bold cell. ``capabilities``
    tells "cannot" (``-``) from "not run" (``n.r.``); without it every gap is "not run".
    ``fallbacks``: method -> {weights: what ran instead} (:func:`fallbacks_from_configs`)."""
    if test not in ("wilcoxon", "ttest"):
        raise ValueError(f"test must be 'wilcoxon' or 'ttest', got {test!r}")
    blocks = [(b.label, list(b.metrics) if b.metrics else [""]) for b in spec.blocks]
    grid: dict[tuple[int, int, int], CellView] = {}
    metric_of: dict[tuple[int, int, int], str] = {}
    key_of: dict[tuple[int, int, int], tuple] = {}
    used_tests: list[PairedTest] = []
    for ri, row in enumerate(spec.rows):
        for bi, block in enumerate(spec.blocks):
            role = spec.role_of(row, block)
            for mi, metric in enumerate(spec.metrics_of(block)):
                sel = spec.selector(row, block, metric)
                metric_name = sel.metric if spec.kind == "check" else index.metric_name(sel.metric)
                key = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, metric_name)
                rec = index.get(spec.source_table, key)
                metric_of[ri, bi, mi] = sel.metric
                key_of[ri, bi, mi] = key
                if spec.kind == "check":
                    grid[ri, bi, mi] = CellView(_CHECK if rec is not None and rec.mean >= 0.5 else "", status="check")
                    continue
                if rec is None:
                    grid[ri, bi, mi] = _missing_cell(spec, role, sel, capabilities)
                    continue
                cell = CellView(format_cell(rec.mean, rec.std, sel.metric), mean=rec.mean, std=rec.std, n=rec.n, role=role)
                if pvalues:
                    pt = pvalues.get((spec.source_table, key)) or pvalues.get(("", key))
                    if pt is not None and method_key(pt.method) != method_key(pt.reference):
                        used_tests.append(pt)
                        cell.reference = pt.reference
                        cell.pvalue = pt.wilcoxon_p if test == "wilcoxon" else pt.ttest_p
                        cell.pvalue_holm = pt.wilcoxon_p_holm if test == "wilcoxon" else pt.ttest_p_holm
                        cell.significant = not math.isnan(cell.pvalue) and cell.pvalue < alpha
                        cell.significant_holm = not math.isnan(cell.pvalue_holm) and cell.pvalue_holm < alpha
                grid[ri, bi, mi] = cell
    if spec.kind == "numeric":
        sets: dict[tuple, list[tuple[int, int, int]]] = {}
        for (ri, bi, mi) in grid:
            if grid[ri, bi, mi].role != "paper":
                continue  # reference rows / columns and the real images never compete for bold
            group = (bi, mi) if spec.best_across == "rows" else (ri, spec.blocks[bi].metrics[mi] if spec.blocks[bi].metrics else mi)
            sets.setdefault(group, []).append((ri, bi, mi))
        for members in sets.values():
            filled = [m for m in members if not math.isnan(grid[m].mean)]
            if len(filled) < 2:
                continue
            metric = metric_of[filled[0]]
            vals = [_rounded(grid[m], metric) for m in filled]
            best = max(vals) if HIGHER_IS_BETTER.get(_base_metric(metric), True) else min(vals)
            for m, v in zip(filled, vals):
                grid[m].bold = v == best
                if grid[m].bold and bold_keys is not None:
                    bold_keys.add((spec.name, key_of[m]))
    table = RenderedTable(spec.name, spec.roman, spec.title, spec.corner, blocks, in_paper=spec.in_paper)
    current_group = None
    noted = []
    for ri, row in enumerate(spec.rows):
        if row.group and row.group != current_group:
            table.body.append({"group": row.group})
        current_group = row.group
        cells = [grid[ri, bi, mi] for bi, b in enumerate(spec.blocks) for mi in range(len(spec.metrics_of(b)))]
        label = row.label
        if row.method and method_key(row.method) in METHOD_NOTES:
            label = f"{label} {METHOD_NOTE_MARK}"
            noted.append(f"{METHOD_NOTE_MARK} {row.label}: {METHOD_NOTES[method_key(row.method)]}.")
        table.body.append({"label": label, "role": row.role, "cells": cells, "method": row.method or ""})
    if spec.note:
        table.notes.append(spec.note)
    table.notes += noted
    table.notes += _notes(spec, grid.values(), used_tests, bool(pvalues), alpha, test)
    if fallbacks:
        mark_fallbacks(table, fallbacks)
    return table


def _notes(spec: TableSpec, cells: Iterable[CellView], tests: list[PairedTest], with_stats: bool, alpha: float, test: str) -> list[str]:
    """The legend a reader needs for this table: gaps, reference rows, significance and its limits."""
    cells = list(cells)
    status = {c.status for c in cells}
    notes = []
    legend = []
    if "cannot" in status:
        legend.append(f"'{CANNOT}' = the method cannot perform this task (as printed in the paper; from the method "
                      "registry, else the paper's Table V)")
    if "not_run" in status:
        legend.append(f"'{NOT_RUN}' = not run in this experiment (no result rows)")
    if "n/a" in status:
        legend.append(f"'{NOT_APPLICABLE}' = does not apply (image metrics of the real images)")
    if legend:
        notes.append("; ".join(legend) + ".")
    roles = {c.role for c in cells}
    if spec.kind == "numeric" and roles - {"paper"}:
        parts = []
        if "reference" in roles:
            parts.append("interpolation along the slice axis (SR) and the source contrast copied onto the target grid "
                         "(CMS; linearly interpolated along the slice axis for CMSR)")
        if "real" in roles:
            parts.append("'Real (upper bound)' = the nnU-Net Dice of the real target images, the ceiling of every DSC column")
        notes.append("Reference rows/columns, not in the paper and never bold: " + "; ".join(parts) + ".")
    if with_stats and spec.kind == "numeric":
        name = "Wilcoxon signed-rank" if test == "wilcoxon" else "paired t-test"
        refs = sorted({t.reference for t in tests}) or list(spec.references)
        notes.append(f"* p < {alpha} (two-sided {name}, uncorrected as in the paper) vs the row's reference method "
                     f"({', '.join(refs)}); {HOLM_MARK} also p < {alpha} after Holm's correction over every test of "
                     "this table (all its cells, metrics and methods, one metric convention; the reference rows not in "
                     "the paper are a family of their own; both p-values in stats.csv).")
        if test == "wilcoxon":
            floors = [t for t in tests if not math.isnan(t.wilcoxon_min_p) and t.wilcoxon_min_p >= alpha]
            if floors:
                n_max = max(t.n for t in floors)
                notes.append(f"{len(floors)} test(s) have n <= {n_max} pairs: the exact two-sided Wilcoxon p cannot be "
                             f"below 2/2^n (= {2.0 / 2 ** n_max:.3g} for n = {n_max}) >= {alpha}, so no * is possible there.")
        untested = [t for t in tests if t.n < 2]
        if untested:
            notes.append(f"{len(untested)} comparison(s) have fewer than 2 subject pairs: no test is possible there "
                         "(p = nan, no *); run more test subjects.")
        dropped = sum(t.n_dropped for t in tests)
        if dropped:
            notes.append(f"{dropped} subject pair(s) with a non-finite value (e.g. PSNR inf of identical volumes) were "
                         "left out of the tests (n_dropped in stats.csv); n counts the pairs tested.")
    return notes


# ------------------------------------------------------------------------------- renderers


def to_markdown(t: RenderedTable) -> str:
    out = [f"**Table {t.roman}.** {t.title}", ""]
    cols = [t.corner or " "] + t.columns
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join(["---"] + [":---:"] * len(t.columns)) + "|")
    for row in t.body:
        if "group" in row:
            out.append(f"| **{row['group']}** |" + " |" * len(t.columns))
            continue
        cells = [f"**{c.display}**" if c.bold else c.display for c in row["cells"]]
        out.append("| " + " | ".join([row["label"]] + cells) + " |")
    if t.notes:
        out.append("")
    for note in t.notes:
        out.append(f"_{note}_  ")
    return "\n".join(out).rstrip() + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def _tex_cell(c: CellView) -> str:
    s = c.text.replace("±", r"$\pm$").replace(_CHECK, r"$\checkmark$")
    if c.significant:
        s += r"$^{*}$"
    if c.mark:
        s += r"$^{\S}$"
    return rf"\textbf{{{s}}}" if c.bold else s


def to_latex(t: RenderedTable) -> str:
    ncol = len(t.columns)
    lines = [r"\begin{table*}[t]", r"\centering", rf"\caption{{{_tex(t.title)}}}", rf"\label{{tab:{t.name}}}",
             r"\begin{tabular}{l" + "c" * ncol + "}", r"\toprule"]
    head1 = [_tex(t.corner)]
    rules = []
    col = 2
    for label, metrics in t.blocks:
        head1.append(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{_tex(label)}}}" if len(metrics) > 1 else _tex(label))
        rules.append(rf"\cmidrule(lr){{{col}-{col + len(metrics) - 1}}}")
        col += len(metrics)
    lines.append(" & ".join(head1) + r" \\")
    if any(m for _, ms in t.blocks for m in ms):
        lines.append(" ".join(rules))
        lines.append(" & ".join([""] + [_tex(m) for _, ms in t.blocks for m in ms]) + r" \\")
    lines.append(r"\midrule")
    for row in t.body:
        if "group" in row:
            lines.append(rf"\multicolumn{{{ncol + 1}}}{{l}}{{\textbf{{{_tex(row['group'])}}}}} \\")
            continue
        lines.append(" & ".join([_tex(row["label"])] + [_tex_cell(c) for c in row["cells"]]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in t.notes:
        lines.append(rf"\par\footnotesize {_tex(note)}")
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"


def to_csv(t: RenderedTable) -> str:
    """The printed grid: columns ``group, row, <block metric>...``; cells as printed (no bold)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", t.corner or "row"] + t.columns)
    group = ""
    for row in t.body:
        if "group" in row:
            group = row["group"]
            continue
        w.writerow([group, row["label"]] + [c.display for c in row["cells"]])
    return buf.getvalue()


# ---------------------------------------------------------------------------- comparison

COMPARISON_COLUMNS = ("table", "group", "row", "block", "metric", "ours", "paper", "difference", "n", "paper_std", "beyond_std")


def comparison_rows(spec: TableSpec, ours: ResultIndex, paper: ResultIndex) -> list[dict[str, str]]:
    """Ours beside the paper per cell (cells where either has a value); difference = ours - paper.

    ``beyond_std`` is ``yes`` where ``|ours - paper|`` exceeds the paper's standard deviation
    (the spread over the paper's test subjects): a difference a reader should not ignore."""
    if spec.kind != "numeric" or not spec.in_paper:
        return []
    out = []
    for row, block, metric, sel in spec.cells():
        if spec.role_of(row, block) != "paper":
            continue
        key = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, ours.metric_name(sel.metric))
        pkey = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, sel.metric)
        a, b = ours.get(spec.source_table, key), paper.get(spec.name, pkey)
        if a is None and b is None:
            continue
        d = METRIC_DECIMALS.get(sel.metric, 3)
        beyond = ""
        if a is not None and b is not None and not math.isnan(a.mean) and not math.isnan(b.mean):
            diff = a.mean - b.mean
            dtext = ("+inf" if diff > 0 else "-inf") if math.isinf(diff) else f"{diff:+.{d}f}"
            if not math.isnan(b.std):
                beyond = "yes" if abs(diff) > b.std else "no"
        else:
            dtext = "-"
        out.append({
            "table": spec.roman, "group": row.group, "row": row.label, "block": block.label, "metric": sel.metric,
            "ours": format_cell(a.mean, a.std, sel.metric) if a is not None else "-",
            "paper": format_cell(b.mean, b.std, sel.metric) if b is not None else "-",
            "difference": dtext, "n": str(a.n) if a is not None else "",
            "paper_std": (b.std_text or f"{b.std:.{d}f}") if b is not None and not math.isnan(b.std) else "",
            "beyond_std": beyond,
        })
    return out


RANKING_COLUMNS = ("table", "set", "metric", "methods", "ours", "paper", "kendall_tau", "same_best")


def ranking_rows(spec: TableSpec, ours: ResultIndex, paper: ResultIndex) -> list[dict[str, str]]:
    """Does our ranking of the paper's methods agree with the paper's? One row per comparison set
    (a column; for Table IV a row and metric) where at least two methods have both values:
    the two orders (best first), Kendall's tau between them and whether the best method agrees."""
    if spec.kind != "numeric" or not spec.in_paper:
        return []
    from scipy.stats import kendalltau

    sets: dict[tuple, list[tuple[str, float, float]]] = {}
    labels: dict[tuple, str] = {}
    for row, block, metric, sel in spec.cells():
        if spec.role_of(row, block) != "paper":
            continue
        key = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, ours.metric_name(sel.metric))
        pkey = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, sel.metric)
        a, b = ours.get(spec.source_table, key), paper.get(spec.name, pkey)
        if a is None or b is None or math.isnan(a.mean) or math.isnan(b.mean):
            continue
        sk = (block.label, metric) if spec.best_across == "rows" else (row.group, row.label, metric)
        labels[sk] = block.label if spec.best_across == "rows" else f"{row.group} {row.label}"
        name = row.label if spec.best_across == "rows" else block.label
        sets.setdefault(sk, []).append((name, a.mean, b.mean))
    out = []
    for sk, members in sets.items():
        if len(members) < 2:
            continue
        metric = sk[-1]
        sign = -1.0 if HIGHER_IS_BETTER.get(_base_metric(metric), True) else 1.0
        ours_order = [m[0] for m in sorted(members, key=lambda m: sign * m[1])]
        paper_order = [m[0] for m in sorted(members, key=lambda m: sign * m[2])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau = float(kendalltau([m[1] for m in members], [m[2] for m in members]).statistic)
        out.append({"table": spec.roman, "set": labels[sk], "metric": metric, "methods": str(len(members)),
                    "ours": " > ".join(ours_order), "paper": " > ".join(paper_order),
                    "kendall_tau": "nan" if math.isnan(tau) else f"{tau:+.2f}",
                    "same_best": "yes" if ours_order[0] == paper_order[0] else "no"})
    return out


def comparison_markdown(rows: Sequence[dict[str, str]]) -> str:
    head = ["Table", "Group", "Row", "Column", "Metric", "Ours", "Paper", "Ours - paper", "n", "Paper std", "|diff| > paper std"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(r[c] for c in COMPARISON_COLUMNS) + " |")
    return "\n".join(out) + "\n"


def _write_text(path: Path, text: str) -> None:
    from unicoal.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tables(
    out_dir: str | os.PathLike,
    ours: Sequence[SummaryRecord],
    reference: Sequence[SummaryRecord] | None = None,
    tests: Sequence[PairedTest] | None = None,
    convention: str = "published",
    slicewise: bool = False,
    alpha: float = 0.05,
    test: str = "wilcoxon",
    tables: Sequence[str] | None = None,
    subject_rows: Sequence | None = None,
    fallbacks: dict | None = None,
) -> dict:
    """Write ``tableN.{csv,md,tex}``, ``tables.md``, ``summary.csv``, ``comparison.{csv,md}``,
    ``ranking.csv`` and ``tables.json`` (the manifest ``unicoal report`` reads; it also carries
    the p-values of the tabulated convention and every convention's means side by side), plus
    ``rows.csv`` (the per-subject rows, for the report's distributions) when ``subject_rows`` is
    given. Returns the manifest."""
    from unicoal.plan import replicate_of

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = ResultIndex(ours, convention, slicewise)
    paper = ResultIndex(reference or [], convention)
    pvals = pvalue_index(tests, convention) if tests else None
    caps = Capabilities(reference or [])
    names = [table_key(t) for t in tables] if tables else list(TABLE_SPECS)
    manifest: dict = {"convention": convention, "slicewise": slicewise, "alpha": alpha, "test": test,
                      "tables": [], "comparison": [], "ranking": []}
    ranking: list[dict[str, str]] = []
    all_md = []
    comparison: list[dict[str, str]] = []
    bold_keys: set = set()
    for name in names:
        spec = TABLE_SPECS[name]
        # Table V is a property of the methods, not a measurement: always from the reference.
        if spec.kind == "check":
            build_table(spec, index)  # only marks our capability rows (if any) as used
        t = build_table(spec, paper if spec.kind == "check" else index, pvals, alpha, test, bold_keys, caps,
                        fallbacks=None if spec.kind == "check" else fallbacks)
        _write_text(out / f"{name}.csv", to_csv(t))
        md = to_markdown(t)
        _write_text(out / f"{name}.md", md)
        _write_text(out / f"{name}.tex", to_latex(t))
        all_md.append(md)
        comp = comparison_rows(spec, index, paper) if reference else []
        comparison.extend(comp)
        ranking.extend(ranking_rows(spec, index, paper) if reference else [])
        filled = sum(1 for r in t.body for c in r.get("cells", []) if c.status == "value" or (c.status == "check" and c.text))
        manifest["tables"].append({**t.to_json(), "filled_cells": filled, "files": [f"{name}.csv", f"{name}.md", f"{name}.tex"]})
    manifest["comparison"] = comparison
    manifest["ranking"] = ranking
    manifest["pvalues"] = _pvalue_records(tests or [], convention)
    manifest["conventions"] = _convention_records(ours, slicewise)
    manifest["unmatched"] = sorted(
        f"{r.table or '(any table)'}: {r.method} {r.metric} {r.dataset} {r.task} {r.source}->{r.target} "
        f"x{r.scale:g} ({r.convention or 'no convention'})" for r in index.unused()
        if not replicate_of(r.method))  # seed replicates are beside the tables (methods.md), not in them
    _write_text(out / "tables.md", "\n".join(all_md))
    if reference:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COMPARISON_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(comparison)
        _write_text(out / "comparison.csv", buf.getvalue())
        _write_text(out / "comparison.md", comparison_markdown(comparison))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(RANKING_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(ranking)
        _write_text(out / "ranking.csv", buf.getvalue())
    if subject_rows is not None:
        from unicoal.evaluate.rows import write_rows

        write_rows(out / "rows.csv", subject_rows)
    pv_by_record = {}
    if pvals:
        for r in ours:
            pv = pvals.get((r.table, r.key)) or pvals.get(("", r.key))
            if pv:
                pv_by_record[(r.table, r.key)] = (pv.wilcoxon_p, pv.ttest_p)
    def is_bold(r: SummaryRecord) -> bool:  # a row without a table is bold if bold in any table
        return (r.table, r.key) in bold_keys if r.table else any((t, r.key) in bold_keys for t in names)

    bolded = [r if TABLE_SPECS.get(r.table) and TABLE_SPECS[r.table].kind == "check" else replace(r, bold=is_bold(r))
              for r in ours]
    write_summary(out / "summary.csv", bolded, pv_by_record)
    _write_text(out / "tables.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def _pvalue_records(tests: Sequence[PairedTest], convention: str) -> list[dict[str, str]]:
    """The p-value table of the report: every test of the tabulated convention (and of DSC)."""
    out = []
    for t in tests:
        tab, dataset, task, source, target, scale, metric, conv = t.cell
        if metric in IMAGE_METRICS and conv not in ("", convention):
            continue
        d = t.as_dict()
        d["table"] = table_key(tab) if tab else ""
        out.append(d)
    return out


def _convention_records(records: Sequence[SummaryRecord], slicewise: bool) -> list[dict]:
    """Each image metric's mean under every convention present, side by side per method and cell
    (``published`` is blind to a global gain/offset error; the others show what that hides)."""
    by: dict[tuple, dict] = {}
    for r in records:
        if r.metric not in IMAGE_METRICS or not r.convention or (r.metric.endswith("_slice") != slicewise):
            continue
        k = (r.table, r.method, r.dataset, r.task, r.source, r.target, r.scale, r.metric)
        rec = by.setdefault(k, {"table": r.table, "method": r.method, "dataset": r.dataset, "task": r.task,
                                "source": r.source, "target": r.target, "scale": r.scale, "metric": r.metric, "values": {}})
        rec["values"][r.convention] = format_cell(r.mean, r.std, r.metric)
    return [v for v in by.values() if len(v["values"]) > 1]

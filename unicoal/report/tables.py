"""Tables I-VI in the paper's layout (CSV, Markdown, LaTeX) and the comparison with the paper.

A table is built from a :class:`~unicoal.report.specs.TableSpec` (the layout, as data) and
summary records (mean +- std per method and cell, see :mod:`unicoal.report.reference`):

* cells print ``mean±std`` with the paper's decimals (PSNR 2, SSIM 3, DSC 3), ``inf`` for an
  infinite mean (identical volumes), ``-`` where a method has no value;
* the best value of each comparison set (per column, or per row across methods for Table IV)
  is bold, comparing the printed (rounded) values so printed ties are all bold;
* with paired tests (``unicoal stats``), a ``*`` marks a method whose values differ from the
  table's reference method (Uni-COAL) with p < alpha (two-sided Wilcoxon by default).

Feeding the reference CSVs back as results reproduces the paper's printed numbers exactly.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from unicoal.evaluate.stats import PairedTest, method_key
from unicoal.report.reference import SummaryRecord, cell_key, write_summary
from unicoal.report.specs import HIGHER_IS_BETTER, METRIC_DECIMALS, TABLE_SPECS, TableSpec, table_key

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
    "write_tables",
]

#: metrics whose value depends on the metric convention (published / brainmask / wang)
IMAGE_METRICS = frozenset({"PSNR", "SSIM", "MAE", "PSNR_slice", "SSIM_slice", "MAE_slice"})
_CHECK = "✓"


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

    @property
    def display(self) -> str:
        return self.text + ("*" if self.significant else "")


@dataclass
class RenderedTable:
    """A table ready to print: header blocks, sub-columns, and body (group headings and rows)."""

    name: str
    roman: str
    title: str
    corner: str
    blocks: list[tuple[str, list[str]]]  # (block label, sub-column labels)
    body: list[dict] = field(default_factory=list)  # {"group": str} or {"label": str, "cells": [CellView]}
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [f"{b} {m}".strip() if m else b for b, ms in self.blocks for m in ms]

    def to_json(self) -> dict:
        d = asdict(self)
        for row in d["body"]:
            for c in row.get("cells", []):
                for k in ("mean", "std", "pvalue"):
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


def pvalue_index(tests: Iterable[PairedTest], convention: str = "published") -> dict[tuple, tuple[float, float]]:
    """``(table, cell key) -> (wilcoxon_p, ttest_p)`` for the stats of one convention."""
    out = {}
    for t in tests:
        tab, dataset, task, source, target, scale, metric, conv = t.cell
        if metric in IMAGE_METRICS and conv not in ("", convention):
            continue
        out[(table_key(tab), cell_key(t.method, dataset, task, source, target, scale, metric))] = (t.wilcoxon_p, t.ttest_p)
    return out


def _rounded(cell: CellView, metric: str) -> float:
    if math.isinf(cell.mean):
        return cell.mean
    return round(cell.mean, METRIC_DECIMALS.get(_base_metric(metric), 3))


def build_table(
    spec: TableSpec,
    index: ResultIndex,
    pvalues: dict | None = None,
    alpha: float = 0.05,
    test: str = "wilcoxon",
    bold_keys: set | None = None,
) -> RenderedTable:
    """Fill ``spec`` with the records of ``index``; bold the best, mark significance.

    ``bold_keys``, if given, receives ``(table, cell key)`` of every bold cell."""
    if test not in ("wilcoxon", "ttest"):
        raise ValueError(f"test must be 'wilcoxon' or 'ttest', got {test!r}")
    blocks = [(b.label, list(b.metrics) if b.metrics else [""]) for b in spec.blocks]
    grid: dict[tuple[int, int, int], CellView] = {}
    metric_of: dict[tuple[int, int, int], str] = {}
    key_of: dict[tuple[int, int, int], tuple] = {}
    for ri, row in enumerate(spec.rows):
        for bi, block in enumerate(spec.blocks):
            for mi, metric in enumerate(spec.metrics_of(block)):
                sel = spec.selector(row, block, metric)
                metric_name = sel.metric if spec.kind == "check" else index.metric_name(sel.metric)
                key = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, metric_name)
                rec = index.get(spec.name, key)
                metric_of[ri, bi, mi] = sel.metric
                key_of[ri, bi, mi] = key
                if spec.kind == "check":
                    grid[ri, bi, mi] = CellView(_CHECK if rec is not None and rec.mean >= 0.5 else "")
                    continue
                if rec is None:
                    grid[ri, bi, mi] = CellView("-")
                    continue
                cell = CellView(format_cell(rec.mean, rec.std, sel.metric), mean=rec.mean, std=rec.std, n=rec.n)
                if pvalues and key[0] != method_key(spec.reference_method):
                    pv = pvalues.get((spec.name, key)) or pvalues.get(("", key))
                    if pv is not None:
                        cell.pvalue = pv[0] if test == "wilcoxon" else pv[1]
                        cell.significant = not math.isnan(cell.pvalue) and cell.pvalue < alpha
                grid[ri, bi, mi] = cell
    if spec.kind == "numeric":
        sets: dict[tuple, list[tuple[int, int, int]]] = {}
        for (ri, bi, mi) in grid:
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
    table = RenderedTable(spec.name, spec.roman, spec.title, spec.corner, blocks)
    current_group = None
    for ri, row in enumerate(spec.rows):
        if row.group and row.group != current_group:
            table.body.append({"group": row.group})
        current_group = row.group
        cells = [grid[ri, bi, mi] for bi, b in enumerate(spec.blocks) for mi in range(len(spec.metrics_of(b)))]
        table.body.append({"label": row.label, "cells": cells})
    if spec.note:
        table.notes.append(spec.note)
    if pvalues:
        table.notes.append(f"* p < {alpha} vs {spec.reference_method} ({'Wilcoxon signed-rank' if test == 'wilcoxon' else 'paired t-test'}).")
    return table


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

COMPARISON_COLUMNS = ("table", "group", "row", "block", "metric", "ours", "paper", "difference", "n")


def comparison_rows(spec: TableSpec, ours: ResultIndex, paper: ResultIndex) -> list[dict[str, str]]:
    """Ours beside the paper per cell (cells where either has a value); difference = ours - paper."""
    if spec.kind != "numeric":
        return []
    out = []
    for row, block, metric, sel in spec.cells():
        key = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, ours.metric_name(sel.metric))
        pkey = cell_key(sel.method, sel.dataset, sel.task, sel.source, sel.target, sel.scale, sel.metric)
        a, b = ours.get(spec.name, key), paper.get(spec.name, pkey)
        if a is None and b is None:
            continue
        d = METRIC_DECIMALS.get(sel.metric, 3)
        if a is not None and b is not None and not math.isnan(a.mean) and not math.isnan(b.mean):
            diff = a.mean - b.mean
            dtext = ("+inf" if diff > 0 else "-inf") if math.isinf(diff) else f"{diff:+.{d}f}"
        else:
            dtext = "-"
        out.append({
            "table": spec.roman, "group": row.group, "row": row.label, "block": block.label, "metric": sel.metric,
            "ours": format_cell(a.mean, a.std, sel.metric) if a is not None else "-",
            "paper": format_cell(b.mean, b.std, sel.metric) if b is not None else "-",
            "difference": dtext, "n": str(a.n) if a is not None else "",
        })
    return out


def comparison_markdown(rows: Sequence[dict[str, str]]) -> str:
    head = ["Table", "Group", "Row", "Column", "Metric", "Ours", "Paper", "Ours - paper", "n"]
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
) -> dict:
    """Write ``tableN.{csv,md,tex}``, ``tables.md``, ``summary.csv``, ``comparison.{csv,md}`` and
    ``tables.json`` (the manifest ``unicoal report`` reads). Returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = ResultIndex(ours, convention, slicewise)
    paper = ResultIndex(reference or [], convention)
    pvals = pvalue_index(tests, convention) if tests else None
    names = [table_key(t) for t in tables] if tables else list(TABLE_SPECS)
    manifest: dict = {"convention": convention, "slicewise": slicewise, "alpha": alpha, "test": test,
                      "tables": [], "comparison": []}
    all_md = []
    comparison: list[dict[str, str]] = []
    bold_keys: set = set()
    for name in names:
        spec = TABLE_SPECS[name]
        # Table V is a property of the methods, not a measurement: always from the reference.
        if spec.kind == "check":
            build_table(spec, index)  # only marks our capability rows (if any) as used
        t = build_table(spec, paper if spec.kind == "check" else index, pvals, alpha, test, bold_keys)
        _write_text(out / f"{name}.csv", to_csv(t))
        md = to_markdown(t)
        _write_text(out / f"{name}.md", md)
        _write_text(out / f"{name}.tex", to_latex(t))
        all_md.append(md)
        comp = comparison_rows(spec, index, paper) if reference else []
        comparison.extend(comp)
        filled = sum(1 for r in t.body for c in r.get("cells", []) if c.text not in ("-", ""))
        manifest["tables"].append({**t.to_json(), "filled_cells": filled, "files": [f"{name}.csv", f"{name}.md", f"{name}.tex"]})
    manifest["comparison"] = comparison
    manifest["unmatched"] = sorted(
        f"{r.table or '(any table)'}: {r.method} {r.metric} {r.dataset} {r.task} {r.source}->{r.target} "
        f"x{r.scale:g} ({r.convention or 'no convention'})" for r in index.unused())
    _write_text(out / "tables.md", "\n".join(all_md))
    if reference:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COMPARISON_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(comparison)
        _write_text(out / "comparison.csv", buf.getvalue())
        _write_text(out / "comparison.md", comparison_markdown(comparison))
    pv_by_record = {}
    if pvals:
        for r in ours:
            pv = pvals.get((r.table, r.key)) or pvals.get(("", r.key))
            if pv:
                pv_by_record[(r.table, r.key)] = pv
    def is_bold(r: SummaryRecord) -> bool:  # a row without a table is bold if bold in any table
        return (r.table, r.key) in bold_keys if r.table else any((t, r.key) in bold_keys for t in names)

    bolded = [r if TABLE_SPECS.get(r.table) and TABLE_SPECS[r.table].kind == "check" else replace(r, bold=is_bold(r))
              for r in ours]
    write_summary(out / "summary.csv", bolded, pv_by_record)
    _write_text(out / "tables.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest

"""Per method and cell: mean, sd and 95 % confidence interval over the test subjects, the paired
gain over the cell's trivial reference, and the seed spread of replicated trainings (issue #21).

The paper's tables print ``mean ± std``; a reader ranking methods on a handful of test subjects
also needs the uncertainty of each mean and of each gap. For every (table, dataset, task,
source -> target, scale, metric, convention) cell and every method in it:

* ``n``, ``mean``, ``sd`` (sample, ddof 1) and the two-sided 95 % Student-t interval of the mean,
  ``mean ± t(0.975, n - 1) · sd / sqrt(n)`` (``nan`` for n < 2). Non-finite values (PSNR ``inf``
  of identical volumes) are left out and counted in ``n_nonfinite``.
* the **trivial reference** of the cell: the copied source contrast (``Copy``) for CMS and CMSR,
  linear interpolation (``Linear``) for SR -- what a learned method must beat to have learned
  anything. Over the subjects both have: the mean paired difference ``method - reference``, its
  95 % t interval, how many subjects the method wins, and ``beats`` (mean difference > 0; every
  metric here is higher-is-better).
* **seed replicates** (``<method>@seed<N>``, :func:`unicoal.plan.replicate_of`): the spread
  ``|mean(seed N) - mean(seed 0)|`` next to the smallest gap between the seed-0 method and any
  other learned method of the cell, so the reader sees whether a method gap exceeds seed noise.

Written by ``unicoal tables`` as ``methods.csv`` / ``methods.md`` and ``seeds.csv``; the report
renders them (:func:`methods_section`).
"""
from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from unicoal.report.specs import reference_methods

__all__ = ["METHOD_COLUMNS", "SEED_COLUMNS", "TRIVIAL", "trivial_reference", "mean_ci", "method_stats", "seed_spread",
           "write_method_stats", "methods_section"]

METHOD_COLUMNS: tuple[str, ...] = (
    "table", "dataset", "task", "source", "target", "scale", "metric", "convention", "method", "n", "n_nonfinite",
    "mean", "sd", "ci_low", "ci_high", "reference", "n_paired", "diff", "diff_ci_low", "diff_ci_high", "wins", "beats",
)
SEED_COLUMNS: tuple[str, ...] = (
    "table", "dataset", "task", "source", "target", "scale", "metric", "convention", "method", "seed", "mean_seed0",
    "mean_seed", "spread", "nearest_method", "nearest_gap",
)
#: the trivial reference of each task: the input itself, brought to the target's grid
TRIVIAL: dict[str, str] = {"CMS": "Copy", "CMSR": "Copy", "SR": "Linear"}
#: metrics summarised (all higher-is-better) and the image-metric conventions kept
METRICS: tuple[str, ...] = ("PSNR", "SSIM", "DSC")
CONVENTIONS: tuple[str, ...] = ("published", "brainmask")


def trivial_reference(task: str) -> str | None:
    """``Copy`` for CMS / CMSR, ``Linear`` for SR, ``None`` for other rows (e.g. the real images' DSC)."""
    return TRIVIAL.get(str(task).upper())


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sd, ci_low, ci_high)`` of finite ``values``: sample sd and the Student-t interval."""
    from scipy import stats

    v = [float(x) for x in values if math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = sum(v) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def _cell_key(r) -> tuple:
    return (r.table, r.dataset, r.task, r.source, r.target, float(r.scale), r.metric, r.convention)


def _fmt(x: float, digits: int) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"


def method_stats(rows: Iterable, level: float = 0.95) -> list[dict]:
    """One record per cell and method (see the module docstring); rows are :class:`ResultRow`."""
    from unicoal.evaluate.stats import method_key
    from unicoal.report.tables import IMAGE_METRICS

    cells: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    names: dict[str, str] = {}
    for r in rows:
        if r.metric not in METRICS or (r.metric in IMAGE_METRICS and r.convention not in CONVENTIONS):
            continue
        key = method_key(r.method)
        names.setdefault(key, r.method)
        cells[_cell_key(r)][key][r.subject] = float(r.value)
    out = []
    for cell in sorted(cells, key=lambda c: tuple(str(x) for x in c)):
        table, dataset, task, source, target, scale, metric, convention = cell
        methods = cells[cell]
        ref_name = trivial_reference(task)
        ref = methods.get(method_key(ref_name)) if ref_name else None
        for key in sorted(methods, key=lambda k: names[k].lower()):
            vals = methods[key]
            finite = [v for v in vals.values() if math.isfinite(v)]
            mean, sd, lo, hi = mean_ci(finite, level)
            rec = {"table": table, "dataset": dataset, "task": task, "source": source, "target": target, "scale": scale,
                   "metric": metric, "convention": convention, "method": names[key], "n": len(finite),
                   "n_nonfinite": len(vals) - len(finite), "mean": mean, "sd": sd, "ci_low": lo, "ci_high": hi,
                   "reference": "", "n_paired": 0, "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
                   "wins": 0, "beats": ""}
            if ref is not None and key != method_key(ref_name):
                common = sorted(s for s in vals if s in ref and math.isfinite(vals[s]) and math.isfinite(ref[s]))
                diffs = [vals[s] - ref[s] for s in common]
                d, _, dlo, dhi = mean_ci(diffs, level)
                rec.update(reference=ref_name, n_paired=len(common), diff=d, diff_ci_low=dlo, diff_ci_high=dhi,
                           wins=sum(1 for x in diffs if x > 0), beats=("yes" if d > 0 else "no") if diffs else "")
            out.append(rec)
    return out


def seed_spread(records: Sequence[dict]) -> list[dict]:
    """For every seed replicate: its mean beside the seed-0 run's, the spread, and the nearest
    other learned method of the cell (the smallest gap a ranking of that method relies on)."""
    from unicoal.evaluate.stats import method_key
    from unicoal.plan import replicate_of

    by_cell: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in records:
        cell = tuple(r[c] for c in METHOD_COLUMNS[:8])
        by_cell[cell][method_key(r["method"])] = r
    out = []
    refs = reference_methods()
    for cell, methods in by_cell.items():
        for rec in methods.values():
            rep = replicate_of(rec["method"])
            if rep is None or method_key(rep[0]) not in methods:
                continue
            base = methods[method_key(rep[0])]
            others = [m for k, m in methods.items() if replicate_of(m["method"]) is None and k != method_key(rep[0])
                      and method_key(m["method"]) not in refs and math.isfinite(m["mean"])]
            nearest = min(others, key=lambda m: abs(m["mean"] - base["mean"]), default=None)
            out.append({**dict(zip(SEED_COLUMNS[:8], cell)), "method": rep[0], "seed": rep[1],
                        "mean_seed0": base["mean"], "mean_seed": rec["mean"], "spread": abs(rec["mean"] - base["mean"]),
                        "nearest_method": nearest["method"] if nearest else "",
                        "nearest_gap": abs(nearest["mean"] - base["mean"]) if nearest else math.nan})
    return out


def _formatted(records: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """Records as CSV text fields: scales and floats in the rows' spelling (``2``, ``nan``)."""
    from unicoal.evaluate.rows import format_scale, format_value

    return [{c: (format_scale(r[c]) if c == "scale" else format_value(r[c]) if isinstance(r[c], float) else r[c])
             for c in columns} for r in records]


def _digits(metric: str) -> int:
    return 2 if metric == "PSNR" else 3


def _markdown(records: Sequence[dict], seeds: Sequence[dict], convention: str = "brainmask") -> str:
    """Per cell, one Markdown table: the methods' PSNR / SSIM / DSC with CIs and the reference gain."""
    from unicoal.evaluate.stats import method_key

    lines = []
    groups: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["metric"] != "DSC" and r["convention"] != convention:
            continue
        groups[(r["table"], r["dataset"], r["task"], r["source"], r["target"], r["scale"])][r["method"]][r["metric"]] = r
    for cell in sorted(groups, key=lambda c: tuple(str(x) for x in c)):
        table, dataset, task, source, target, scale = cell
        methods = groups[cell]
        metrics = [m for m in METRICS if any(m in v for v in methods.values())]
        lines += [f"### {table or '(any table)'}: {dataset} {task} {source} -> {target} x{scale:g} "
                  f"(image metrics inside the brain mask; reference {trivial_reference(task) or '-'})", ""]
        head = ["method"] + [h for m in metrics for h in (f"{m} mean ± sd", f"{m} 95% CI", f"{m} Δ ref [95% CI], wins")]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        refs = reference_methods()

        def order(name: str) -> tuple:  # learned methods by the first metric's mean, references last
            first = methods[name].get(metrics[0]) or {}
            mean = first.get("mean", math.nan)
            return (method_key(name.partition("@")[0]) in refs, -mean if math.isfinite(mean) else math.inf, name)

        for name in sorted(methods, key=order):
            row = [name]
            for m in metrics:
                r = methods[name].get(m)
                if r is None:
                    row += ["", "", ""]
                    continue
                dg = _digits(m)
                row.append(f"{_fmt(r['mean'], dg)} ± {_fmt(r['sd'], dg)}")
                row.append(f"[{_fmt(r['ci_low'], dg)}, {_fmt(r['ci_high'], dg)}]")
                row.append(f"{r['diff']:+.{dg}f} [{_fmt(r['diff_ci_low'], dg)}, {_fmt(r['diff_ci_high'], dg)}], "
                           f"{r['wins']}/{r['n_paired']}" if r["reference"] and r["n_paired"] else "")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if seeds:
        lines += ["### Seed spread", "", "| table | cell | metric | method | seed 0 | seed N | spread | nearest other method (gap) |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in seeds:
            if s["metric"] != "DSC" and s["convention"] != convention:
                continue
            dg = _digits(s["metric"])
            lines.append(f"| {s['table']} | {s['task']} {s['source']} -> {s['target']} x{s['scale']:g} | {s['metric']} | "
                         f"{s['method']} | {_fmt(s['mean_seed0'], dg)} | {_fmt(s['mean_seed'], dg)} (seed {s['seed']}) | "
                         f"{_fmt(s['spread'], dg)} | {s['nearest_method']} ({_fmt(s['nearest_gap'], dg)}) |")
        lines.append("")
    return "\n".join(lines)


def write_method_stats(out_dir: str | Path, rows: Sequence, level: float = 0.95) -> tuple[list[dict], list[dict]]:
    """Write ``methods.csv``, ``seeds.csv`` and ``methods.md`` into ``out_dir``; return the records."""
    from unicoal.io import atomic_path, write_csv

    records = method_stats(rows, level)
    seeds = seed_spread(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "methods.csv", METHOD_COLUMNS, _formatted(records, METHOD_COLUMNS))
    write_csv(out / "seeds.csv", SEED_COLUMNS, _formatted(seeds, SEED_COLUMNS))
    with atomic_path(out / "methods.md") as tmp:
        tmp.write_text(_markdown(records, seeds), encoding="utf-8")
    return records, seeds


def methods_section(tables_dir: Path | None) -> str:
    """The report's section: ``methods.md`` of ``unicoal tables`` as HTML tables."""
    if tables_dir is None or not (tables_dir / "methods.md").is_file():
        return '<p class="note">No per-method statistics (methods.md of `unicoal tables`) given.</p>'
    parts = ['<p class="note">Per method and cell: mean ± sd (sample) and the 95 % Student-t interval of the mean over '
             "the test subjects; Δ ref = the mean paired difference to the cell's trivial reference (Copy of the source "
             "contrast for CMS/CMSR, Linear interpolation for SR) with its 95 % interval, and on how many subjects the "
             "method is better. PSNR and SSIM inside the brain mask (convention brainmask). Rows <i>method@seedN</i> are "
             "the same training with another seed; the seed-spread table sets their difference beside the nearest "
             "method gap.</p>"]
    table: list[str] = []

    def flush():
        if table:
            head, body = table[0], table[2:]
            cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
            parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells(head)) + "</tr></thead><tbody>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(b)) + "</tr>" for b in body)
                         + "</tbody></table>")
            table.clear()

    for line in (tables_dir / "methods.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("### "):
            parts.append(f"<h3>{html.escape(line[4:])}</h3>")
    flush()
    return "\n".join(parts)

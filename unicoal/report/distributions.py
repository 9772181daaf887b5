"""Per-subject distributions of a run: one box + strip plot per table cell group (matplotlib, PNG).

A table prints mean ± std; a reader judging a 0.2 dB difference over 3 subjects needs the
subjects themselves. For every table and every (dataset, task, source -> target, scale, metric)
cell group with results, one panel shows each method's per-subject values: a box (quartiles,
whiskers at 1.5 IQR) and every subject as a dot. Reference methods that the paper does not have
(interpolation, copy, the real images) are drawn in grey. Non-finite values (PSNR ``inf`` of
identical volumes) cannot be drawn and are counted in the panel title.
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Sequence

import numpy as np

from unicoal.report.specs import reference_methods

__all__ = ["PANEL_METRICS", "group_rows", "render_distributions"]

#: metrics drawn (the table metrics; slice-wise variants with ``slicewise``)
PANEL_METRICS: tuple[str, ...] = ("PSNR", "SSIM", "DSC", "DSC_WT", "DSC_TC", "DSC_ET")


def _method_order(table: str) -> list[str]:
    from unicoal.evaluate.stats import method_key
    from unicoal.report.specs import TABLE_SPECS

    spec = TABLE_SPECS.get(table)
    if spec is None:
        return []
    names = [line.method for line in spec.rows if line.method] + [b.method for b in spec.blocks if b.method]
    return [method_key(n) for n in names]


def group_rows(rows: Sequence, convention: str = "published", slicewise: bool = False) -> dict[str, dict[tuple, dict[str, list[float]]]]:
    """``table -> cell group -> method -> values`` for the drawn metrics of one convention."""
    from unicoal.report.tables import IMAGE_METRICS

    wanted = {f"{m}_slice" if slicewise and m in ("PSNR", "SSIM") else m for m in PANEL_METRICS}
    out: dict[str, dict[tuple, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if r.metric not in wanted:
            continue
        if r.metric in IMAGE_METRICS and r.convention not in ("", convention):
            continue
        group = (r.dataset, r.task or "real", r.source, r.target, r.scale, r.metric)
        out[r.table or ""][group][r.method].append(r.value)
    return out


def _panel_title(group: tuple) -> str:
    dataset, task, source, target, scale, metric = group
    pair = source if source == target else f"{source}->{target}"
    return f"{dataset} {task} {pair} x{scale:g}\n{metric}"


def render_distributions(rows: Sequence, convention: str = "published", slicewise: bool = False,
                         dpi: int = 90, max_panels: int = 48) -> list[dict]:
    """One PNG per table: ``[{"table", "png" (bytes), "panels", "values", "non_finite"}]``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from unicoal.evaluate.stats import method_key

    refs = reference_methods()
    figures = []
    for table, groups in sorted(group_rows(rows, convention, slicewise).items()):
        order = _method_order(table)
        keys = sorted(groups, key=lambda g: (g[5].startswith("DSC"), g[0], g[1], g[2], g[3], g[4], g[5]))[:max_panels]
        if not keys:
            continue
        ncol = min(4, len(keys))
        nrow = math.ceil(len(keys) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
        rng = np.random.default_rng(0)
        drawn = non_finite = 0
        for ax, g in zip(axes.ravel(), keys):
            methods = sorted(groups[g], key=lambda m: (order.index(method_key(m)) if method_key(m) in order else len(order), m))
            data, skipped = [], 0
            for m in methods:
                vals = np.asarray(groups[g][m], dtype=np.float64)
                skipped += int(np.sum(~np.isfinite(vals) & ~np.isnan(vals)))
                data.append(vals[np.isfinite(vals)])
            non_finite += skipped
            pos = np.arange(1, len(methods) + 1)
            filled = [i for i, d in enumerate(data) if d.size]
            if filled:
                bp = ax.boxplot([data[i] for i in filled], positions=pos[filled], widths=0.55, showfliers=False, patch_artist=True)
                for patch, i in zip(bp["boxes"], filled):
                    grey = method_key(methods[i]) in refs
                    patch.set_facecolor("#d9d9d9" if grey else "#c6d7ef")
                    patch.set_edgecolor("#777777" if grey else "#24508f")
            for i, d in enumerate(data):
                if d.size:
                    ax.scatter(pos[i] + rng.uniform(-0.12, 0.12, d.size), d, s=12, zorder=3,
                               color="#555555" if method_key(methods[i]) in refs else "#b42318")
                    drawn += d.size
            ax.set_xticks(pos)
            ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            title = _panel_title(g) + (f" ({skipped} inf not drawn)" if skipped else "")
            ax.set_title(title, fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        for ax in axes.ravel()[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        figures.append({"table": table, "png": buf.getvalue(), "panels": len(keys), "values": drawn, "non_finite": non_finite})
    return figures

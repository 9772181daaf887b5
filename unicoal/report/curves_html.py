"""The report's "Learning curves (validation split)" section, from the --out-dir of ``unicoal curves``.

Apart from :mod:`unicoal.report.curves` so that ``unicoal curves`` does not import the report's
code (an edit to the HTML report re-runs only the report, not the curves).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from unicoal.errors import InputError

__all__ = ["curves_section"]


def curves_section(curves_dir: Path | None) -> str:
    """Each table's PNG inline and its models' selected step, best and last validation PSNR."""
    from unicoal.report.html import _e, _simple_table

    if curves_dir is None:
        return '<p class="note">No learning curves given (<code>--curves</code>, the --out-dir of <code>unicoal curves</code>).</p>'
    manifest = Path(curves_dir) / "curves.json"
    if not manifest.is_file():
        raise InputError(manifest, "file not found", "pass the --out-dir of `unicoal curves` as --curves")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        tables = doc["tables"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(manifest, f"not a curves manifest ({type(err).__name__}: {err})", "re-run `unicoal curves`") from None
    parts = ['<p class="note">Model selection: every model is scored on the validation subjects every '
             f"<code>run.val_every</code> steps ({_e(doc.get('metric', 'val_psnr_head'))}: PSNR over the head inside the "
             "model's field of view, averaged over its validation cells; a model trained for several cells, e.g. Table IV's "
             "unified ones, averages them, so its curve is not a single cell's). The star marks the selected step, whose "
             "weights ship as model.pt; dashed lines are seed replicates. The test split is not used here.</p>"]
    if not any(t.get("png") for t in tables.values()):
        parts.append('<p class="note">No model of this run has validation scores (val.csv): validation was off '
                     "(run.val_every 0, as in -profile test) or no training finished, so there are no learning curves.</p>")
    for name in sorted(tables):
        t = tables[name]
        parts.append(f"<h3>{_e(name)}</h3>")
        if t.get("png"):
            png = Path(curves_dir) / t["png"]
            if not png.is_file():
                raise InputError(png, "file not found (named by curves.json)", "re-run `unicoal curves`")
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="learning curves {_e(name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_e(name)}: validation PSNR vs optimiser step ({len(t['models'])} model(s))</figcaption></figure>")
            parts.append(_simple_table(["model", "method", "selected step", "best val PSNR", "last val PSNR (step)"],
                                       [[m["train_id"], m["label"], m["selected_step"], f"{m['best_psnr']:.2f}",
                                         f"{m['last_psnr']:.2f} ({m['last_step']})"] for m in t["models"]]))
        by_reason: dict[str, list[str]] = {}
        for s in t.get("skipped", []):
            by_reason.setdefault(s["reason"], []).append(f"{s['method_id']} ({s['train_id']})")
        parts += [f'<p class="note">No curve, {_e(reason)}: {_e(", ".join(names))}.</p>' for reason, names in by_reason.items()]
    return "\n".join(parts)

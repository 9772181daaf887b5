"""One self-contained HTML report of a run: cohort, preprocessing, Tables I-VI, comparison with
the paper, figures, timings and software versions.

Everything is inline (CSS in a ``<style>`` element, PNG figures as base64 ``data:`` URIs), so the
file can be mailed or archived and opens offline in any browser. Inputs are the outputs of other
steps: ``tables.json`` (``unicoal tables``), ``*.png`` + ``figures.json`` (``unicoal figures``),
the samplesheet, JSON/YAML preprocessing sidecars, a Nextflow ``trace.txt`` and ``versions.yml``.
"""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

from unicoal.errors import InputError

__all__ = ["CSS", "table_html", "comparison_html", "build_report", "write_report"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1400px;color:#1b1f24;background:#fff;line-height:1.4}
h1{font-size:26px;border-bottom:3px solid #24508f;padding-bottom:6px}
h2{font-size:20px;color:#24508f;margin-top:32px;border-bottom:1px solid #ccd}
h3{font-size:15px;margin-bottom:4px}
nav a{margin-right:14px;color:#24508f}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:12px}
th,td{border:1px solid #c8ccd4;padding:3px 7px;text-align:center;white-space:nowrap}
th{background:#e9eef6}
td.lab{text-align:left;font-weight:500}
tr.grp td{background:#f4f6fa;font-weight:700;text-align:left}
td.b{font-weight:700}
td.missing{color:#999}
.note{font-size:12px;color:#555}
.kv td:first-child{text-align:left;font-weight:600;background:#f7f8fa}
.kv td{text-align:left;white-space:normal;max-width:900px;overflow-wrap:anywhere}
figure{margin:12px 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;border:1px solid #ccd}
figcaption{font-size:12px;color:#444}
.pos{color:#1a7f37}.neg{color:#b42318}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def table_html(t: dict) -> str:
    """HTML of one rendered table from ``tables.json`` (two header rows, group headings, bold)."""
    blocks = t["blocks"]
    two_rows = any(m for _, ms in blocks for m in ms)
    out = [f'<table class="paper" id="{_e(t["name"])}">',
           f'<caption><b>Table {_e(t["roman"])}.</b> {_e(t["title"])}</caption><thead><tr>']
    out.append(f'<th rowspan="{2 if two_rows else 1}">{_e(t["corner"])}</th>')
    for label, ms in blocks:
        out.append(f'<th colspan="{len(ms)}">{_e(label)}</th>')
    out.append("</tr>")
    if two_rows:
        out.append("<tr>" + "".join(f"<th>{_e(m)}</th>" for _, ms in blocks for m in ms) + "</tr>")
    out.append("</thead><tbody>")
    ncol = sum(len(ms) for _, ms in blocks) + 1
    for row in t["body"]:
        if "group" in row:
            out.append(f'<tr class="grp"><td colspan="{ncol}">{_e(row["group"])}</td></tr>')
            continue
        cells = []
        for c in row["cells"]:
            text = c["text"] + ("*" if c.get("significant") else "")
            cls = "b" if c.get("bold") else ("missing" if c["text"] == "-" else "")
            title = f' title="n = {c["n"]}"' if c.get("n") else ""
            cells.append(f'<td class="{cls}"{title}>{_e(text)}</td>')
        out.append(f'<tr><td class="lab">{_e(row["label"])}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    if t.get("filled_cells") == 0:
        out.append('<p class="note">No results for this table in this run.</p>')
    for note in t.get("notes", []):
        out.append(f'<p class="note">{_e(note)}</p>')
    return "\n".join(out)


def comparison_html(rows: Sequence[dict]) -> str:
    if not rows:
        return '<p class="note">No comparison (no reference numbers were given to <code>unicoal tables</code>).</p>'
    head = ["Table", "Group", "Row", "Column", "Metric", "Ours", "Paper", "Ours - paper", "n"]
    out = ['<table class="comparison"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        d = r["difference"]
        cls = "pos" if d.startswith("+") and d.strip("+0.") else ("neg" if d.startswith("-") and d != "-" else "")
        vals = [r["table"], r["group"], r["row"], r["block"], r["metric"], r["ours"], r["paper"]]
        out.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in vals) + f'<td class="{cls}">{_e(d)}</td><td>{_e(r["n"])}</td></tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _kv_table(items: Sequence[tuple[str, Any]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in items) + "</table>"


def _simple_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows]
    return "\n".join(out) + "</tbody></table>"


def _cohort_section(sheet: Path | None) -> str:
    if sheet is None:
        return '<p class="note">No samplesheet given.</p>'
    if not sheet.is_file():
        raise InputError(sheet, "file not found", "pass the samplesheet CSV (subject,modality,path[,label][,split])")
    with open(sheet, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("subject", "modality", "path") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(sheet, f"missing column(s) {', '.join(missing)}", "a samplesheet has subject,modality,path[,label][,split]")
        recs = list(reader)
    subjects: dict[str, dict] = defaultdict(lambda: {"modalities": set(), "split": "", "label": False})
    for r in recs:
        s = subjects[r["subject"]]
        s["modalities"].add(r["modality"])
        s["split"] = s["split"] or (r.get("split") or "")
        s["label"] = s["label"] or bool((r.get("label") or "").strip())
    mods = Counter(r["modality"] for r in recs)
    splits = Counter(s["split"] or "(none)" for s in subjects.values())
    parts = [_kv_table([
        ("samplesheet", sheet.name), ("subjects", len(subjects)), ("volumes", len(recs)),
        ("modalities", ", ".join(f"{m} ({n})" for m, n in sorted(mods.items()))),
        ("splits", ", ".join(f"{k}: {v}" for k, v in sorted(splits.items()))),
        ("subjects with lesion labels", sum(1 for s in subjects.values() if s["label"])),
    ])]
    rows = [(sid, ", ".join(sorted(s["modalities"])), s["split"], "yes" if s["label"] else "")
            for sid, s in sorted(subjects.items())[:200]]
    parts.append("<details><summary>Subjects</summary>" + _simple_table(["subject", "modalities", "split", "label"], rows) + "</details>")
    return "\n".join(parts)


def _load_structured(path: Path) -> Any:
    if not path.is_file():
        raise InputError(path, "file not found", "check the path")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(path, f"not valid JSON ({err})", "regenerate the file") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML ({' '.join(str(err).split())})", "regenerate the file") from None


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and len(obj) > 8:
        return [(prefix, f"[{len(obj)} items]")]
    text = ", ".join(map(str, obj)) if isinstance(obj, list) else str(obj)
    return [(prefix, text if len(text) <= 300 else text[:297] + "...")]


def _preprocessing_section(files: Sequence[Path]) -> str:
    if not files:
        return '<p class="note">No preprocessing sidecars given.</p>'
    parts = [f"<p>{len(files)} sidecar(s); open one for its parameters and software versions.</p>"]
    for f in files:  # collapsed: one block per volume would otherwise push the tables far down
        parts.append(f"<details><summary>{_e(f.name)}</summary>" + _kv_table(_flatten(_load_structured(f))[:200]) + "</details>")
    return "\n".join(parts)


_TRACE_COLUMNS = ("name", "status", "exit", "duration", "realtime", "%cpu", "peak_rss", "peak_vmem")


def _timings_section(trace: Path | None) -> str:
    if trace is None:
        return '<p class="note">No Nextflow trace given.</p>'
    if not trace.is_file():
        raise InputError(trace, "file not found", "pass the Nextflow trace (trace.txt, tab-separated)")
    with open(trace, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        if "name" not in header:
            raise InputError(trace, f"no 'name' column (got {', '.join(header) or 'nothing'})", "pass a Nextflow trace.txt (tab-separated)")
        recs = list(reader)
    cols = [c for c in _TRACE_COLUMNS if c in header]
    per_process = Counter(r["name"].split(" (")[0] for r in recs)
    summary = _simple_table(["process", "tasks"], sorted(per_process.items()))
    return summary + "<details><summary>All tasks</summary>" + _simple_table(cols, [[r.get(c, "") for c in cols] for r in recs]) + "</details>"


def _versions_section(files: Sequence[Path]) -> str:
    from unicoal.io import software_versions

    rows = [("unicoal report", k, v) for k, v in software_versions("numpy", "scipy", "scikit-image", "matplotlib", "nibabel").items()]
    for f in files:
        data = _load_structured(f) or {}
        if not isinstance(data, dict):
            raise InputError(f, "expected a mapping process -> {tool: version}", "pass an nf-core style versions.yml")
        for proc, tools in data.items():
            if isinstance(tools, dict):
                rows += [(proc, tool, ver) for tool, ver in tools.items()]
            else:
                rows.append(("", proc, tools))
    return _simple_table(["process", "software", "version"], rows)


def _figures_section(fig_dir: Path | None) -> str:
    if fig_dir is None:
        return '<p class="note">No figures given.</p>'
    if not fig_dir.is_dir():
        raise InputError(fig_dir, "figure folder not found", "pass the --out-dir of `unicoal figures`")
    captions = {}
    manifest = fig_dir / "figures.json"
    if manifest.is_file():
        for f in json.loads(manifest.read_text(encoding="utf-8")).get("figures", []):
            captions[Path(f["path"]).name] = f"{f['figure']} ({f['kind']})"
    pngs = sorted(fig_dir.glob("*.png"))
    if not pngs:
        return '<p class="note">The figure folder has no PNG files.</p>'
    parts = []
    for p in pngs:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{_e(p.stem)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_e(captions.get(p.name, p.stem))}</figcaption></figure>")
    return "\n".join(parts)


def build_report(
    tables_dir: str | os.PathLike | None,
    figures_dir: str | os.PathLike | None = None,
    cohort: str | os.PathLike | None = None,
    timings: str | os.PathLike | None = None,
    versions: Sequence[str | os.PathLike] = (),
    preprocessing: Sequence[str | os.PathLike] = (),
    title: str = "Uni-COAL benchmark report",
) -> str:
    """The report as one HTML string (see the module docstring for the inputs)."""
    tables: list[dict] = []
    comparison: list[dict] = []
    meta: dict = {}
    if tables_dir is not None:
        manifest = Path(tables_dir) / "tables.json"
        if not manifest.is_file():
            raise InputError(manifest, "file not found", "pass the --out-dir of `unicoal tables`")
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        tables, comparison = meta.get("tables", []), meta.get("comparison", [])
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("cohort", "Cohort", _cohort_section(Path(cohort) if cohort else None)),
        ("preprocessing", "Preprocessing", _preprocessing_section([Path(p) for p in preprocessing])),
        ("tables", "Tables I-VI",
         (f'<p class="note">Image metrics: convention <b>{_e(meta.get("convention", "?"))}</b>'
          f'{" (slice-wise mean)" if meta.get("slicewise") else " (whole 3D volume)"}; mean ± std over test subjects; '
          "best in bold; '-' = no result; * = p &lt; "
          f'{_e(meta.get("alpha", 0.05))} vs Uni-COAL ({_e(meta.get("test", "wilcoxon"))}) when statistics were given.</p>'
          if tables else "") + ("\n".join(table_html(t) for t in tables) or '<p class="note">No tables given.</p>')),
        ("comparison", "Comparison with the paper", comparison_html(comparison) + (
            f'<details><summary>{len(meta["unmatched"])} result(s) that match no table cell</summary><ul>'
            + "".join(f"<li>{_e(u)}</li>" for u in meta["unmatched"]) + "</ul></details>" if meta.get("unmatched") else "")),
        ("figures", "Figures", _figures_section(Path(figures_dir) if figures_dir else None)),
        ("timings", "Timings", _timings_section(Path(timings) if timings else None)),
        ("versions", "Software versions", _versions_section([Path(v) for v in versions])),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "\n".join(f'<section id="{sid}"><h2>{_e(name)}</h2>\n{content}\n</section>' for sid, name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head>\n<body><h1>{_e(title)}</h1>"
            f'<p class="note">Generated {now}. Reproduction of Song et al., "Uni-COAL: A Unified Framework for '
            f'Cross-Modality Synthesis and Super-Resolution of MR Images".</p><nav>{nav}</nav>\n{body}\n</body></html>\n')


def write_report(out: str | os.PathLike, **kwargs) -> Path:
    from unicoal.io import atomic_path

    text = build_report(**kwargs)
    dest = Path(out)
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest

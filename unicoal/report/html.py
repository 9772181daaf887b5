"""One self-contained HTML report of a run: cohort, preprocessing, Tables I-VI (with reference
rows), per-subject distributions, p-values (raw and Holm), the comparison with the paper and its
ranking, metric conventions side by side, the segmentation budget, figures, timings, provenance
and software versions.

Everything is inline (CSS in a ``<style>`` element, PNG figures as base64 ``data:`` URIs), so the
file can be mailed or archived and opens offline in any browser. Inputs are the outputs of other
steps: ``tables.json`` and ``rows.csv`` (``unicoal tables``), ``*.png`` + ``figures.json``
(``unicoal figures``), ``curves.json`` + PNG (``unicoal curves``), the samplesheet, JSON/YAML
preprocessing sidecars, a Nextflow ``trace.txt``, ``versions.yml``, the pipeline parameters (JSON)
and the train configs of the plan.
"""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import hashlib
import html
import json
import math
import os
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

from unicoal.errors import InputError
from unicoal.report.curves_html import curves_section
from unicoal.report.method_stats import methods_section

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
table.paper th,table.paper td{padding:2px 4px;font-size:11px}
td.lab{text-align:left;font-weight:500}
tr.grp td{background:#f4f6fa;font-weight:700;text-align:left}
td.b{font-weight:700}
td.missing{color:#999}
td.notrun{color:#b07800;font-style:italic}
td.na{color:#bbb}
tr.ref td{background:#fafafa;color:#555}
.flag{color:#b42318;font-weight:700}
.note{font-size:12px;color:#555}
.kv td:first-child{text-align:left;font-weight:600;background:#f7f8fa}
.kv td{text-align:left;white-space:normal;max-width:900px;overflow-wrap:anywhere}
figure{margin:12px 0;display:inline-block;vertical-align:top}
pre{font-size:11px;background:#f7f8fa;padding:6px;text-align:left}
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
    status_class = {"cannot": "missing", "not_run": "notrun", "n/a": "na"}
    status_title = {"cannot": "the method cannot perform this task", "not_run": "not run in this experiment",
                    "n/a": "does not apply"}
    for row in t["body"]:
        if "group" in row:
            out.append(f'<tr class="grp"><td colspan="{ncol}">{_e(row["group"])}</td></tr>')
            continue
        cells = []
        for c in row["cells"]:
            text = c["text"] + ("*" if c.get("significant") else "") + ("‡" if c.get("significant_holm") else "") + c.get("mark", "")
            status = c.get("status", "value")
            cls = "b" if c.get("bold") else status_class.get(status, "missing" if c["text"] == "-" else "")
            if c.get("n"):
                tip = f"n = {c['n']}"
                if c.get("reference"):
                    tip += f"; vs {c['reference']}: p = {_fmt_p(c.get('pvalue'))}, Holm p = {_fmt_p(c.get('pvalue_holm'))}"
                title = f' title="{_e(tip)}"'
            else:
                title = f' title="{status_title[status]}"' if status in status_title else ""
            cells.append(f'<td class="{cls}"{title}>{_e(text)}</td>')
        rcls = ' class="ref"' if row.get("role", "paper") != "paper" else ""
        out.append(f'<tr{rcls}><td class="lab">{_e(row["label"])}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    for note in t.get("notes", []):
        out.append(f'<p class="note">{_e(note)}</p>')
    if t.get("filled_cells") == 0:  # folded, so that the tables with results are seen first
        return (f'<details class="empty"><summary>Table {_e(t["roman"])}: no results in this run '
                "(every cell n.r. or -; open for the layout)</summary>\n" + "\n".join(out) + "</details>")
    return "\n".join(out)


def _fmt_p(p: Any) -> str:
    try:
        v = float(p)
    except (TypeError, ValueError):
        return str(p)
    return "nan" if math.isnan(v) else (f"{v:.2g}" if v < 0.001 else f"{v:.3f}")


def comparison_html(rows: Sequence[dict]) -> str:
    if not rows:
        return '<p class="note">No comparison (no reference numbers were given to <code>unicoal tables</code>).</p>'
    filled = [r for r in rows if r["ours"] != "-"]
    beyond = sum(1 for r in rows if r.get("beyond_std") == "yes")
    head = ["Table", "Group", "Row", "Column", "Metric", "Ours", "Paper", "Ours - paper", "n", "Paper std", "|diff| &gt; paper std"]
    out = [f'<p class="note">{len(filled)} of the paper\'s {len(rows)} cells have a result in this run; '
           f'{beyond} differ from the paper by more than the paper\'s own standard deviation (flagged). '
           "Cells without a result are listed under the table below.</p>",
           '<table class="comparison"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in filled:
        d = r["difference"]
        cls = "pos" if d.startswith("+") and d.strip("+0.") else ("neg" if d.startswith("-") and d != "-" else "")
        vals = [r["table"], r["group"], r["row"], r["block"], r["metric"], r["ours"], r["paper"]]
        flag = r.get("beyond_std", "")
        out.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in vals) + f'<td class="{cls}">{_e(d)}</td><td>{_e(r["n"])}</td>'
                   f'<td>{_e(r.get("paper_std", ""))}</td><td class="{"flag" if flag == "yes" else ""}">{_e(flag)}</td></tr>')
    out.append("</tbody></table>")
    missing = [r for r in rows if r["ours"] == "-"]
    if missing:
        out.append(f"<details><summary>{len(missing)} paper cell(s) without a result in this run</summary>"
                   + _simple_table(["table", "group", "row", "column", "metric", "paper"],
                                   [[r["table"], r["group"], r["row"], r["block"], r["metric"], r["paper"]] for r in missing])
                   + "</details>")
    return "\n".join(out)


def _ranking_html(rows: Sequence[dict]) -> str:
    if not rows:
        return '<p class="note">No ranking to compare: fewer than two of the paper\'s methods have results in a comparison set.</p>'
    agree = sum(1 for r in rows if r["same_best"] == "yes")
    return (f'<p class="note">Does this run order the paper\'s methods as the paper does? One line per comparison set '
            f"(a column; Table IV: a row and metric) with at least two methods: best first, Kendall's tau between our "
            f"means and the paper's. The best method agrees in {agree} of {len(rows)} set(s).</p>"
            + _simple_table(["table", "set", "metric", "methods", "ours (best first)", "paper (best first)", "Kendall tau", "same best"],
                            [[r["table"], r["set"], r["metric"], r["methods"], r["ours"], r["paper"], r["kendall_tau"], r["same_best"]]
                             for r in rows]))


def _pvalues_html(meta: dict) -> str:
    recs = meta.get("pvalues") or []
    if not recs:
        return ('<p class="note">No paired tests: no statistics were given to <code>unicoal tables</code>, or no cell has a '
                "method and its reference method on common subjects.</p>")
    alpha = float(meta.get("alpha", 0.05))
    small = sum(1 for r in recs if _num(r.get("wilcoxon_min_p")) >= alpha)
    rows = []
    for r in sorted(recs, key=lambda r: (r["table"], r["dataset"], r["task"], r["source"], r["target"], float(r["scale"] or 1), r["metric"], r["method"])):
        pair = r["source"] if r["source"] == r["target"] else f"{r['source']}->{r['target']}"
        rows.append([r["table"], f"{r['dataset']} {r['task']} {pair} x{r['scale']}", r["metric"], r["convention"], r["method"],
                     r["reference"], r["n"], r.get("n_dropped", ""), f"{_num(r['mean_diff']):+.4g}", _fmt_p(r["wilcoxon_p"]),
                     _fmt_p(r.get("wilcoxon_p_holm")), _fmt_p(r["ttest_p"]), _fmt_p(r.get("ttest_p_holm")), _fmt_p(r.get("wilcoxon_min_p"))])
    note = (f'<p class="note">Every method against its reference method (Table I: Uni-COAL_one for the 2D group, '
            f"Uni-COAL_multi for the 2.5D/3D group; otherwise the table's Uni-COAL variant), paired over subjects; two-sided "
            f"Wilcoxon signed-rank and paired t-test. Holm: adjusted over every test of the table (one convention). "
            f"'min p': the smallest p an exact Wilcoxon test can give with n pairs (2/2^n); {small} of {len(recs)} test(s) "
            f"cannot reach p &lt; {alpha} at all. 'dropped': pairs with a non-finite value, left out of n.</p>")
    return note + _simple_table(["table", "cell", "metric", "convention", "method", "reference", "n", "dropped", "mean diff",
                                 "Wilcoxon p", "Holm", "t-test p", "Holm", "min p"], rows)


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _conventions_html(meta: dict) -> str:
    recs = meta.get("conventions") or []
    intro = ("<p class=\"note\">The tables use the authors' recipe (<b>published</b>): each volume is clipped at its own "
             "0.5/99.5 percentiles and scaled to [0, 1], background included. It is therefore blind to a global gain or "
             "offset error (a prediction 2t + 5 scores like t against t). <b>targetscale</b> maps both volumes with the "
             "ground truth's percentiles and sees such errors; <b>brainmask</b> measures inside the brain mask only "
             "(the background inflates the published numbers). See docs/evaluation.md.</p>")
    if not recs:
        return intro + '<p class="note">Only one convention was evaluated in this run.</p>'
    convs = sorted({c for r in recs for c in r["values"]}, key=lambda c: (c != meta.get("convention"), c))
    rows = []
    for r in sorted(recs, key=lambda r: (r["table"], r["dataset"], r["task"], r["source"], r["target"], r["scale"], r["metric"], r["method"])):
        pair = r["source"] if r["source"] == r["target"] else f"{r['source']}->{r['target']}"
        rows.append([r["table"], f"{r['dataset']} {r['task']} {pair} x{r['scale']:g}", r["metric"], r["method"]]
                    + [r["values"].get(c, "") for c in convs])
    return intro + _simple_table(["table", "cell", "metric", "method"] + convs, rows)


def _distributions_section(tables_dir: Path | None, meta: dict) -> str:
    if tables_dir is None:
        return '<p class="note">No tables given.</p>'
    rows_csv = tables_dir / "rows.csv"
    if not rows_csv.is_file():
        return '<p class="note">No per-subject rows (rows.csv) in the tables folder: summaries only.</p>'
    from unicoal.evaluate.rows import read_rows
    from unicoal.report.distributions import render_distributions

    figs = render_distributions(read_rows([rows_csv]), meta.get("convention", "published"), bool(meta.get("slicewise")))
    if not figs:
        return '<p class="note">No per-subject values of the tabulated metrics.</p>'
    parts = ['<p class="note">Every subject of every table cell group: boxes (quartiles, whiskers at 1.5 IQR) and one dot '
             "per subject; reference methods not in the paper in grey.</p>"]
    for f in figs:
        data = base64.b64encode(f["png"]).decode("ascii")
        cap = f"{f['table'] or 'rows without a table'}: {f['panels']} cell group(s), {f['values']} value(s)"
        if f["non_finite"]:
            cap += f", {f['non_finite']} infinite value(s) not drawn"
        parts.append(f'<figure class="dist"><img alt="distributions {_e(f["table"])}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_e(cap)}</figcaption></figure>")
    return "\n".join(parts)


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


#: what the report records of its own environment, whether or not versions.yml files are given
REPORT_PACKAGES = ("torch", "nnunetv2", "antspyx", "numpy", "scipy", "scikit-image", "matplotlib", "nibabel")


def _ants_version() -> str | None:
    exe = shutil.which("antsRegistration")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    line = next((ln for ln in out.splitlines() if "ersion" in ln), out.strip().splitlines()[0] if out.strip() else "")
    return line.split(":", 1)[-1].strip() or None


def environment_versions() -> dict[str, str]:
    """Versions of the report's own environment: unicoal, torch, nnunetv2, ANTs (binary or antspyx), ...
    A package that is not installed is listed as such, so the absence is visible."""
    from importlib import metadata

    from unicoal.io import software_versions

    out = software_versions()
    for name in REPORT_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["ANTs (antsRegistration)"] = _ants_version() or "not on PATH"
    return out


def _versions_section(files: Sequence[Path]) -> str:
    rows = [("unicoal report (this environment)", k, v) for k, v in environment_versions().items()]
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


def _git_revision() -> str:
    """The source checkout's commit (``+dirty (N files)`` with local changes), or why it is unknown."""
    import unicoal

    root = Path(unicoal.__file__).resolve().parents[1]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return f"unknown: {root} is not a git checkout (an installed package; see the Pipeline revision in the versions)"
    try:
        rev = subprocess.run([git, "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run([git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=60).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    return (rev or "unknown") + (f" +dirty ({len(dirty)} modified file(s))" if dirty else "")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _input_checksums(sheet: Path | None, limit: int = 500) -> list[list[str]]:
    if sheet is None or not sheet.is_file():
        return []
    out = []
    with open(sheet, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            for col in ("path", "label"):
                val = (r.get(col) or "").strip()
                if not val:
                    continue
                f = Path(val) if Path(val).is_absolute() else sheet.parent / val
                if f.is_file():
                    out.append([r.get("subject", ""), r.get("modality", "") if col == "path" else "label", f.name,
                                f"{f.stat().st_size:,}", _sha256(f)])
                else:
                    out.append([r.get("subject", ""), col, val, "", "not readable from the report task"])
                if len(out) >= limit:
                    return out
    return out


def _config_files(configs: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for c in configs:
        if c.is_dir():
            files += sorted(p for p in c.rglob("*") if p.suffix.lower() in (".yaml", ".yml", ".json") and p.is_file())
        elif c.is_file():
            files.append(c)
        else:
            raise InputError(c, "config file or folder not found", "pass the plan's configs folder or train config files")
    return files


def _provenance_section(sheet: Path | None, params: Path | None, configs: Sequence[Path]) -> str:
    parts = [_kv_table([("git revision of the unicoal source", _git_revision())])]
    if params is not None:
        data = _load_structured(params)
        parts.append(f"<details><summary>Pipeline parameters ({_e(params.name)})</summary>"
                     + _kv_table(_flatten(data)[:300]) + "</details>")
    else:
        parts.append('<p class="note">No pipeline parameters given (<code>--params</code>).</p>')
    files = _config_files(configs)
    where = ""
    if not files and sheet is not None and (sheet.resolve().parent / "configs").is_dir():
        # the plan's samplesheet (`unicoal plan` writes configs/ beside it): its train configs
        files = _config_files([sheet.resolve().parent / "configs"])
        where = " (found beside the plan's samplesheet)"
    if files:
        parts.append(f"<p>{len(files)} train config(s) of the plan, one per trained model{where}:</p>")
        for f in files:
            parts.append(f"<details><summary>{_e(f.name)}</summary><pre>{_e(f.read_text(encoding='utf-8'))}</pre></details>")
    else:
        parts.append('<p class="note">No train configs given (<code>--configs</code>, the plan\'s configs folder).</p>')
    sums = _input_checksums(sheet)
    if sums:
        parts.append(f"<details><summary>SHA-256 of {len(sums)} input file(s) of the samplesheet</summary>"
                     + _simple_table(["subject", "modality", "file", "bytes", "sha256"], sums) + "</details>")
    else:
        parts.append('<p class="note">No input checksums: no samplesheet with readable paths was given.</p>')
    return "\n".join(parts)


def _segmentation_section(meta: dict, params: Path | None) -> str:
    n_dsc = 0
    for t in meta.get("tables", []):
        cols = [m or b for b, ms in t["blocks"] for m in ms]
        for r in t.get("body", []):
            n_dsc += sum(1 for c, col in zip(r.get("cells", []), cols) if c.get("status") == "value" and "DSC" in col)
    p = (_load_structured(params) or {}) if params is not None else {}
    items = []
    if p:
        items += [("DSC computed (dice)", p.get("dice", "?")),
                  ("nnU-Net epochs", p.get("nnunet_epochs") or "nnU-Net's default, 1000"),
                  ("extra nnU-Net training flags", p.get("nnunet_train_args") or "(none)"),
                  ("nnU-Net training splits", p.get("seg_splits") or "train"),
                  ("label regions", p.get("seg_regions", "?"))]
    else:
        items.append(("nnU-Net training budget", "unknown: the pipeline parameters were not given (--params)"))
    items.append(("DSC cells filled in the tables", n_dsc if n_dsc else "0 (no DSC in this run)"))
    note = ('<p class="note">DSC: nnU-Net v2 trained on the real target-modality images of the training splits below '
            "(never the test split), applied to the synthesized test volumes; 'Real (upper bound)' rows apply it to the real "
            "test images, the ceiling of every DSC column: with a budget far below nnU-Net's 1000 epochs, check that row "
            "before reading the others.</p>")
    return note + _kv_table(items)


def _fallbacks(cohort, configs) -> dict:
    """Method -> missing pretrained weights, from the train configs the provenance section lists."""
    from unicoal.report.marks import fallbacks_from_configs

    files = _config_files([Path(c) for c in configs])
    sheet = Path(cohort) if cohort else None
    if not files and sheet is not None and (sheet.resolve().parent / "configs").is_dir():
        files = _config_files([sheet.resolve().parent / "configs"])
    return fallbacks_from_configs(files) if files else {}


def build_report(
    tables_dir: str | os.PathLike | None,
    figures_dir: str | os.PathLike | None = None,
    cohort: str | os.PathLike | None = None,
    timings: str | os.PathLike | None = None,
    versions: Sequence[str | os.PathLike] = (),
    preprocessing: Sequence[str | os.PathLike] = (),
    title: str = "Uni-COAL benchmark report",
    params: str | os.PathLike | None = None,
    configs: Sequence[str | os.PathLike] = (),
    curves_dir: str | os.PathLike | None = None,
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
    fallbacks = _fallbacks(cohort, configs)
    if fallbacks:  # runs without the user's pretrained weights: § on their cells, and a footnote
        from unicoal.report.marks import mark_fallbacks

        for t in tables:
            mark_fallbacks(t, fallbacks)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("cohort", "Cohort", _cohort_section(Path(cohort) if cohort else None)),
        ("preprocessing", "Preprocessing", _preprocessing_section([Path(p) for p in preprocessing])),
        ("tables", "Tables I-VI",
         (f'<p class="note">Image metrics: convention <b>{_e(meta.get("convention", "?"))}</b>'
          f'{" (slice-wise mean)" if meta.get("slicewise") else " (whole 3D volume)"}; mean ± std over test subjects; '
          "best in bold (paper methods only). '-' = the method cannot perform the task (as in the paper), "
          "<i>n.r.</i> = not run in this experiment, n/a = does not apply. Rows and columns under "
          "'Reference rows (not in the paper)' or marked † are not in the paper: interpolation, the copied source contrast "
          "and the real images (the Dice upper bound). * = p &lt; "
          f'{_e(meta.get("alpha", 0.05))} vs the row\'s reference method ({_e(meta.get("test", "wilcoxon"))}, uncorrected as in '
          "the paper), ‡ = also after Holm's correction per table, when statistics were given; each table's notes say "
          "which reference and whether n allows a * at all. § = trained without the user's pretrained weights (a logged "
          "fallback, not the paper's setting; the table's note says which); ¶ = see the table's note (e.g. a detail the "
          "authors did not release). The published convention is blind to gain/offset errors: "
          'see <a href="#conventions">Metric conventions</a>.</p>'
          if tables else "") + ("\n".join(table_html(t) for t in tables) or '<p class="note">No tables given.</p>')),
        ("distributions", "Per-subject distributions", _distributions_section(Path(tables_dir) if tables_dir else None, meta)),
        ("methods", "Methods: 95 % CI, gain over the trivial reference, seed spread", methods_section(Path(tables_dir) if tables_dir else None)),
        ("statistics", "Paired tests (raw and Holm-adjusted p-values)", _pvalues_html(meta)),
        ("comparison", "Comparison with the paper", comparison_html(comparison) + (
            f'<details><summary>{len(meta["unmatched"])} result(s) that match no table cell</summary><ul>'
            + "".join(f"<li>{_e(u)}</li>" for u in meta["unmatched"]) + "</ul></details>" if meta.get("unmatched") else "")),
        ("ranking", "Ranking of methods: this run vs the paper", _ranking_html(meta.get("ranking", []))),
        ("conventions", "Metric conventions", _conventions_html(meta)),
        ("segmentation", "Segmentation (DSC) budget", _segmentation_section(meta, Path(params) if params else None)),
        ("figures", "Figures", _figures_section(Path(figures_dir) if figures_dir else None)),
        ("curves", "Learning curves (validation split)", curves_section(Path(curves_dir) if curves_dir else None)),
        ("timings", "Timings", _timings_section(Path(timings) if timings else None)),
        ("provenance", "Provenance", _provenance_section(Path(cohort) if cohort else None, Path(params) if params else None,
                                                         [Path(c) for c in configs])),
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

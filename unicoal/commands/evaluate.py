"""``unicoal evaluate``: per-subject PSNR, SSIM and MAE of a synthesized volume (paper Sec. IV-A).

One volume per call (``--pred/--target/--out``), or many in one process (``--jobs JOBS.csv``: one
row per volume, the same arguments as the per-volume call; the outputs are identical).
"""
from __future__ import annotations

HELP = "per-subject PSNR/SSIM/MAE of a synthesized volume against its ground truth (rows CSV)"

# --jobs columns -> per-volume option (required ones first); the other options apply to every row
JOB_COLUMNS = ("pred", "target", "out", "mask", "method", "task", "dataset", "subject", "source", "target_modality", "scale", "table")
JOB_REQUIRED = ("pred", "target", "out")
TASKS = ("", "CMS", "SR", "CMSR")

EPILOG = """\
--jobs JOBS.csv: evaluate many volumes in one process. Header line, then one row per volume:
  pred,target,out                 required: as --pred, --target, --out
  mask                            brain mask (as --mask; empty: none)
  method,task,dataset,subject     as --method, --task, --dataset, --subject (empty: the defaults)
  source,target_modality          as --source, --target-modality
  scale,table                     as --scale (empty: 1), --table
Columns may come in any order; only pred, target and out are required. Relative paths resolve
against the CSV's folder. --convention and --also apply to every row. Every row is checked and
evaluated before any output is written; a bad row stops the run with one error line naming the
CSV file and its line number, and nothing is written.
"""


def add_arguments(p) -> None:
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--jobs", default=None, metavar="JOBS.csv", help="CSV of volumes to evaluate in one process (columns below); replaces --pred/--target/--out")
    p.add_argument("--pred", default=None, help="synthesized NIfTI volume (must be on the ground-truth grid)")
    p.add_argument("--target", default=None, help="ground-truth NIfTI volume")
    p.add_argument("--mask", default=None, help="brain mask NIfTI on the same grid (used by --convention brainmask)")
    p.add_argument("--convention", default="published", choices=("published", "brainmask", "wang", "targetscale"),
                   help="published: authors' recipe (whole-volume percentile clip, scikit-image defaults; default); "
                        "brainmask: inside the mask only; wang: Gaussian SSIM of Wang et al. 2004; "
                        "targetscale: both volumes scaled by the ground truth's percentiles (sees gain/offset errors)")
    p.add_argument("--also", default="auto",
                   help="further conventions written beside --convention, comma-separated, or 'none'; "
                        "'auto' (default): targetscale, and brainmask when --mask is given")
    p.add_argument("--out", default=None, help="CSV of result rows to write (long format, one metric per row)")
    p.add_argument("--method", default=None, help="method name written in the rows (default: the prediction's file stem)")
    p.add_argument("--task", default="", choices=TASKS, help="task of the result")
    p.add_argument("--dataset", default="", help="dataset name (BraTS, CSDH, ADNI, IXI, ...)")
    p.add_argument("--subject", default=None, help="subject id (default: the ground truth's file stem)")
    p.add_argument("--source", default="", help="source modality (T1, T2, PD, FLAIR, T1CE)")
    p.add_argument("--target-modality", default="", help="target modality (T1, T2, PD, FLAIR, T1CE)")
    p.add_argument("--scale", type=float, default=1.0, help="thickness ratio h0/h1 (1 for CMS; may be non-integer)")
    p.add_argument("--table", default="", help="paper table this row feeds (table1 .. table6; empty: any matching table)")


def run(args) -> int:
    import sys

    from unicoal.errors import InputError
    from unicoal.evaluate.rows import write_rows

    if args.jobs is None:
        missing = [f"--{k}" for k in ("pred", "target", "out") if getattr(args, k) is None]
        if missing:
            raise InputError(None, f"missing {', '.join(missing)}", "pass --pred, --target and --out, or --jobs JOBS.csv")
        job = _job(args.pred, args.target, args.mask, args.out, args.method, args.task, args.dataset, args.subject,
                   args.source, args.target_modality, args.scale, args.table, args.also)
        results = [_evaluate(job, args.convention)]
    else:
        given = [f"--{k}" for k in ("pred", "target", "out", "mask") if getattr(args, k) is not None]
        if given:
            raise InputError(args.jobs, f"{', '.join(given)} cannot be combined with --jobs", "put them in the jobs CSV's columns")
        results = []
        for line, job in read_jobs(args.jobs, args):
            try:
                results.append(_evaluate(job, args.convention))
            except InputError as err:  # keep its own fix
                where = f"{err.path}: " if err.path else ""
                raise InputError(args.jobs, f"line {line}: {where}{err.problem}", err.fix or "fix or remove the row") from None
            except (ValueError, OSError) as err:
                raise InputError(args.jobs, f"line {line}: {' '.join(str(err).split())}", "fix or remove the row") from None
    for job, rows, summary in results:
        write_rows(job["out"], rows)
        print(summary, file=sys.stderr)
    return 0


def read_jobs(path, args) -> list[tuple[int, dict]]:
    """Read and check a ``--jobs`` CSV: ``[(line number, job)]``; defaults from ``args``.

    Raises:
        InputError: missing file or column, unknown column, empty sheet, or a bad row (line named).
    """
    import os
    from pathlib import Path

    from unicoal.errors import InputError
    from unicoal.io import read_csv

    sheet = Path(path)
    if not sheet.is_file():
        raise InputError(sheet, "jobs CSV not found", "check the --jobs path")
    base = sheet.resolve().parent
    header, records = read_csv(sheet, "jobs file")
    missing = [c for c in JOB_REQUIRED if c not in header]
    unknown = [c for c in header if c not in JOB_COLUMNS]
    if missing or unknown:
        problem = f"missing column(s) {', '.join(missing)}" if missing else f"unknown column(s) {', '.join(unknown)}"
        raise InputError(sheet, f"{problem} (header: {','.join(header) or 'empty'})", f"columns are {','.join(JOB_COLUMNS)} (see unicoal evaluate --help)")
    if not records:
        raise InputError(sheet, "no jobs (only a header)", "add one row per volume")

    def path_of(value: str) -> str | None:
        return None if not value else os.path.normpath(value if os.path.isabs(value) else base / value)

    jobs, outs = [], {}
    for i, rec in enumerate(records, start=2):
        cell = {c: (rec.get(c) or "").strip() for c in JOB_COLUMNS}
        try:
            empty = [c for c in JOB_REQUIRED if not cell[c]]
            if empty:
                raise InputError(None, f"empty {', '.join(empty)}", "every row needs pred, target and out")
            try:
                scale = float(cell["scale"]) if cell["scale"] else args.scale
            except ValueError:
                raise InputError(None, f"scale {cell['scale']!r} is not a number", "give the thickness ratio, e.g. 4") from None
            job = _job(path_of(cell["pred"]), path_of(cell["target"]), path_of(cell["mask"]), path_of(cell["out"]),
                       cell["method"] or None, cell["task"], cell["dataset"], cell["subject"] or None, cell["source"],
                       cell["target_modality"], scale, cell["table"], args.also)
            for key in ("pred", "target", "mask"):
                if job[key] is not None and not Path(job[key]).is_file():
                    raise InputError(None, f"{key} file not found: {job[key]}", "fix the path")
            if job["out"] in outs:
                raise InputError(None, f"out {job['out']} is also the output of line {outs[job['out']]}", "give every row its own out")
        except InputError as err:
            raise InputError(sheet, f"line {i}: {' '.join(str(err).split())}", None) from None
        outs[job["out"]] = i
        jobs.append((i, job))
    return jobs


def _job(pred, target, mask, out, method, task, dataset, subject, source, target_modality, scale, table, also) -> dict:
    """Check one volume's arguments; returns them as a dict (the conventions resolved)."""
    from unicoal.errors import InputError
    from unicoal.io import check_writable, nifti_stem
    from unicoal.report.specs import table_key

    if task not in TASKS:
        raise InputError(None, f"task {task!r} is not one of CMS, SR, CMSR", "give CMS, SR, CMSR or leave it empty")
    if not scale > 0:
        raise InputError(None, f"--scale must be > 0, got {scale}", "pass the thickness ratio h0/h1, e.g. 4 or 5.33")
    try:
        table = table_key(table)
    except ValueError as err:
        raise InputError(None, str(err), "pass --table table1 .. table6") from None
    check_writable(out)
    base = dict(table=table, dataset=dataset, task=task, method=method or nifti_stem(pred),
                subject=subject or nifti_stem(target), source=source, target=target_modality, scale=scale)
    return dict(pred=pred, target=target, mask=mask, out=out, also=_also(also, mask), base=base)


def _evaluate(job: dict, convention: str):
    """``(job, result rows, summary line)`` of one volume; nothing is written."""
    import sys
    import warnings

    from unicoal.evaluate.metrics import METRIC_NAMES, evaluate_files
    from unicoal.evaluate.rows import ResultRow, format_value

    conventions = [convention] + [c for c in job["also"] if c != convention]
    rows, base = [], job["base"]
    for conv in conventions:
        with warnings.catch_warnings():
            warnings.simplefilter("always" if conv == convention else "ignore")
            warnings.showwarning = lambda msg, *a, **k: print(f"unicoal: warning: {msg}", file=sys.stderr)
            vals = evaluate_files(job["pred"], job["target"], job["mask"], conv)
        if conv == convention:
            values = vals
        rows += [ResultRow(metric=m, value=vals[m], convention=conv, **base) for m in METRIC_NAMES]
    summary = ", ".join(f"{m} {format_value(round(values[m], 4))}" for m in ("PSNR", "SSIM", "MAE"))
    others = f"; also {', '.join(conventions[1:])}" if len(conventions) > 1 else ""
    return job, rows, f"{job['out']}: {base['subject']} {base['method']} ({convention}): {summary}{others}"


def _also(also: str | None, mask) -> list[str]:
    from unicoal.errors import InputError
    from unicoal.evaluate.metrics import CONVENTIONS

    text = (also or "none").strip().lower()
    if text == "none":
        return []
    if text == "auto":
        return ["targetscale"] + (["brainmask"] if mask else [])
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in CONVENTIONS]
    if bad:
        raise InputError(None, f"unknown convention(s) {', '.join(bad)} in --also", f"use {', '.join(CONVENTIONS)}, auto or none")
    if "brainmask" in names and not mask:
        raise InputError(None, "--also brainmask needs a brain mask", "pass --mask MASK.nii.gz")
    return names

"""``unicoal evaluate``: per-subject PSNR, SSIM and MAE of a synthesized volume (paper Sec. IV-A)."""
from __future__ import annotations

HELP = "per-subject PSNR/SSIM/MAE of a synthesized volume against its ground truth (rows CSV)"


def add_arguments(p) -> None:
    p.add_argument("--pred", required=True, help="synthesized NIfTI volume (must be on the ground-truth grid)")
    p.add_argument("--target", required=True, help="ground-truth NIfTI volume")
    p.add_argument("--mask", default=None, help="brain mask NIfTI on the same grid (used by --convention brainmask)")
    p.add_argument("--convention", default="published", choices=("published", "brainmask", "wang"),
                   help="published: authors' recipe (whole-volume percentile clip, scikit-image defaults; default); "
                        "brainmask: inside the mask only; wang: Gaussian SSIM of Wang et al. 2004")
    p.add_argument("--out", required=True, help="CSV of result rows to write (long format, one metric per row)")
    p.add_argument("--method", default=None, help="method name written in the rows (default: the prediction's file stem)")
    p.add_argument("--task", default="", choices=("", "CMS", "SR", "CMSR"), help="task of the result")
    p.add_argument("--dataset", default="", help="dataset name (BraTS, CSDH, ADNI, IXI, ...)")
    p.add_argument("--subject", default=None, help="subject id (default: the ground truth's file stem)")
    p.add_argument("--source", default="", help="source modality (T1, T2, PD, FLAIR, T1CE)")
    p.add_argument("--target-modality", default="", help="target modality (T1, T2, PD, FLAIR, T1CE)")
    p.add_argument("--scale", type=float, default=1.0, help="thickness ratio h0/h1 (1 for CMS; may be non-integer)")
    p.add_argument("--table", default="", help="paper table this row feeds (table1 .. table6; empty: any matching table)")


def run(args) -> int:
    import sys
    import warnings

    from unicoal.errors import InputError
    from unicoal.evaluate.metrics import METRIC_NAMES, evaluate_files
    from unicoal.evaluate.rows import ResultRow, format_value, write_rows
    from unicoal.io import check_writable, nifti_stem
    from unicoal.report.specs import table_key

    if not args.scale > 0:
        raise InputError(None, f"--scale must be > 0, got {args.scale}", "pass the thickness ratio h0/h1, e.g. 4 or 5.33")
    try:
        table = table_key(args.table)
    except ValueError as err:
        raise InputError(None, str(err), "pass --table table1 .. table6") from None
    check_writable(args.out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"unicoal: warning: {msg}", file=sys.stderr)
        values = evaluate_files(args.pred, args.target, args.mask, args.convention)
    base = dict(table=table, dataset=args.dataset, task=args.task, method=args.method or nifti_stem(args.pred),
                subject=args.subject or nifti_stem(args.target), source=args.source, target=args.target_modality,
                scale=args.scale, convention=args.convention)
    rows = [ResultRow(metric=m, value=values[m], **base) for m in METRIC_NAMES]
    write_rows(args.out, rows)
    summary = ", ".join(f"{m} {format_value(round(values[m], 4))}" for m in ("PSNR", "SSIM", "MAE"))
    print(f"{args.out}: {base['subject']} {base['method']} ({args.convention}): {summary}", file=sys.stderr)
    return 0

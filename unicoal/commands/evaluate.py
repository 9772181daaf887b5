"""``unicoal evaluate``: per-subject PSNR, SSIM and MAE of a synthesized volume (paper Sec. IV-A)."""
from __future__ import annotations

HELP = "per-subject PSNR/SSIM/MAE of a synthesized volume against its ground truth (rows CSV)"


def add_arguments(p) -> None:
    p.add_argument("--pred", required=True, help="synthesized NIfTI volume (must be on the ground-truth grid)")
    p.add_argument("--target", required=True, help="ground-truth NIfTI volume")
    p.add_argument("--mask", default=None, help="brain mask NIfTI on the same grid (used by --convention brainmask)")
    p.add_argument("--convention", default="published", choices=("published", "brainmask", "wang", "targetscale"),
                   help="published: authors' recipe (whole-volume percentile clip, scikit-image defaults; default); "
                        "brainmask: inside the mask only; wang: Gaussian SSIM of Wang et al. 2004; "
                        "targetscale: both volumes scaled by the ground truth's percentiles (sees gain/offset errors)")
    p.add_argument("--also", default="auto",
                   help="further conventions written beside --convention, comma-separated, or 'none'; "
                        "'auto' (default): targetscale, and brainmask when --mask is given")
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
    conventions = [args.convention] + [c for c in _also(args) if c != args.convention]
    check_writable(args.out)
    rows = []
    base = dict(table=table, dataset=args.dataset, task=args.task, method=args.method or nifti_stem(args.pred),
                subject=args.subject or nifti_stem(args.target), source=args.source, target=args.target_modality,
                scale=args.scale)
    for conv in conventions:
        with warnings.catch_warnings():
            warnings.simplefilter("always" if conv == args.convention else "ignore")
            warnings.showwarning = lambda msg, *a, **k: print(f"unicoal: warning: {msg}", file=sys.stderr)
            vals = evaluate_files(args.pred, args.target, args.mask, conv)
        if conv == args.convention:
            values = vals
        rows += [ResultRow(metric=m, value=vals[m], convention=conv, **base) for m in METRIC_NAMES]
    write_rows(args.out, rows)
    summary = ", ".join(f"{m} {format_value(round(values[m], 4))}" for m in ("PSNR", "SSIM", "MAE"))
    others = f"; also {', '.join(conventions[1:])}" if len(conventions) > 1 else ""
    print(f"{args.out}: {base['subject']} {base['method']} ({args.convention}): {summary}{others}", file=sys.stderr)
    return 0


def _also(args) -> list[str]:
    from unicoal.errors import InputError
    from unicoal.evaluate.metrics import CONVENTIONS

    text = (args.also or "none").strip().lower()
    if text == "none":
        return []
    if text == "auto":
        return ["targetscale"] + (["brainmask"] if args.mask else [])
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in CONVENTIONS]
    if bad:
        raise InputError(None, f"unknown convention(s) {', '.join(bad)} in --also", f"use {', '.join(CONVENTIONS)}, auto or none")
    if "brainmask" in names and not args.mask:
        raise InputError(None, "--also brainmask needs a brain mask", "pass --mask MASK.nii.gz")
    return names

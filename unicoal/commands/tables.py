"""``unicoal tables``: the paper's Tables I-VI from per-subject rows, beside the published numbers."""
from __future__ import annotations

HELP = "Tables I-VI in the paper's layout (CSV, Markdown, LaTeX) and a comparison with the paper"


def add_arguments(p) -> None:
    p.add_argument("--in", dest="inputs", action="append", default=[], metavar="ROWS.csv",
                   help="per-subject result rows or summary CSVs (repeat for several files)")
    p.add_argument("--out-dir", required=True, help="folder for tableN.{csv,md,tex}, comparison.*, summary.csv, tables.json, methods.{csv,md}, seeds.csv")
    p.add_argument("--reference", default=None,
                   help="folder of the paper's numbers (default: reports/reference if found; 'none' to skip)")
    p.add_argument("--stats", default=None, help="p-values CSV from `unicoal stats` (marks significance with *)")
    p.add_argument("--convention", default="published", choices=("published", "brainmask", "wang", "targetscale"),
                   help="which metric convention's PSNR/SSIM rows to tabulate (default: published)")
    p.add_argument("--slicewise", action="store_true", help="tabulate the slice-wise mean PSNR/SSIM instead of 3D values")
    p.add_argument("--test", default="wilcoxon", choices=("wilcoxon", "ttest"), help="test used for the * mark")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for the * mark (default 0.05)")
    p.add_argument("--std-ddof", type=int, default=0, choices=(0, 1), help="std over subjects: 0 = population (default), 1 = sample")
    p.add_argument("--table", dest="tables", action="append", default=None, help="only these tables (repeatable)")
    p.add_argument("--configs", action="append", default=[], metavar="PATH",
                   help="train configs (or their folder, or model.pt files): mark with § the methods trained without the user's pretrained weights")


def run(args) -> int:
    import sys

    from unicoal.errors import InputError
    from unicoal.evaluate.stats import read_stats
    from unicoal.report.reference import default_reference_dir, load_reference, read_results
    from unicoal.report.specs import TABLE_SPECS, table_key
    from unicoal.report.tables import write_tables

    if not 0 < args.alpha < 1:
        raise InputError(None, f"--alpha must be in (0, 1), got {args.alpha}", "e.g. --alpha 0.05")
    if args.tables:
        try:
            bad = [t for t in args.tables if table_key(t) not in TABLE_SPECS]
        except ValueError as err:
            raise InputError(None, str(err), "pass --table table1 .. table6") from None
        if bad:
            raise InputError(None, f"unknown table(s) {', '.join(bad)}", "pass --table table1 .. table6")
    try:
        ours = read_results(args.inputs, ddof=args.std_ddof)
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(None, str(err), "remove the duplicate row files") from None
    if args.reference and args.reference.lower() == "none":
        ref_dir = None
    else:
        ref_dir = args.reference or default_reference_dir()
    reference = load_reference(ref_dir) if ref_dir else None
    tests = read_stats(args.stats) if args.stats else None
    subject_rows = _subject_rows(args.inputs)
    from unicoal.report.tables import fallbacks_from_configs

    fallbacks = fallbacks_from_configs(args.configs) if args.configs else None
    try:
        manifest = write_tables(args.out_dir, ours, reference, tests, convention=args.convention, slicewise=args.slicewise,
                                alpha=args.alpha, test=args.test, tables=args.tables, subject_rows=subject_rows, fallbacks=fallbacks)
    except ValueError as err:
        raise InputError(None, str(err), "pass each result once, for one convention") from None
    if subject_rows:  # per method: 95 % CI, gain over the trivial reference, seed spread (methods.md)
        from unicoal.report.method_stats import write_method_stats

        write_method_stats(args.out_dir, subject_rows)
    if manifest["unmatched"]:
        print(f"unicoal: warning: {len(manifest['unmatched'])} result(s) match no table cell, e.g. "
              f"{manifest['unmatched'][0]} (listed in tables.json)", file=sys.stderr)
    filled = ", ".join(f"{t['roman']}: {t['filled_cells']}" for t in manifest["tables"])
    print(f"{args.out_dir}: tables written (filled cells {filled}); reference: {ref_dir or 'none'}", file=sys.stderr)
    return 0


def _subject_rows(paths):
    """The per-subject rows among the inputs (summary CSVs have none): the report's distributions."""
    import csv

    from unicoal.evaluate.rows import ROW_COLUMNS, read_rows

    files = []
    for p in paths:
        with open(p, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if all(c in header for c in ROW_COLUMNS):
            files.append(p)
    return read_rows(files) if files else None

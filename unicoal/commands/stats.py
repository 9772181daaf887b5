"""``unicoal stats``: paired Wilcoxon and t-tests of every method against its reference method,
with Holm-adjusted p-values per table."""
from __future__ import annotations

HELP = "paired Wilcoxon signed-rank and t-tests of every method vs its reference (Uni-COAL variant), Holm-adjusted per table"


def add_arguments(p) -> None:
    p.add_argument("--in", dest="inputs", action="append", required=True, metavar="ROWS.csv",
                   help="per-subject result rows (repeat for several files)")
    p.add_argument("--out", required=True, help="CSV of p-values to write")
    p.add_argument("--reference-method", default="auto",
                   help="method to test against; 'auto' (default) = each table's and row group's Uni-COAL variant "
                        "(Table I: Uni-COAL_one for the 2D group, Uni-COAL_multi for the 2.5D/3D group; Uni-COAL_sr in II, ...); "
                        "rows without a table: the first such variant present")


def run(args) -> int:
    import sys

    from unicoal.errors import InputError
    from unicoal.evaluate.rows import read_rows
    from unicoal.evaluate.stats import compare_methods, write_stats
    from unicoal.report.specs import holm_family, reference_method_for

    rows = read_rows(args.inputs)
    reference = reference_method_for if args.reference_method == "auto" else args.reference_method
    try:
        tests = compare_methods(rows, reference, family=holm_family)
    except ValueError as err:
        raise InputError(None, str(err), "pass each row file once and give every subject a unique id") from None
    write_stats(args.out, tests)
    sig = sum(1 for t in tests if t.wilcoxon_p < 0.05)
    sig_holm = sum(1 for t in tests if t.wilcoxon_p_holm < 0.05)
    dropped = sum(t.n_dropped for t in tests)
    floor = sum(1 for t in tests if t.wilcoxon_min_p >= 0.05)
    print(f"{args.out}: {len(tests)} comparisons from {len(rows)} rows ({sig} with Wilcoxon p < 0.05, {sig_holm} after Holm "
          f"correction per table; {dropped} pair(s) with a non-finite value dropped; {floor} test(s) with too few pairs "
          "for an exact Wilcoxon p < 0.05)", file=sys.stderr)
    return 0

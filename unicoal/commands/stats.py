"""``unicoal stats``: paired Wilcoxon and t-tests of every method against Uni-COAL."""
from __future__ import annotations

HELP = "paired Wilcoxon signed-rank and t-tests of every method vs Uni-COAL over subjects"


def add_arguments(p) -> None:
    p.add_argument("--in", dest="inputs", action="append", required=True, metavar="ROWS.csv",
                   help="per-subject result rows (repeat for several files)")
    p.add_argument("--out", required=True, help="CSV of p-values to write")
    p.add_argument("--reference-method", default="auto",
                   help="method to test against; 'auto' (default) = each table's Uni-COAL variant "
                        "(Uni-COAL_multi in Table I, Uni-COAL_sr in II, ...); rows without a table: the first such variant present")


def run(args) -> int:
    import sys

    from unicoal.evaluate.rows import read_rows
    from unicoal.evaluate.stats import compare_methods, method_key, write_stats
    from unicoal.report.specs import TABLE_SPECS, table_key

    rows = read_rows(args.inputs)
    if args.reference_method == "auto":
        candidates = [s.reference_method for s in TABLE_SPECS.values()] + ["Uni-COAL"]

        def reference(table: str, methods: list[str]) -> str:
            key = table_key(table) if table else ""
            if key in TABLE_SPECS:
                return TABLE_SPECS[key].reference_method
            present = {method_key(m) for m in methods}
            return next((c for c in candidates if method_key(c) in present), "Uni-COAL")
    else:
        reference = args.reference_method
    tests = compare_methods(rows, reference)
    write_stats(args.out, tests)
    sig = sum(1 for t in tests if t.wilcoxon_p < 0.05)
    print(f"{args.out}: {len(tests)} comparisons from {len(rows)} rows ({sig} with Wilcoxon p < 0.05)", file=sys.stderr)
    return 0

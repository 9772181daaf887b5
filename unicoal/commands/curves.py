"""``unicoal curves``: learning curves on the validation split, one plot per table (issue #21)."""
from __future__ import annotations

HELP = "learning curves on the validation split: one PNG + tidy CSV per table from the models' val.csv files"


def add_arguments(p) -> None:
    p.add_argument("--jobs", required=True, help="the jobs CSV of `unicoal plan` (its train rows name each model's tables and method)")
    p.add_argument("--runs", required=True, nargs="+", metavar="DIR",
                   help="run folders holding val.csv (named by train id), or folders of them (e.g. results/models)")
    p.add_argument("--out-dir", required=True, help="folder for <table>.png, <table>.csv and curves.json")
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution (default 100)")


def run(args) -> int:
    import sys

    from unicoal.errors import InputError
    from unicoal.report.curves import write_curves

    if not 20 <= args.dpi <= 600:
        raise InputError(None, f"--dpi must be in 20..600, got {args.dpi}", "e.g. --dpi 100")
    manifest = write_curves(args.jobs, args.runs, args.out_dir, dpi=args.dpi)
    for note in manifest["notes"]:
        print(f"unicoal curves: {note}", file=sys.stderr)
    tables = manifest["tables"]
    drawn = sum(1 for t in tables.values() if t["png"])
    skipped = sum(len(t["skipped"]) for t in tables.values())
    print(f"{args.out_dir}: {drawn} of {len(tables)} table(s) with learning curves"
          + (f"; {skipped} model curve(s) skipped (see curves.json)" if skipped else ""), file=sys.stderr)
    return 0

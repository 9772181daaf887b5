"""``unicoal plan``: expand a paper table's experiment into train and synthesize jobs."""
from __future__ import annotations

HELP = "expand the experiment plan of paper tables into train and synthesize/evaluate jobs (CSV or JSON)"


def add_arguments(p) -> None:
    p.add_argument("--experiment", required=True, help="table1, table2, table3, table4, table6, all, or a comma-separated list")
    p.add_argument("--samplesheet", required=True, metavar="SHEET", help="cohort samplesheet (subject,modality,path[,label][,split])")
    p.add_argument("--out", required=True, help="jobs file: .csv (one row per job) or .json (jobs plus a summary)")
    p.add_argument("--config-dir", default=None, help="folder for one train config YAML per train job (default: configs/ beside --out)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD", help="only these methods (table ids like Uni-COAL_sr or registry names)")
    p.add_argument("--profile", choices=("test", "bench", "full"), default="full", help="test: each table's test subset with tiny models; bench: each table's representative cell, tiny models, one budget per table (docs/benchmark.md); full: the paper (default)")
    p.add_argument("--max-test-subjects", type=int, default=None, help="synthesize for at most this many test subjects (default: from the profile)")
    p.add_argument("--max-steps", type=int, default=None, help="training steps per model (default: from the profile; none = the config's epochs)")
    p.add_argument("--ignore-registry", action="store_true", help="plan every method of the tables, registered or not (for -stub-run wiring checks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subject split when the samplesheet has no split column")


def run(args) -> int:
    import sys

    from unicoal.cohort.samplesheet import read_samplesheet, with_splits
    from unicoal.errors import InputError
    from unicoal.plan import build_plan, load_experiments, write_plan

    if args.max_test_subjects is not None and args.max_test_subjects < 1:
        raise InputError(None, f"--max-test-subjects must be >= 1, got {args.max_test_subjects}", "give a positive number")
    if args.max_steps is not None and args.max_steps < 1:
        raise InputError(None, f"--max-steps must be >= 1, got {args.max_steps}", "give a positive number")
    experiments = load_experiments(args.experiment)
    rows = with_splits(read_samplesheet(args.samplesheet), seed=args.seed)
    plan = build_plan(
        experiments, rows, profile=args.profile, methods=args.methods, ignore_registry=args.ignore_registry,
        max_test_subjects=args.max_test_subjects, max_steps=args.max_steps,
    )
    write_plan(plan, args.out, config_dir=args.config_dir)
    for reason in plan.skipped:
        print(f"unicoal plan: skipped: {reason}", file=sys.stderr)
    print(f"unicoal plan: {len(plan.train)} train jobs, {len(plan.synthesize)} synthesize jobs -> {args.out}", file=sys.stderr)
    return 0

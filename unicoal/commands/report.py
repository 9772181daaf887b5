"""``unicoal report``: one self-contained HTML report of a run."""
from __future__ import annotations

HELP = "self-contained HTML report: cohort, tables, distributions, p-values, comparison with the paper, figures, provenance, versions"


def add_arguments(p) -> None:
    p.add_argument("--tables", default=None, help="the --out-dir of `unicoal tables` (reads tables.json)")
    p.add_argument("--figures", default=None, help="the --out-dir of `unicoal figures` (PNG files are embedded)")
    p.add_argument("--curves", default=None, help="the --out-dir of `unicoal curves` (learning curves on the validation split)")
    p.add_argument("--cohort", default=None, metavar="SHEET", help="samplesheet CSV (subject,modality,path[,label][,split])")
    p.add_argument("--preprocessing", action="append", default=[], metavar="FILE",
                   help="JSON/YAML sidecar(s) summarising preprocessing (repeatable)")
    p.add_argument("--timings", default=None, metavar="TRACE", help="Nextflow trace.txt (tab-separated)")
    p.add_argument("--versions", action="append", default=[], metavar="YML", help="versions.yml file(s) (repeatable)")
    p.add_argument("--params", default=None, metavar="JSON",
                   help="pipeline parameters (e.g. pipeline_info/params_*.json): provenance and the nnU-Net budget")
    p.add_argument("--configs", action="append", default=[], metavar="PATH",
                   help="train configs of the plan (a folder such as plan/configs, or files; repeatable): provenance")
    p.add_argument("--title", default="Uni-COAL benchmark report", help="report title")
    p.add_argument("--out", required=True, help="HTML file to write")


def run(args) -> int:
    import sys

    from unicoal.report.html import write_report

    dest = write_report(args.out, tables_dir=args.tables, figures_dir=args.figures, cohort=args.cohort, timings=args.timings,
                        versions=args.versions, preprocessing=args.preprocessing, title=args.title,
                        params=args.params, configs=args.configs, curves_dir=args.curves)
    print(f"{dest}: report written ({dest.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0

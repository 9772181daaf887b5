"""``unicoal params validate``: check pipeline parameters against nextflow_schema.json (offline)."""
from __future__ import annotations

HELP = "validate Nextflow pipeline parameters against nextflow_schema.json (no plugin, offline)"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("validate", help="validate a params JSON file; one error line lists every problem")
    v.add_argument("params_json", help="parameters as a JSON object (what the pipeline writes, or a -params-file)")
    v.add_argument("--schema", default=None, help="schema file (default: nextflow_schema.json of the source checkout)")
    v.add_argument("--out", default=None, help="write the validated parameters here (JSON)")


def run(args) -> int:
    import sys
    from pathlib import Path

    from unicoal.errors import InputError
    from unicoal.io import write_json
    from unicoal.params import validate_file

    schema = args.schema
    if schema is None:
        schema = Path(__file__).resolve().parents[2] / "nextflow_schema.json"
        if not schema.is_file():
            raise InputError(None, "no --schema given and no nextflow_schema.json beside the package", "pass --schema PATH")
    params = validate_file(args.params_json, schema)
    if args.out:
        write_json(args.out, params)
    print(f"unicoal params: {len(params)} parameters valid", file=sys.stderr)
    return 0

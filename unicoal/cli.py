"""The one entry point ``unicoal``; subcommands are the pipeline steps (see unicoal.commands)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

import unicoal
import unicoal.commands

__all__ = ["main", "build_parser"]


def _command_modules() -> dict[str, object]:
    names = sorted(m.name for m in pkgutil.iter_modules(unicoal.commands.__path__) if not m.name.startswith("_"))
    return {n.replace("_", "-"): importlib.import_module(f"unicoal.commands.{n}") for n in names}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unicoal",
        description="Uni-COAL benchmark: MRI cross-modality synthesis and super-resolution.",
    )
    parser.add_argument("--version", action="version", version=f"unicoal {unicoal.__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in _command_modules().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except KeyboardInterrupt:
        print("unicoal: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as err:  # user-facing: one line
        if getattr(args, "debug", False):
            traceback.print_exc()
        msg = " ".join(str(err).split()) or type(err).__name__
        print(f"unicoal: error: {msg}", file=sys.stderr)
        return 1
    return int(code or 0)

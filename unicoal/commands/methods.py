"""``unicoal methods``: list the registered methods and their capabilities (paper Table V)."""
from __future__ import annotations

HELP = "list the registered synthesis methods and what they can do (CMS / SR / CMSR, paper Table V)"


def add_arguments(p) -> None:
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default: table)")
    p.add_argument("--check", nargs=2, metavar=("METHOD", "TASK"), default=None, help="exit 1 with an error line unless METHOD can perform TASK (cms, sr, cmsr)")


def run(args) -> int:
    from unicoal.errors import InputError
    from unicoal.methods import TASKS, check_task, get_method, methods_table

    if args.check:
        name, task = args.check
        if task.lower() not in TASKS:
            raise InputError(None, f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
        check_task(get_method(name), task.lower())
        print(f"{name}: {task.lower()} ok")
        return 0
    print(methods_table(args.format))
    return 0

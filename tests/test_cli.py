"""The `unicoal` entry point: discovery, help, fast start-up, one-line errors."""
from __future__ import annotations

import subprocess
import sys

from unicoal.cli import _command_modules, build_parser, main


def test_every_command_module_is_complete():
    modules = _command_modules()
    assert {"degrade", "geometry"} <= set(modules)
    for name, mod in modules.items():
        assert isinstance(mod.HELP, str) and mod.HELP, name
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_help_of_every_command(capsys):
    parser = build_parser()
    for name in _command_modules():
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as e:
            assert e.code == 0
        assert "usage: unicoal " + name in capsys.readouterr().out


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, unicoal.cli as c; c.build_parser();"
        "heavy = [m for m in ('torch', 'ants', 'nnunetv2', 'matplotlib', 'nibabel') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"


def test_unknown_command_exits_nonzero(capsys):
    try:
        main(["no-such-step"])
    except SystemExit as e:
        assert e.code == 2
    assert "invalid choice" in capsys.readouterr().err

"""One module per ``unicoal`` subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int | None``.
Modules import heavy dependencies (torch, ants, nnunetv2) inside ``run`` only, so that
``unicoal --help`` stays fast. ``unicoal.cli`` discovers the modules in this package; a
module name ``foo_bar`` becomes the subcommand ``foo-bar``.
"""

"""Preprocessing of brain MR volumes, one module per step (each also a ``unicoal`` subcommand).

* :mod:`unicoal.preprocess.register` - rigid registration of every modality to a reference
  (ANTs, as for IXI in the paper, Sec. IV-A [48]) on a RAS-canonical reference grid.
* :mod:`unicoal.preprocess.skullstrip` - brain mask (deepbet on T1w; threshold fallback).
* :mod:`unicoal.preprocess.normalize` - per-volume robust scaling to [0, 1], invertible.
* :mod:`unicoal.preprocess.degrade` - thick-slice simulation (filter, then downsample).

Submodules are not imported here, so ``import unicoal.preprocess`` stays cheap; heavy
dependencies (antspyx, torch, deepbet) are imported inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["staged_outputs"]


@contextlib.contextmanager
def staged_outputs(out_dir: str | os.PathLike) -> Iterator[Path]:
    """All-or-nothing outputs of one step: yield a hidden staging folder inside ``out_dir``.

    Write every output file into the yielded folder (under its final name). When the block
    succeeds, each file is moved onto ``out_dir`` (an atomic rename on one file system); on any
    exception nothing is moved and the staging folder is removed.
    """
    from unicoal.io import check_writable

    out = Path(out_dir)
    check_writable(out / ".probe")
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield stage
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

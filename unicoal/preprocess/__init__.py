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

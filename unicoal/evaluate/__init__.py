"""Evaluation: image metrics (PSNR/SSIM/MAE), nnU-Net segmentation (``nnunet``) and its Dice (``dice``), paired statistics.

Per-subject results of every evaluation step share one long-format CSV schema,
:data:`unicoal.evaluate.rows.ROW_COLUMNS` (read/write with :func:`read_rows` / :func:`write_rows`).
Submodules with heavy dependencies (scikit-image, scipy, nnU-Net) are imported on use.
"""
from __future__ import annotations

from unicoal.evaluate.rows import ROW_COLUMNS, ResultRow, read_rows, write_rows

__all__ = ["ROW_COLUMNS", "ResultRow", "read_rows", "write_rows"]

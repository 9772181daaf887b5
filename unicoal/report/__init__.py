"""Reporting: the paper's tables (``specs``, ``tables``, ``reference``), figures and the HTML report.

Modules import matplotlib and friends lazily; see ``docs/evaluation.md``.
"""
from __future__ import annotations

__all__: list[str] = []

"""Uni-COAL: unified cross-modality synthesis and super-resolution of MR images.

The package holds all logic of the benchmark pipeline; see ``unicoal --help``.
"""
__version__ = "0.1.0"

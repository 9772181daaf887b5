"""Learning-rate schedule (paper Sec. IV-B): constant for the first half, then linear to 0.

The paper trains 100 epochs with lr 0.0025 (G) / 0.002 (D) "during the first 50 epochs, and
then linearly decrease to 0". Here the horizon is counted in optimiser steps and the decay
starts at ``decay_start`` (0.5) of it.
"""
from __future__ import annotations

__all__ = ["lr_factor", "LinearDecay", "make_scheduler"]


def lr_factor(step: int, total: int, decay_start: float = 0.5) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total`` steps."""
    if total <= 0:
        raise ValueError(f"total steps must be > 0, got {total}")
    start = decay_start * total
    if step < start:
        return 1.0
    span = total - start
    if span <= 0:
        return 0.0
    return max(0.0, (total - step) / span)


class LinearDecay:
    """A plain callable for ``LambdaLR`` (its ``__dict__`` is plain numbers, so the
    scheduler's state dict loads with ``weights_only=True``)."""

    def __init__(self, total: int, decay_start: float = 0.5):
        self.total = int(total)
        self.decay_start = float(decay_start)

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.decay_start)


def make_scheduler(optimizer, total: int, decay_start: float = 0.5):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(total, decay_start))

"""Learning-rate schedule (paper Sec. IV-B): constant for the first half, then linear to 0.

The paper trains 100 epochs with lr 0.0025 (G) / 0.002 (D) "during the first 50 epochs, and
then linearly decrease to 0". Here the horizon is counted in optimiser steps and the decay
starts at ``decay_start`` (0.5) of it.

Methods whose authors train in several runs (ResViT: CNN pre-training, then transformer
fine-tuning at another lr; ProvoGAN: one run per stage) split the horizon into
:class:`Phase` s: each phase has its own constant-then-linear schedule over its own length and
its own base lr, and the trainer restarts Adam (and, where the authors build a new
discriminator, re-initialises D) at each phase start (:class:`unicoal.train.loop.Trainer`).
A network declares its phases with ``optim_phases(total_steps) -> [Phase, ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["lr_factor", "describe_lr", "LinearDecay", "Phase", "PhasedDecay", "make_scheduler", "check_phases"]


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


def describe_lr(lr_g: float, lr_d: float, decay_start: float, epochs: int | None = None) -> str:
    """One line naming the lr schedule of an optimiser config (``unicoal train --dry-run``).

    Methods with phases (ResViT, ProvoGAN) restart this schedule per phase; the line describes
    the base schedule."""
    head = f"lr G {lr_g:g}, D {lr_d:g}: "
    if decay_start >= 1.0:
        return head + "constant (no decay)"
    if decay_start <= 0.0:
        return head + "linear decay to 0 from the first step"
    when = f"epoch {decay_start * epochs:g} of {epochs}" if epochs else f"{decay_start:.0%} of the steps"
    return head + f"constant until {when}, then linear decay to 0"


class LinearDecay:
    """A plain callable for ``LambdaLR`` (its ``__dict__`` is plain numbers, so the
    scheduler's state dict loads with ``weights_only=True``)."""

    def __init__(self, total: int, decay_start: float = 0.5):
        self.total = int(total)
        self.decay_start = float(decay_start)

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.decay_start)


@dataclass(frozen=True)
class Phase:
    """One training phase: from optimiser step ``start`` to the next phase's start.

    Attributes:
        start: first step of the phase (the first phase starts at 0).
        lr: base lr of G and D in this phase (``None``: the config's ``lr_g`` / ``lr_d``).
        fresh_discriminator: re-initialise D when the phase starts (the authors build a new one).
        name: shown in the log.
    """

    start: int
    lr: float | None = None
    fresh_discriminator: bool = False
    name: str = ""


def check_phases(phases: Sequence[Phase], total: int) -> list[Phase]:
    """Phases sorted, validated: the first starts at 0, starts strictly increase, each < total."""
    ph = list(phases)
    if not ph or ph[0].start != 0:
        raise ValueError("the first training phase must start at step 0")
    for a, b in zip(ph, ph[1:]):
        if not a.start < b.start:
            raise ValueError(f"training phases must start at increasing steps, got {[p.start for p in ph]}")
    if ph[-1].start >= max(1, int(total)) and len(ph) > 1:
        raise ValueError(f"training phase {ph[-1].name or len(ph)} starts at step {ph[-1].start}, at or after the horizon {total}")
    for p in ph:
        if p.lr is not None and not p.lr > 0:
            raise ValueError(f"phase lr must be > 0, got {p.lr}")
    return ph


class PhasedDecay:
    """``LambdaLR`` callable over phases: within phase ``i`` (steps ``starts[i] .. ends[i]``) the
    factor is ``scales[i] * lr_factor(step - starts[i], length, decay_start)``, ``scales[i]`` being
    the phase's lr over the optimiser's base lr. Plain numbers only (``weights_only`` loads)."""

    def __init__(self, total: int, decay_start: float, starts: Sequence[int], scales: Sequence[float]):
        self.total = int(total)
        self.decay_start = float(decay_start)
        self.starts = [int(s) for s in starts]
        self.scales = [float(s) for s in scales]

    def phase_of(self, step: int) -> int:
        i = 0
        for j, s in enumerate(self.starts):
            if step >= s:
                i = j
        return i

    def __call__(self, step: int) -> float:
        i = self.phase_of(int(step))
        end = self.starts[i + 1] if i + 1 < len(self.starts) else self.total
        return self.scales[i] * lr_factor(int(step) - self.starts[i], max(1, end - self.starts[i]), self.decay_start)


def make_scheduler(optimizer, total: int, decay_start: float = 0.5, phases: Sequence[Phase] | None = None):
    """``LambdaLR`` of :class:`LinearDecay`, or of :class:`PhasedDecay` when ``phases`` are given
    (each phase's lr relative to the optimiser's base lr)."""
    import torch

    if not phases:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(total, decay_start))
    base = float(optimizer.param_groups[0]["lr"])
    ph = check_phases(phases, total)
    fn = PhasedDecay(total, decay_start, [p.start for p in ph], [(p.lr / base if p.lr is not None else 1.0) for p in ph])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

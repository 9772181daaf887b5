"""Exponential moving average of the generator (paper Sec. III-G: "the exponential moving
average of the generator is used for inference"), parametrised by a half-life in images as in
StyleGAN: ``beta = 0.5 ** (batch / halflife)`` per step (reference facts: 10k images, i.e.
``0.5 ** (16 / 10000)`` at batch 16)."""
from __future__ import annotations

import copy

__all__ = ["ema_beta", "Ema"]


def ema_beta(batch_size: int, halflife_kimg: float, images_seen: int = 0, rampup: float | None = None) -> float:
    """Per-step decay; ``rampup`` limits the half-life to ``rampup * images_seen`` early on."""
    halflife = halflife_kimg * 1000.0
    if rampup is not None:
        halflife = min(halflife, images_seen * rampup)
    if halflife <= 0:
        return 0.0
    return 0.5 ** (batch_size / halflife)


class Ema:
    """Holds ``model`` (a frozen copy of G) and updates it after every optimiser step."""

    def __init__(self, generator, halflife_kimg: float, batch_size: int, rampup: float | None = None):
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)
        self.halflife_kimg = float(halflife_kimg)
        self.batch_size = int(batch_size)
        self.rampup = rampup

    def update(self, generator, images_seen: int) -> float:
        import torch

        beta = ema_beta(self.batch_size, self.halflife_kimg, images_seen, self.rampup)
        with torch.no_grad():
            for p_ema, p in zip(self.model.parameters(), generator.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.model.buffers(), generator.buffers()):
                b_ema.copy_(b)
        return beta

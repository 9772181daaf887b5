"""One shape check for every module boundary (StyleGAN3's ``assert_shape``, with clear errors), and
the feature-matching L1 of the perceptual and SAM losses, which checks its two slices the same way."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_shape", "feature_l1"]


def check_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` and the first bad dimension unless ``tensor`` has ``shape``.

    ``None`` in ``shape`` matches any size. Returns ``tensor`` so calls can be chained.

    Example:
        >>> check_shape(torch.zeros(2, 3, 8, 8), [None, 4, 8, 8], "x_in")
        ValueError: x_in: dim 1 is 3, expected 4 (got shape [2, 3, 8, 8], expected [*, 4, 8, 8])
    """
    want = "[" + ", ".join("*" if s is None else str(int(s)) for s in shape) + "]"
    got = list(tensor.shape)
    if tensor.ndim != len(shape):
        raise ValueError(f"{name}: has {tensor.ndim} dims, expected {len(shape)} (got shape {got}, expected {want})")
    for dim, (g, s) in enumerate(zip(got, shape)):
        if s is not None and g != int(s):
            raise ValueError(f"{name}: dim {dim} is {g}, expected {int(s)} (got shape {got}, expected {want})")
    return tensor


def feature_l1(embed, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of ``embed(fake)`` and ``embed(real)`` for slices ``[B, 1, H, W]``;
    the target's features carry no gradient (the frozen-network losses: perceptual, SAM)."""
    b = check_shape(fake, [None, 1, None, None], "fake").shape[0]
    check_shape(real, [b, 1, fake.shape[2], fake.shape[3]], "real")
    with torch.no_grad():
        target = embed(real)
    return (embed(fake) - target).abs().mean()

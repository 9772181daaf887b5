"""Mapping networks with 2nd-moment-normalised embeddings (paper Sec. III-C; StyleGAN2-ADA [33]).

``MappingNetwork`` turns (latent ``z``, target modality ``c``, relative position ``delta``) into a
vector: each input is embedded independently and normalised to unit second moment, the embeddings
are concatenated and passed through fully connected layers with leaky ReLU and an lr multiplier
of 0.01. With ``z_dim = 0`` it is the attribute mapping network N of the encoder (v) or the
discriminator's projection mapping (cmap); with ``z_dim > 0`` it is M (w).

``delta`` (a scalar in [0, 1)) is embedded by a linear layer whose bias starts at
``delta_bias_init``: 0 by default, as the authors' ``FullyConnectedLayer`` (zhiyuns/UniCOAL); the
normalised embedding is then the same for every delta > 0 until the bias has learned a value.
``delta_bias_init=1`` makes it vary continuously with ``delta`` from the first step (an option).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unicoal.nn.layers import FullyConnected
from unicoal.nn.shapes import check_shape

__all__ = ["normalize_2nd_moment", "MappingNetwork"]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """[norm(z) | norm(FC(onehot c)) | norm(FC(delta))] -> ``num_layers`` x FC(lrelu) -> ``[B, out_dim]``.

    Args:
        z_dim: latent size (0 = no latent).
        num_classes: number of target modalities (one-hot size of c).
        embed_dim: size of each of the c and delta embeddings (64 in the paper config).
        out_dim: output size (w_dim = 512).
        num_layers: fully connected layers after the concatenation (2).
        lr_multiplier: learning-rate multiplier of those layers (0.01).
        use_delta: embed delta (False: c only).
        delta_bias_init: initial bias of the delta embedding (0 = the authors' initialisation).
    """

    def __init__(self, z_dim: int, num_classes: int, embed_dim: int = 64, out_dim: int = 512, num_layers: int = 2,
                 lr_multiplier: float = 0.01, use_delta: bool = True, delta_bias_init: float = 0.0):
        super().__init__()
        if num_classes < 1 or num_layers < 1 or z_dim < 0:
            raise ValueError(f"need num_classes >= 1, num_layers >= 1, z_dim >= 0; got {num_classes}, "
                             f"{num_layers}, {z_dim}")
        self.z_dim, self.num_classes, self.embed_dim, self.out_dim = z_dim, num_classes, embed_dim, out_dim
        self.use_delta = use_delta
        self.embed_c = FullyConnected(num_classes, embed_dim)
        self.embed_delta = FullyConnected(1, embed_dim, bias_init=delta_bias_init) if use_delta else None
        dims = [z_dim + embed_dim * (2 if use_delta else 1)] + [out_dim] * num_layers
        self.layers = nn.Sequential(*[FullyConnected(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
                                      for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, c: torch.Tensor, delta: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        """c: ``[B]`` long class index (or ``[B, num_classes]`` one-hot); delta: ``[B]``; z: ``[B, z_dim]``."""
        if c.ndim == 1:
            c = F.one_hot(c.long(), self.num_classes)
        b = check_shape(c, [None, self.num_classes], "c").shape[0]
        parts = []
        if self.z_dim > 0:
            if z is None:
                raise ValueError("z: required by a mapping network with z_dim > 0")
            parts.append(normalize_2nd_moment(check_shape(z, [b, self.z_dim], "z").float()))
        parts.append(normalize_2nd_moment(self.embed_c(c.float())))
        if self.use_delta:
            if delta is None:
                raise ValueError("delta: required by a mapping network with use_delta=True")
            delta = check_shape(delta.reshape(-1), [b], "delta").float()
            parts.append(normalize_2nd_moment(self.embed_delta(delta[:, None])))
        return self.layers(torch.cat(parts, dim=1))

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, num_classes={self.num_classes}, embed_dim={self.embed_dim}, "
                f"out_dim={self.out_dim}, use_delta={self.use_delta}")

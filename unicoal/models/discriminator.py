"""Projection discriminator (paper Sec. III-E; StyleGAN2 residual blocks [23], projection [37]).

Input: the m source slices concatenated with the real or generated target slice (m + 1 channels).
Residual blocks halve the resolution from r down to 4 (each: 3x3 conv, 3x3 conv with [1, 3, 3, 1]
2x downsampling, 1x1 downsampled skip, summed with gain sqrt(0.5)). Epilogue at 4 x 4: minibatch
standard deviation, 3x3 conv, FC, and the projection

    logit = <phi(x), cmap(c_1, delta)> / sqrt(cmap_dim),

with ``cmap`` from a mapping network over the target modality and the relative position. With
``cfg.projection = False`` (Table VI ablation) the dot product is replaced by a plain FC -> 1.

Example:
    >>> D = Discriminator(UniCoalConfig.tiny())
    >>> D(torch.zeros(2, 4, 64, 64), torch.zeros(2, 1, 64, 64), torch.rand(2), torch.tensor([0, 1])).shape
    torch.Size([2])
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from unicoal.models.config import UniCoalConfig
from unicoal.models.generator import check_generator_inputs
from unicoal.nn.layers import Conv2d, FullyConnected
from unicoal.nn.mapping import MappingNetwork
from unicoal.nn.shapes import check_shape

__all__ = ["Discriminator", "DiscriminatorBlock", "minibatch_std", "mbstd_group_size"]


def mbstd_group_size(batch: int, group: int) -> int:
    """Largest divisor of ``batch`` not above ``group`` (any batch size >= 1 works)."""
    g = max(1, min(group, batch))
    while batch % g:
        g -= 1
    return g


def minibatch_std(x: torch.Tensor, group: int, channels: int = 1) -> torch.Tensor:
    """Append ``channels`` maps holding the std over groups of samples (StyleGAN2 ``MinibatchStdLayer``)."""
    n, c, h, w = x.shape
    g = mbstd_group_size(n, group)
    y = x.reshape(g, -1, channels, c // channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, channels, 1, 1)
    return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class DiscriminatorBlock(nn.Module):
    """StyleGAN2 residual block: conv3x3 -> conv3x3 + 2x down, plus a 1x1 downsampled skip, gain sqrt(0.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, conv_clamp: float | None = 256):
        super().__init__()
        self.conv0 = Conv2d(in_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2d(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x, gain=math.sqrt(0.5))
        return y.add_(self.conv1(self.conv0(x), gain=math.sqrt(0.5)))


class Discriminator(nn.Module):
    """``D(x_in, y, delta, c_out) -> [B]`` logits (real > fake after training)."""

    def __init__(self, cfg: UniCoalConfig):
        super().__init__()
        if not isinstance(cfg, UniCoalConfig):
            raise TypeError(f"cfg must be a UniCoalConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        r = cfg.img_resolution

        def ch(res: int) -> int:
            return min(cfg.d_channel_base // res, cfg.d_channel_max)

        self.fromrgb = Conv2d(cfg.num_inputs + 1, ch(r), 1, activation="lrelu", conv_clamp=cfg.conv_clamp)
        resolutions = [r // 2 ** i for i in range(int(np.log2(r)) - 2)]  # r .. 8
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch(res), ch(res), ch(res // 2), cfg.conv_clamp)
                                      for res in resolutions])
        c4 = ch(4)
        self.conv = Conv2d(c4 + cfg.d_mbstd_channels, c4, 3, activation="lrelu", conv_clamp=cfg.conv_clamp)
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        if cfg.projection:
            self.out = FullyConnected(c4, cfg.d_cmap_dim)
            self.mapping = MappingNetwork(0, cfg.num_modalities, cfg.embed_dim, cfg.d_cmap_dim, cfg.d_mapping_layers,
                                          cfg.mapping_lr_multiplier, delta_bias_init=cfg.delta_bias_init)
        else:
            self.out = FullyConnected(c4, 1)
            self.mapping = None

    def forward(self, x_in: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, c_out: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b = check_generator_inputs(cfg, x_in, delta, c_out)
        check_shape(y, [b, 1, cfg.img_resolution, cfg.img_resolution], "y")
        x = self.fromrgb(torch.cat([x_in, y.to(x_in.dtype)], dim=1))
        x = self.blocks(x)
        x = minibatch_std(x, cfg.d_mbstd_group, cfg.d_mbstd_channels)
        x = self.fc(self.conv(x).flatten(1))
        x = self.out(x)
        if self.mapping is not None:
            cmap = self.mapping(c_out, delta)
            x = (x * cmap.to(x.dtype)).sum(dim=1, keepdim=True) / math.sqrt(cfg.d_cmap_dim)
        return check_shape(x.reshape(-1), [b], "D output")

    def extra_repr(self) -> str:
        return f"img_resolution={self.cfg.img_resolution}, projection={self.cfg.projection}"

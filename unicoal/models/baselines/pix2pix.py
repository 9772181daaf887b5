"""pix2pix: image-to-image translation with a conditional GAN (baseline of Table I, 2D CMS).

Reference: P. Isola, J.-Y. Zhu, T. Zhou and A. A. Efros, "Image-to-image translation with
conditional adversarial networks", CVPR 2017 (the Uni-COAL paper's [49]). Authors' code:
github.com/junyanz/pytorch-CycleGAN-and-pix2pix (``networks.py``; read for the layer table,
nothing copied).

What is the paper's (and the authors' code's):

* generator "U-Net-256": ``log2(S)`` stride-2 4 x 4 convolutions (8 for 256 x 256) with
  ``ngf * min(2^i, 8)`` channels (C64-C128-C256-C512-C512-C512-C512-C512), LeakyReLU 0.2,
  normalisation on all but the first and the innermost; a mirrored decoder of stride-2 4 x 4
  transposed convolutions with ReLU, normalisation and dropout 0.5 on the three 512-channel
  blocks after the innermost (``num_downs - 5`` blocks, as in the code); skip connections
  concatenate each encoder map with the decoder map of the same size; ``tanh`` output;
* discriminator: the conditional 70 x 70 PatchGAN on ``[source | target]``
  (:class:`unicoal.nn.patchgan.PatchDiscriminator`, ``n_layers = 3``, ``ndf = 64``);
* losses: the cross-entropy GAN loss (``loss.gan: vanilla``: BCE with logits, D's objective
  halved) + 100 x L1; Adam lr 2e-4, betas (0.5, 0.999); lr constant, then linear decay to 0
  (the code's 100 + 100 epochs: ``decay_start 0.5``); batch size 1; weights ``N(0, 0.02)``;
  within a step D is updated before G, from one forward of G (``optimize_parameters``;
  ``optim.update_order: d_then_g``); one input slice (2D), one model per source/target pair.
  (The Uni-COAL authors' reimplementation trains with batch 32 for 50 + 50 epochs: ``parity:
  official``, :data:`unicoal.train.config.PARITY_METHODS`.)

What is ours:

* normalisation: pix2pix uses BatchNorm at batch size 1 and the *test batch's* statistics at
  inference, i.e. per-sample statistics with a learned scale and shift; we implement exactly
  that as ``InstanceNorm2d(affine=True)`` (``norm: batch``), so inference in batches of slices
  does not mix slices and equals the paper's protocol;
* dropout at test time: the paper keeps dropout on at inference as its only noise source; we
  switch it off by default so that ``unicoal synthesize`` is deterministic (``test_dropout:
  true`` restores the paper's behaviour);
* the call convention of docs/training.md: ``G(x_in [B, 1, S, S], delta, c_out, z=None)``
  (``delta``, ``c_out`` and ``z`` are ignored: one model per task), ``D(x_in, y, delta, c_out)
  -> [B, 1, h, w]`` patch logits; no EMA of G (``ema_halflife_kimg: 0`` exports the trained G);
* ``tiny`` preset: 64 x 64 (6 levels), ``ngf = ndf = 16``, for tests and ``-profile test``.

Sizes: ``paper`` has 54.41 M generator and 2.76 M discriminator parameters (the paper states no
count; the authors' code prints 54.414 M for ``unet_256`` and 2.769 M for the PatchGAN on
3 + 3 RGB channels, which is ours on 1 + 1 grey channels plus 4,096).

Example:
    >>> cfg = pix2pix_config({"preset": "tiny"})
    >>> G, D = build_pix2pix(cfg)
    >>> G(torch.zeros(2, 1, 64, 64), None, None).shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unicoal.nn.patchgan import NORMS, InferenceDropout, PatchDiscriminator, init_pix2pix_weights, norm_layer
from unicoal.nn.shapes import check_shape

__all__ = ["Pix2PixConfig", "UNetGenerator", "pix2pix_config", "build_pix2pix"]


@dataclass(frozen=True)
class Pix2PixConfig:
    """Sizes of the pix2pix U-Net generator and PatchGAN discriminator (paper values by default).

    Attributes:
        img_resolution: slice size S (a power of two, >= 8); the U-Net has ``log2(S)`` levels.
        num_inputs: source slices per target slice (1: pix2pix is 2D).
        modalities: modalities the model knows (its source and target; ``c_out`` is ignored).
        pad_mode: how the loader fills source slices outside the volume (only matters for m > 1).
        ngf / ndf: first-layer channels of G / D (64 / 64).
        n_layers_d: PatchGAN stride-2 layers (3: 70 x 70 receptive field).
        norm: ``batch`` (pix2pix, see module docstring) or ``instance``.
        dropout: decoder dropout rate (0.5).
        test_dropout: keep dropout on at inference (the paper's protocol; off by default: ours).
    """

    img_resolution: int = 256
    num_inputs: int = 1
    modalities: tuple[str, ...] = ("T1", "T2")
    pad_mode: str = "replicate"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "batch"
    dropout: float = 0.5
    test_dropout: bool = False

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(self.modalities))
        s = int(self.img_resolution)
        if s < 8 or s & (s - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8 (the U-Net halves it log2(S) times), got {self.img_resolution}")
        if self.num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {self.num_inputs}")
        if not self.modalities:
            raise ValueError("modalities must not be empty")
        if self.ngf < 1 or self.ndf < 1 or self.n_layers_d < 1:
            raise ValueError(f"ngf, ndf and n_layers_d must be >= 1, got {self.ngf}, {self.ndf}, {self.n_layers_d}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_downs(self) -> int:
        return int(math.log2(self.img_resolution))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def paper(cls, **overrides: Any) -> "Pix2PixConfig":
        """U-Net-256 + 70 x 70 PatchGAN (54.4 M + 2.8 M parameters)."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "Pix2PixConfig":
        """64 x 64, 6 levels, ``ngf = ndf = 16``: CPU-sized, for tests and ``-profile test``."""
        return cls(**{"img_resolution": 64, "ngf": 16, "ndf": 16, **overrides})


def pix2pix_config(d: dict | None) -> Pix2PixConfig:
    """``model`` section -> :class:`Pix2PixConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    names = {f.name for f in dataclasses.fields(Pix2PixConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown pix2pix model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
    return Pix2PixConfig.paper(**d) if preset == "paper" else Pix2PixConfig.tiny(**d)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``G(x_in [B, m, S, S], delta, c_out, z=None) -> [B, 1, S, S]`` in [-1, 1].

    Level ``i`` (0 = outermost) has ``c_i = ngf * min(2^i, 8)`` channels; its encoder block
    halves the size (LeakyReLU 0.2, 4 x 4 conv, norm except at levels 0 and ``D - 1``) and its
    decoder block doubles it (ReLU, 4 x 4 transposed conv, norm, dropout at levels
    ``4 .. D - 2``; ``tanh`` at level 0) from the concatenation of the deeper decoder output
    and the encoder map of level ``i`` (the skip connection).
    """

    def __init__(self, cfg: Pix2PixConfig):
        super().__init__()
        self.cfg = cfg
        depth, ngf, bias = cfg.num_downs, cfg.ngf, cfg.norm == "instance"
        ch = [ngf * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            cin = cfg.num_inputs if i == 0 else ch[i - 1]
            if i == 0:
                block = [nn.Conv2d(cin, ch[0], 4, 2, 1)]  # outermost: bias, no norm
            elif i == depth - 1:
                block = [nn.LeakyReLU(0.2, True), nn.Conv2d(cin, ch[i], 4, 2, 1, bias=bias)]  # innermost: no norm
            else:
                block = [nn.LeakyReLU(0.2, True), nn.Conv2d(cin, ch[i], 4, 2, 1, bias=bias), norm_layer(cfg.norm, ch[i])]
            self.down.append(nn.Sequential(*block))
        self.up = nn.ModuleList()
        for i in range(depth):  # up[i] produces level i's input size from level i's map (+ skip)
            cin = ch[i] if i == depth - 1 else 2 * ch[i]
            if i == 0:
                block = [nn.ReLU(True), nn.ConvTranspose2d(cin, 1, 4, 2, 1), nn.Tanh()]
            else:
                block = [nn.ReLU(True), nn.ConvTranspose2d(cin, ch[i - 1], 4, 2, 1, bias=bias), norm_layer(cfg.norm, ch[i - 1])]
                if cfg.dropout > 0 and 4 <= i <= depth - 2:
                    block.append(InferenceDropout(cfg.dropout, cfg.test_dropout))
            self.up.append(nn.Sequential(*block))
        init_pix2pix_weights(self)

    def forward(self, x_in: torch.Tensor, delta=None, c_out=None, z=None) -> torch.Tensor:
        s = self.cfg.img_resolution
        check_shape(x_in, [None, self.cfg.num_inputs, s, s], "x_in")
        skips = []
        h = x_in
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.up[-1](skips[-1])
        for i in range(len(self.up) - 2, -1, -1):
            h = self.up[i](torch.cat([skips[i], h], dim=1))
        return h

    def extra_repr(self) -> str:
        c = self.cfg
        return f"img_resolution={c.img_resolution}, num_downs={c.num_downs}, ngf={c.ngf}, norm={c.norm!r}, dropout={c.dropout}, test_dropout={c.test_dropout}"


def build_pix2pix(cfg: Pix2PixConfig, discriminator: bool = True):
    """``(G, D)``: the U-Net and, if asked, the conditional 70 x 70 PatchGAN on ``[x_in | y]``."""
    G = UNetGenerator(cfg)
    D = PatchDiscriminator(cfg.num_inputs + 1, cfg.ndf, cfg.n_layers_d, cfg.norm) if discriminator else None
    return G, D

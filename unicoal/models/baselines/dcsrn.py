"""DCSRN: a 3D densely connected super-resolution network (baseline of Table II).

Reference: Y. Chen, Y. Xie, Z. Zhou, F. Shi, A. G. Christodoulou, D. Li, "Brain MRI super
resolution using 3D deep densely connected neural networks", IEEE ISBI 2018, pp. 739-742 (the
Uni-COAL paper's [14]).

What is the paper's:

* the input is the low-resolution image on the high-resolution grid (the original degraded in
  k-space, so its input already had the output's size);
* a 3 x 3 x 3 convolution to ``2k`` feature maps, one densely connected block of 4 units
  (batch normalisation, ELU, 3 x 3 x 3 convolution with growth rate ``k = 24``), each unit
  reading the concatenation of all earlier feature maps, and a 1 x 1 x 1 convolution of the
  concatenated maps to the output image (no residual to the input);
* an L1 loss (the issue's choice as well).

The Uni-COAL authors' reimplementation (zhiyuns/UniCOAL ``models/networks/dcsrn.py``,
``models/dcsrn_model.py``, the source of the paper's DCSRN numbers) differs: its last layer is a
3 x 3 x 3 convolution, the output is the input plus the network (a global residual), it is
trained with the mean squared error (``DeepResolveModel.backward_G``) and Kaiming
initialisation. ``parity: official`` selects its layers and loss (``tail_kernel: 3``,
``residual: true``, 223,729 parameters; ``loss.mse_weight: 1, l1_weight: 0``; lr 2e-4, beta1 0.5:
:data:`unicoal.train.config.PARITY_METHODS`).

What is ours:

* the thick-slice input is pre-interpolated along the slice axis (``interpolation``, default
  ``linear``; the original needed none);
* intensities in [-1, 1]; zero padding ('same'); training patches of 64^3, the inference window
  (96^3) and the CPU-sized ``tiny`` preset.

Parameters at the published size (k = 24, 4 units): 219,985 with biases and batch-norm affine
weights (counted here, about 0.22 M; the paper gives none; the Uni-COAL authors' variant has
223,729).

Example:
    >>> cfg = dcsrn_config({"preset": "tiny"})
    >>> G, _ = build_dcsrn(cfg)
    >>> G(torch.zeros(1, 1, 12, 24, 24)).shape
    torch.Size([1, 1, 12, 24, 24])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from unicoal.models.baselines.volume3d import Volume3dConfig, parse_model_section

__all__ = ["DcsrnConfig", "DCSRN", "dcsrn_config", "build_dcsrn", "PRESETS"]


@dataclass(frozen=True)
class DcsrnConfig(Volume3dConfig):
    """DCSRN sizes: ``growth`` (k), ``units`` per dense block, ``first`` channels (published: 24, 4, 2k)."""

    growth: int = 24
    units: int = 4
    first: int = 48
    tail_kernel: int = 1  # the output convolution (paper: 1; Uni-COAL authors: 3)
    residual: bool = False  # output = input + network (Uni-COAL authors)

    def __post_init__(self):
        super().__post_init__()
        for name in ("growth", "units", "first"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.tail_kernel) not in (1, 3):
            raise ValueError(f"tail_kernel must be 1 or 3, got {self.tail_kernel}")


PRESETS: dict[str, dict] = {
    "paper": dict(growth=24, units=4, first=48, patch_size=(64, 64, 64), inference_window=(96, 96, 96), interpolation="linear"),
    # CPU-sized: k = 6, 3 units, 12 first maps, 8 x 16 x 16 patches
    "tiny": dict(growth=6, units=3, first=12, patch_size=(8, 16, 16), inference_window=(24, 32, 32), interpolation="linear"),
}


class DenseUnit(nn.Module):
    """BN -> ELU -> 3x3x3 conv to ``growth`` maps."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(cin)
        self.act = nn.ELU(inplace=True)
        self.conv = nn.Conv3d(cin, growth, 3, padding=1)

    def forward(self, x):
        return self.conv(self.act(self.norm(x)))


class DCSRN(nn.Module):
    """Conv -> dense block (``units`` DenseUnits, concatenating) -> 1x1x1 conv, for ``x`` [B, 1, D, H, W]."""

    size_multiple = 1

    def __init__(self, cfg: DcsrnConfig):
        super().__init__()
        self.cfg = cfg
        k, first = int(cfg.growth), int(cfg.first)
        self.stem = nn.Conv3d(1, first, 3, padding=1)
        self.units = nn.ModuleList(DenseUnit(first + i * k, k) for i in range(int(cfg.units)))
        t = int(cfg.tail_kernel)
        self.out = nn.Conv3d(first + int(cfg.units) * k, 1, t, padding=t // 2)
        self.receptive_radius = 1 + int(cfg.units) + t // 2  # stem + one voxel per unit (+ a 3x3x3 output)

    def forward(self, x, delta=None, c_out=None, z=None):
        feats = [self.stem(x)]
        for unit in self.units:
            feats.append(unit(torch.cat(feats, dim=1)))
        y = self.out(torch.cat(feats, dim=1))
        return x + y if self.cfg.residual else y

    def extra_repr(self) -> str:
        return f"growth={self.cfg.growth}, units={self.cfg.units}, first={self.cfg.first}, receptive_radius={self.receptive_radius}"


def dcsrn_config(d: dict | None) -> DcsrnConfig:
    """``model`` section -> :class:`DcsrnConfig` (``preset: paper|tiny`` + overrides)."""
    return parse_model_section(DcsrnConfig, d, PRESETS)


def build_dcsrn(cfg: DcsrnConfig, discriminator: bool = True):
    """``(G, None)``: DCSRN is trained with an L1 loss only (no discriminator)."""
    return DCSRN(cfg), None

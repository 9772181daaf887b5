"""SynthSR: a 3D U-Net that regresses a high-resolution volume of a fixed contrast from a scan of
any contrast and resolution (baseline of Tables II, III and IV).

Reference: J. E. Iglesias, B. Billot, Y. Balbastre, A. Tabari, J. Conklin, R. G. Gonzalez,
D. C. Alexander, P. Golland, B. L. Edlow, B. Fischl, "Joint super-resolution and synthesis of
1 mm isotropic MP-RAGE volumes from clinical MRI exams with scans of different orientation,
resolution and contrast", NeuroImage 237:118206, 2021 (the Uni-COAL paper's [6]). Authors' code:
github.com/BBillot/SynthSR (read for the architecture defaults, nothing copied).

What is the paper's (and the authors' code's defaults):

* the input scan is resampled onto the 1 mm output grid (linear interpolation), and a 3D U-Net
  regresses the output volume: 5 levels, 2 convolutions of 3 x 3 x 3 per level, 24 features at
  the first level doubling at every level, ELU activations, 2 x max pooling, nearest-neighbour
  upsampling with skip concatenation, a final 1 x 1 x 1 linear convolution;
* batch normalisation after every encoder level and every decoder level (``batch_norm=-1`` in
  ``SynthSR/training.py``, applied by ``conv_enc`` / ``conv_dec`` of ``ext/neuron/models.py``
  after the level's convolutions; Keras defaults momentum 0.99, epsilon 1e-3); the skip
  connections take the output of a level's last convolution *before* its batch norm (``conv_dec``
  concatenates the layer ``conv_downarm_<level>_<last>``), ``[skip, upsampled]`` in that order;
  13,239,841 trainable parameters at the published size (weights, biases and batch-norm scale
  and offset; the moving statistics are not trainable);
* at synthesis (``scripts/predict_command_line.py``): the volume is zero-padded, centred, to a
  multiple of 32 in every dimension, and the output is the mean of the network on the volume
  and, flipped back, on its left-right mirror image;
* L1 regression loss, Adam lr 1e-4; one model per *output* contrast, trained on inputs of any
  contrast and resolution (Table V: arbitrary in, fixed out), supervised on paired data as in
  the Uni-COAL paper's Tables II-IV (the synthetic-contrast training mode of the paper is not
  implemented).

The Uni-COAL authors' reimplementation (zhiyuns/UniCOAL ``models/networks/synthsr/``, a
pytorch-3dunet ``UNet3D`` with ``layer_order='ce'``) has no normalisation (13,237,633
parameters) and predicts without flipping; ``parity: official`` selects it (``batch_norm: false``,
``flip_axis: null``, far-end padding; :data:`unicoal.train.config.PARITY_METHODS`).

What is ours:

* the thick-slice input is resampled along the slice axis only (in-plane already on the output
  grid), ``interpolation`` linear by default; intensities in [-1, 1];
* the output is the network's prediction (no residual) and the modality classes are ignored
  (``c_out``: the model produces the output modality it was trained for);
* training patches 160^3 (our choice); a patch larger than the volume is padded like the
  synthesis input (background, centred: :func:`unicoal.data3d.pad_to`); whole-volume inference
  (``inference_window: null``), which fits one GPU for 256 x 256 x 160; the CPU-sized ``tiny``
  preset;
* the flip axis is axis 1 of our ``[slices, A, B]`` arrays (``flip_axis``), left-right for axial
  or coronal slices of the RAS-canonical volumes (their script flips the RAS x axis).

Example:
    >>> cfg = synthsr_config({"preset": "tiny"})
    >>> G, _ = build_synthsr(cfg)
    >>> G(torch.zeros(1, 1, 16, 24, 24)).shape
    torch.Size([1, 1, 16, 24, 24])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from unicoal.models.baselines.volume3d import Volume3dConfig, parse_model_section

__all__ = ["SynthSRConfig", "UNet3d", "synthsr_config", "build_synthsr", "unet_receptive_radius", "PRESETS"]


@dataclass(frozen=True)
class SynthSRConfig(Volume3dConfig):
    """U-Net sizes (published: 5 levels, 2 convolutions per level, 24 features, x2 per level)."""

    levels: int = 5
    convs_per_level: int = 2
    features: int = 24
    feature_multiplier: int = 2
    batch_norm: bool = True  # after every encoder and decoder level (authors); False: the Uni-COAL authors' U-Net
    pad_multiple: int | None = 32  # synthesis: pad to a multiple of this (authors: 32) ...
    pad_centred: bool = True  # ... centred (authors), in training patches too
    flip_axis: int | None = 1  # synthesis: left-right flip averaging (authors); None: off

    def __post_init__(self):
        super().__post_init__()
        for name in ("levels", "convs_per_level", "features", "feature_multiplier"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pad_multiple is not None and (int(self.pad_multiple) < 1 or int(self.pad_multiple) % 2 ** (int(self.levels) - 1)):
            raise ValueError(f"pad_multiple must be a positive multiple of 2^(levels-1) = {2 ** (int(self.levels) - 1)}, got {self.pad_multiple}")
        if self.flip_axis is not None and int(self.flip_axis) not in (0, 1, 2):
            raise ValueError(f"flip_axis must be 0, 1, 2 or null, got {self.flip_axis}")
        m = 2 ** (int(self.levels) - 1)
        if any(p % m for p in self.patch_size):
            raise ValueError(f"patch_size {list(self.patch_size)} must be multiples of {m} (2^(levels-1))")


PRESETS: dict[str, dict] = {
    "paper": dict(levels=5, convs_per_level=2, features=24, feature_multiplier=2, patch_size=(160, 160, 160),
                  inference_window=None, interpolation="linear"),
    # CPU-sized: 3 levels, 8 features, 8 x 16 x 16 patches; 64^3 windows hold the receptive radius (24)
    "tiny": dict(levels=3, convs_per_level=2, features=8, feature_multiplier=2, patch_size=(8, 16, 16),
                 inference_window=(64, 64, 64), interpolation="linear", pad_multiple=8),
}


def unet_receptive_radius(levels: int, convs: int) -> int:
    """An upper bound of the U-Net's receptive radius in input voxels (with pooling alignment).

    Decoder and encoder convolutions at level ``l`` add ``convs * 2^l`` each, the bottom level
    ``convs * 2^(L-1)``, and rounding a voxel span to the pooling blocks of level ``l + 1`` adds
    at most ``2^(l+1) - 1``.
    """
    r = convs * 2 ** (levels - 1)
    for lvl in range(levels - 1):
        r += 2 * convs * 2**lvl + 2 ** (lvl + 1) - 1
    return int(r)


def _block(cin: int, cout: int, n: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(n):
        mods += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1), nn.ELU(inplace=True)]
    return nn.Sequential(*mods)


def _norm(c: int, on: bool) -> nn.Module:
    """Keras ``BatchNormalization`` defaults (momentum 0.99 = torch 0.01, epsilon 1e-3), or nothing."""
    return nn.BatchNorm3d(c, eps=1e-3, momentum=0.01) if on else nn.Identity()


class UNet3d(nn.Module):
    """SynthSR's regression U-Net for ``x`` [B, 1, D, H, W] (sizes multiples of ``size_multiple``).

    Encoder level ``l``: convolutions -> (skip taken here) -> batch norm -> max pooling; decoder
    level: upsampling, ``[skip, upsampled]``, convolutions, batch norm (authors' ``conv_enc`` /
    ``conv_dec``)."""

    def __init__(self, cfg: SynthSRConfig):
        super().__init__()
        self.cfg = cfg
        L, c = int(cfg.levels), int(cfg.convs_per_level)
        feats = [int(cfg.features) * int(cfg.feature_multiplier) ** lvl for lvl in range(L)]
        self.down = nn.ModuleList(_block(1 if lvl == 0 else feats[lvl - 1], feats[lvl], c) for lvl in range(L))
        self.down_norm = nn.ModuleList(_norm(feats[lvl], cfg.batch_norm) for lvl in range(L))
        self.up = nn.ModuleList(_block(feats[lvl + 1] + feats[lvl], feats[lvl], c) for lvl in range(L - 1))
        self.up_norm = nn.ModuleList(_norm(feats[lvl], cfg.batch_norm) for lvl in range(L - 1))
        self.out = nn.Conv3d(feats[0], 1, 1)
        self.size_multiple = 2 ** (L - 1)
        self.receptive_radius = unet_receptive_radius(L, c)

    def forward(self, x, delta=None, c_out=None, z=None):
        m = self.size_multiple
        if any(s % m for s in x.shape[2:]):
            raise ValueError(f"UNet3d input sizes {tuple(x.shape[2:])} must be multiples of {m}")
        skips = []
        h = x
        for lvl, (block, norm) in enumerate(zip(self.down, self.down_norm)):
            h = block(h)
            if lvl < len(self.down) - 1:
                skips.append(h)  # the last convolution's output, before the level's batch norm
            h = norm(h)
            if lvl < len(self.down) - 1:
                h = F.max_pool3d(h, 2)
        for lvl in reversed(range(len(self.up))):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = self.up_norm[lvl](self.up[lvl](torch.cat([skips[lvl], h], dim=1)))
        return self.out(h)

    def extra_repr(self) -> str:
        c = self.cfg
        return f"levels={c.levels}, convs_per_level={c.convs_per_level}, features={c.features}, batch_norm={c.batch_norm}, receptive_radius={self.receptive_radius}"


def synthsr_config(d: dict | None) -> SynthSRConfig:
    """``model`` section -> :class:`SynthSRConfig` (``preset: paper|tiny`` + overrides)."""
    return parse_model_section(SynthSRConfig, d, PRESETS)





def build_synthsr(cfg: SynthSRConfig, discriminator: bool = True):
    """``(G, None)``: SynthSR is trained with an L1 regression loss only (no discriminator)."""
    return UNet3d(cfg), None

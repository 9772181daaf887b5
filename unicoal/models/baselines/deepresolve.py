"""DeepResolve: a 3D residual CNN for thick-slice super-resolution (baseline of Table II).

Reference: A. S. Chaudhari, Z. Fang, F. Kogan, J. Wood, K. J. Stevens, E. K. Gibbons, J. H. Lee,
G. E. Gold, B. A. Hargreaves, "Super-resolution musculoskeletal MRI using deep learning",
Magnetic Resonance in Medicine 80(5):2139-2154, 2018 (the Uni-COAL paper's [5]; the paper also
follows its thick-slice simulation: filter with the slice profile, then downsample).

What is the paper's:

* the input is the thick-slice volume interpolated onto the thin-slice grid with tricubic
  interpolation, and the network learns the *residual* between it and the high-resolution
  volume (output = input + network(input));
* 20 convolutional layers of 3 x 3 x 3 kernels with 64 filters, ReLU after every layer but the
  last, which maps to one channel;
* one model per downsampling factor (specific SR);
* an L2 loss (mean squared error): configs/deepresolve.yaml sets ``loss.mse_weight: 1`` and
  ``loss.l1_weight: 0`` (``l1_weight: 1, mse_weight: 0`` is the L1 option).

The Uni-COAL authors' reimplementation (zhiyuns/UniCOAL ``models/networks/deepresolve.py``,
``models/deepresolve_model.py``: head conv + 18 body blocks + tail conv, 64 filters, residual to
the input, ``MSELoss``, Kaiming initialisation) has the same layers, parameter count and loss;
it differs in the initialisation of the last layer (see below) and its optimiser (Adam lr 2e-4,
beta1 0.5, linear decay over the second half; ``parity: official``,
:data:`unicoal.train.config.PARITY_METHODS`).

What is ours:

* interpolation is 1D cubic convolution (Keys a = -0.5) along the slice axis only, because the
  in-plane grid of the thick-slice data is already the target's (tricubic interpolation reduces
  to it); intensities in [-1, 1]; zero padding ('same') in every convolution;
* the last layer starts at zero, so the untrained network returns its interpolated input exactly
  (training can only move away from interpolation where the L1 loss says so);
* patch sizes are ours: training 32^3; inference of the whole volume in one pass. 96^3 windows
  with the 20-voxel halo of exact blending would need 32 windows and 113 TFLOP for
  256 x 256 x 150 (counted with torch's FlopCounterMode), against 39 TFLOP whole. A whole
  volume needs two 64-channel activations at a time in inference mode, about 5 GB in fp32,
  which fits one GPU.

Parameters at the published size: 1,995,329 (64 filters, 20 layers, with biases), the count of
the Uni-COAL authors' ``DeepResolve(1, 1, n_feats=64, n_blocks=18)``; the paper gives none.

Example:
    >>> cfg = deepresolve_config({"preset": "tiny"})
    >>> G, _ = build_deepresolve(cfg)
    >>> G(torch.zeros(1, 1, 12, 24, 24)).shape
    torch.Size([1, 1, 12, 24, 24])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from unicoal.models.baselines.volume3d import Volume3dConfig, parse_model_section

__all__ = ["DeepResolveConfig", "DeepResolve", "deepresolve_config", "build_deepresolve", "PRESETS"]


@dataclass(frozen=True)
class DeepResolveConfig(Volume3dConfig):
    """DeepResolve sizes: ``layers`` convolutions of ``filters`` channels (published: 20, 64)."""

    layers: int = 20
    filters: int = 64

    def __post_init__(self):
        super().__post_init__()
        if int(self.layers) < 2:
            raise ValueError(f"layers must be >= 2, got {self.layers}")
        if int(self.filters) < 1:
            raise ValueError(f"filters must be >= 1, got {self.filters}")


PRESETS: dict[str, dict] = {
    "paper": dict(layers=20, filters=64, patch_size=(32, 32, 32), inference_window=None, interpolation="cubic"),
    # CPU-sized for tests and -profile test: 5 layers of 8 filters on 8 x 16 x 16 patches
    "tiny": dict(layers=5, filters=8, patch_size=(8, 16, 16), inference_window=(24, 32, 32), interpolation="cubic"),
}


class DeepResolve(nn.Module):
    """``y = x + f(x)``, ``f`` = ``layers`` 3x3x3 convolutions (ReLU between), for ``x`` [B, 1, D, H, W]."""

    size_multiple = 1

    def __init__(self, cfg: DeepResolveConfig):
        super().__init__()
        self.cfg = cfg
        c = int(cfg.filters)
        layers: list[nn.Module] = []
        for i in range(int(cfg.layers)):
            cin = 1 if i == 0 else c
            cout = 1 if i == cfg.layers - 1 else c
            layers.append(nn.Conv3d(cin, cout, 3, padding=1))
            if i < cfg.layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        last = self.body[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.receptive_radius = int(cfg.layers)  # one voxel per 3x3x3 layer

    def forward(self, x, delta=None, c_out=None, z=None):
        return x + self.body(x)

    def extra_repr(self) -> str:
        return f"layers={self.cfg.layers}, filters={self.cfg.filters}, receptive_radius={self.receptive_radius}"


def deepresolve_config(d: dict | None) -> DeepResolveConfig:
    """``model`` section -> :class:`DeepResolveConfig` (``preset: paper|tiny`` + overrides)."""
    return parse_model_section(DeepResolveConfig, d, PRESETS)


def build_deepresolve(cfg: DeepResolveConfig, discriminator: bool = True):
    """``(G, None)``: DeepResolve is trained with a pixel loss only (no discriminator)."""
    return DeepResolve(cfg), None

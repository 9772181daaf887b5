"""Losses of paper eq. 7-8 and the blur schedule of Sec. III-G.

* Discriminator: non-saturating logistic loss ``softplus(D(fake)) + softplus(-D(real))`` plus
  R1 ``gamma / 2 * ||grad_(x_in, y) D(x_in, y)||^2`` on real pairs: the gradient with respect to
  the whole discriminator input, source slices and target slice, as in the authors' code
  (``loss.d_sources_blur_r1: false``: only the target slice ``y``). Lazy R1 (every
  ``r1_interval`` steps, scaled by the interval) is an option; the published setup uses 1.
* Generator: ``softplus(-D(fake)) + l1_weight * |fake - y| + sam_weight * L_SAM(fake, y)``.
* Blur: the whole discriminator input (source slices and the target or generated slice; only
  the latter with ``d_sources_blur_r1: false``) and the inputs of the L1 / SAM losses are
  smoothed with StyleGAN3's kernel ``2 ** -(x / sigma) ** 2`` (radius ``floor(3 sigma)``);
  ``sigma`` fades linearly to 0 over the first ``blur_fade_kimg`` thousand images (paper:
  2 px / 100k; authors' config: 10 px / 200k).

Options the baselines use (``loss.*``, :class:`unicoal.train.config.LossConfig`; Uni-COAL's
defaults keep the losses above unchanged):

* ``gan``: the adversarial loss. ``nonsaturating`` (default) is the form above. ``vanilla`` is
  the cross-entropy GAN loss of the pix2pix code base (``BCEWithLogits``: the same function as
  the non-saturating loss) with the discriminator's objective halved, as in Isola et al. 2017
  ("we divide the objective by 2 while optimizing D"); ``lsgan`` is the least-squares loss of
  Mao et al. 2017 (``(D(real) - 1)^2``, ``D(fake)^2``; G: ``(D(fake) - 1)^2``), D halved as in
  that code base (pGAN's default). Discriminators may return logits of any shape ``[B, ...]``
  (PatchGAN maps); every loss averages over all of them (mean over the non-batch dimensions,
  then over the batch), and R1 differentiates their sum.
* ``adversarial_weight``: factor on G's adversarial term (default 1; AutoGAN-Synthesizer 1e-4).
* ``perceptual_weight`` x ``L_perc(fake, y)``: L1 between frozen-network features of the
  generated and target slices (pGAN), :class:`unicoal.nn.perceptual.PerceptualLoss`.
* ``mse_weight`` x MSE + ``style_weight`` x ``L_style`` + ``tv_weight`` x TV: AutoGAN-Synthesizer's
  content loss (1, 1e5, 1e-7), on slices mapped to [0, 1] as the authors' images; ``L_style`` is
  :class:`unicoal.nn.perceptual.StyleLoss` (Gram matrices of four VGG16 layers), TV a sum over
  the batch (:func:`total_variation`).
* ``r1_gamma: 0`` switches R1 off and ``blur_sigma: 0`` the blur.
* ``optim.update_order`` (:data:`unicoal.train.config.UPDATE_ORDERS`): the trainer may compute
  G's output once and pass it to both losses (``fake=``), as the pix2pix code base does.
"""
from __future__ import annotations

import math

__all__ = ["GAN_LOSSES", "blur_sigma_at", "gaussian_kernel1d", "gaussian_blur", "gan_loss", "total_variation", "UniCoalLoss"]

#: adversarial loss forms (``loss.gan``) -> factor on the discriminator's objective
GAN_LOSSES: dict[str, float] = {"nonsaturating": 1.0, "vanilla": 0.5, "lsgan": 0.5}


def blur_sigma_at(images_seen: int, sigma: float, fade_kimg: float) -> float:
    """Blur sigma after ``images_seen`` training images (linear fade to 0)."""
    if sigma <= 0 or fade_kimg <= 0:
        return 0.0
    return float(sigma) * max(0.0, 1.0 - images_seen / (fade_kimg * 1000.0))


def gaussian_kernel1d(sigma: float):
    """Normalised 1D taps ``2 ** -(x / sigma) ** 2``, radius ``floor(3 sigma)`` (StyleGAN3's blur;
    a Gaussian of standard deviation ``sigma / sqrt(2 ln 2)`` = 0.85 sigma); ``None`` below one tap
    of radius (sigma < 1/3)."""
    import torch

    radius = int(math.floor(3.0 * sigma))
    if radius < 1:
        return None
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    f = torch.exp2(-((x / sigma) ** 2))
    return f / f.sum()


def gaussian_blur(img, sigma: float):
    """Separable blur of ``img`` [B, C, H, W] with :func:`gaussian_kernel1d` (replicate padding,
    where StyleGAN3 pads with zeros = mid-grey in [-1, 1]); identity for sigma < 1/3."""
    import torch.nn.functional as F

    f = gaussian_kernel1d(sigma) if sigma > 0 else None
    if f is None:
        return img
    f = f.to(device=img.device, dtype=img.dtype)
    r = f.numel() // 2
    c = img.shape[1]
    x = F.pad(img, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, f.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, f.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x


def total_variation(img):
    """Anisotropic total variation ``sum |x[.., i, j+1] - x[.., i, j]| + sum |x[.., i+1, j] -
    x[.., i, j]|`` over the whole batch (a sum, as AutoGAN-Synthesizer's ``perception_loss``)."""
    return (img[..., :, 1:] - img[..., :, :-1]).abs().sum() + (img[..., 1:, :] - img[..., :-1, :]).abs().sum()


def gan_loss(logits, real: bool, kind: str = "nonsaturating"):
    """Adversarial loss of ``logits`` (any shape ``[B, ...]``, e.g. PatchGAN maps) for the
    label ``real``, averaged over every element: ``softplus(-l)`` / ``softplus(l)`` for
    ``nonsaturating`` and ``vanilla`` (= binary cross-entropy with logits against 1 / 0),
    ``(l - 1)^2`` / ``l^2`` for ``lsgan``."""
    import torch.nn.functional as F

    if kind == "lsgan":
        return (logits - 1.0).square().mean() if real else logits.square().mean()
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(GAN_LOSSES)}")
    return F.softplus(-logits).mean() if real else F.softplus(logits).mean()


class UniCoalLoss:
    """Computes the two phases' losses for a batch; the caller does backward and steps.

    Args:
        G, D: generator ``G(x_in, delta, c_out, z) -> [B, 1, H, W]`` and discriminator
            ``D(x_in, y, delta, c_out) -> [B]`` (``D`` may be ``None`` when not adversarial),
            bare or in ``DistributedDataParallel``: each phase runs its own network through the
            wrapper and the other (frozen) one bare, so the other wrapper waits for no gradients.
        cfg: :class:`unicoal.train.config.LossConfig`.
        sam: SAM feature loss ``(fake, real) -> scalar`` or ``None``.
        autocast: context-manager factory for the forward passes (bf16 on CUDA).
        perceptual: perceptual loss ``(fake, real) -> scalar`` (weight ``cfg.perceptual_weight``)
            or ``None``.
    """

    def __init__(self, G, D, cfg, sam=None, autocast=None, perceptual=None, style=None):
        import contextlib

        from unicoal.train.distributed import unwrap

        self.G, self.D, self.cfg, self.sam, self.perceptual, self.style = G, D, cfg, sam, perceptual, style
        self.gan = getattr(cfg, "gan", "nonsaturating")
        self.G_bare, self.D_bare = unwrap(G), unwrap(D)
        self.autocast = autocast or contextlib.nullcontext
        if cfg.adversarial and D is None:
            raise ValueError("an adversarial loss needs a discriminator")
        from unicoal.train.losses_volume import load_terms

        self.terms = load_terms(self.G_bare, self.D_bare, cfg)  # a method's own terms (SC-GAN), named by G's loss_terms

    def generate(self, batch: dict, z):
        """G's output for ``batch`` through the training wrapper (gradients flow to G)."""
        with self.autocast():
            return self.G(batch["x_in"], batch["delta"], batch["c_out"], z)

    def generator_loss(self, batch: dict, z, sigma: float, fake=None):
        """``L_G`` and its terms; ``fake``: G's output already computed this step (else G runs)."""
        cfg = self.cfg
        if fake is None:
            fake = self.generate(batch, z)
        fake = fake.float()
        fake_b = gaussian_blur(fake, sigma)
        real_b = gaussian_blur(batch["y"], sigma)
        stats = {}
        total = 0.0
        if cfg.adversarial:
            x_in = gaussian_blur(batch["x_in"], sigma) if cfg.d_sources_blur_r1 else batch["x_in"]
            with self.autocast():
                logits = self.D_bare(x_in, fake_b, batch["delta"], batch["c_out"]).float()
            adv = gan_loss(logits, True, self.gan)
            weight = getattr(cfg, "adversarial_weight", 1.0)
            total = total + (adv if weight == 1.0 else weight * adv)
            stats["G_adv"] = adv.detach()
        l1 = (fake_b - real_b).abs().mean()
        stats["G_l1"] = l1.detach()
        if cfg.l1_weight:
            total = total + cfg.l1_weight * l1
        if self.sam is not None and cfg.sam_weight:
            with self.autocast():
                sam = self.sam(fake_b, real_b).float()
            total = total + cfg.sam_weight * sam
            stats["G_sam"] = sam.detach()
        if self.perceptual is not None and cfg.perceptual_weight:
            with self.autocast():
                perc = self.perceptual(fake_b, real_b).float()
            total = total + cfg.perceptual_weight * perc
            stats["G_perc"] = perc.detach()
        if getattr(cfg, "mse_weight", 0.0):
            mse = ((fake_b - real_b) * 0.5).square().mean()  # on [0, 1] images, as the authors
            total = total + cfg.mse_weight * mse
            stats["G_mse"] = mse.detach()
        if self.style is not None and getattr(cfg, "style_weight", 0.0):
            with self.autocast():
                style = self.style(fake_b, real_b).float()
            total = total + cfg.style_weight * style
            stats["G_style"] = style.detach()
        if getattr(cfg, "tv_weight", 0.0):
            tv = total_variation(fake_b * 0.5)  # of the [0, 1] image: a sum, as the authors'
            total = total + cfg.tv_weight * tv
            stats["G_tv"] = tv.detach()
        if self.terms is not None:  # after the adversarial pass (SC-GAN's feature matching reads its D features)
            extra, more = self.terms.generator(batch, fake_b, real_b)
            total = total + extra
            stats.update(more)
        stats["G_loss"] = total.detach()
        return total, stats

    def discriminator_loss(self, batch: dict, z, sigma: float, do_r1: bool, fake=None):
        """D's loss (+ R1); ``fake``: G's detached output already computed this step (else G runs)."""
        import torch

        cfg = self.cfg
        do_r1 = do_r1 and cfg.r1_gamma > 0  # r1_gamma 0 (baselines): no input gradients at all
        if fake is None:
            with torch.no_grad(), self.autocast():
                fake = self.G_bare(batch["x_in"], batch["delta"], batch["c_out"], z)
        sources = cfg.d_sources_blur_r1  # reference: blur and R1 cover the whole D input [x_in | y]
        x_in = batch["x_in"]
        with self.autocast():
            logits_fake = self.D(gaussian_blur(x_in, sigma) if sources else x_in, gaussian_blur(fake.float(), sigma),
                                 batch["delta"], batch["c_out"]).float()
        loss_fake = gan_loss(logits_fake, False, self.gan)
        real = batch["y"].detach().requires_grad_(do_r1)
        real_x = x_in.detach().requires_grad_(do_r1 and sources)
        with self.autocast():
            logits_real = self.D(gaussian_blur(real_x, sigma) if sources else real_x, gaussian_blur(real, sigma),
                                 batch["delta"], batch["c_out"]).float()
        loss_real = gan_loss(logits_real, True, self.gan)
        total = loss_fake + loss_real
        if GAN_LOSSES[self.gan] != 1.0:
            total = total * GAN_LOSSES[self.gan]
        stats = {"D_fake": logits_fake.detach().mean(), "D_real": logits_real.detach().mean()}
        if do_r1 and cfg.r1_gamma > 0:
            inputs = [real, real_x] if sources else [real]
            # allow_unused: a baseline's D may ignore its conditioning slices
            grads = torch.autograd.grad(logits_real.sum(), inputs, create_graph=True, allow_unused=True)
            penalty = sum(g.float().square().sum(dim=(1, 2, 3)) for g in grads if g is not None).mean()
            r1 = penalty * (cfg.r1_gamma / 2.0) * cfg.r1_interval
            total = total + r1
            stats["D_r1"] = penalty.detach()
        if self.terms is not None:
            extra, more = self.terms.discriminator()
            total = total + extra
            stats.update(more)
        stats["D_loss"] = total.detach()
        return total, stats

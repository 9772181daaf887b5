"""Losses of paper eq. 7-8 and the blur schedule of Sec. III-G.

* Discriminator: non-saturating logistic loss ``softplus(D(fake)) + softplus(-D(real))`` plus
  R1 ``gamma / 2 * ||grad_y D(x_in, y)||^2`` on real target slices (gradient with respect to
  the target slice ``y``; the source slices ``x_in`` are conditioning). Lazy R1 (every
  ``r1_interval`` steps, scaled by the interval) is an option; the published setup uses 1.
* Generator: ``softplus(-D(fake)) + l1_weight * |fake - y| + sam_weight * L_SAM(fake, y)``.
* Blur: the target and generated slices are smoothed with a Gaussian of ``sigma`` px before
  the discriminator and before the L1 / SAM losses; ``sigma`` fades linearly to 0 over the
  first ``blur_fade_kimg`` thousand images (paper: 2 px / 100k; authors' config: 10 px / 200k).
"""
from __future__ import annotations

import math

__all__ = ["blur_sigma_at", "gaussian_kernel1d", "gaussian_blur", "UniCoalLoss"]


def blur_sigma_at(images_seen: int, sigma: float, fade_kimg: float) -> float:
    """Blur sigma after ``images_seen`` training images (linear fade to 0)."""
    if sigma <= 0 or fade_kimg <= 0:
        return 0.0
    return float(sigma) * max(0.0, 1.0 - images_seen / (fade_kimg * 1000.0))


def gaussian_kernel1d(sigma: float):
    """Normalised 1D Gaussian taps, radius ``ceil(3 sigma)``."""
    import torch

    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    f = torch.exp(-0.5 * (x / sigma) ** 2)
    return f / f.sum()


def gaussian_blur(img, sigma: float):
    """Separable Gaussian blur of ``img`` [B, C, H, W] (replicate padding); identity for sigma 0."""
    import torch.nn.functional as F

    if sigma <= 0:
        return img
    f = gaussian_kernel1d(sigma).to(device=img.device, dtype=img.dtype)
    r = f.numel() // 2
    c = img.shape[1]
    x = F.pad(img, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, f.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, f.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x


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
    """

    def __init__(self, G, D, cfg, sam=None, autocast=None):
        import contextlib

        from unicoal.train.distributed import unwrap

        self.G, self.D, self.cfg, self.sam = G, D, cfg, sam
        self.G_bare, self.D_bare = unwrap(G), unwrap(D)
        self.autocast = autocast or contextlib.nullcontext
        if cfg.adversarial and D is None:
            raise ValueError("an adversarial loss needs a discriminator")

    def generator_loss(self, batch: dict, z, sigma: float):
        import torch.nn.functional as F

        cfg = self.cfg
        with self.autocast():
            fake = self.G(batch["x_in"], batch["delta"], batch["c_out"], z)
        fake = fake.float()
        fake_b = gaussian_blur(fake, sigma)
        real_b = gaussian_blur(batch["y"], sigma)
        stats = {}
        total = 0.0
        if cfg.adversarial:
            with self.autocast():
                logits = self.D_bare(batch["x_in"], fake_b, batch["delta"], batch["c_out"]).float()
            adv = F.softplus(-logits).mean()
            total = total + adv
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
        stats["G_loss"] = total.detach()
        return total, stats

    def discriminator_loss(self, batch: dict, z, sigma: float, do_r1: bool):
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        with torch.no_grad(), self.autocast():
            fake = self.G_bare(batch["x_in"], batch["delta"], batch["c_out"], z)
        with self.autocast():
            logits_fake = self.D(batch["x_in"], gaussian_blur(fake.float(), sigma), batch["delta"], batch["c_out"]).float()
        loss_fake = F.softplus(logits_fake).mean()
        real = batch["y"].detach().requires_grad_(do_r1)
        with self.autocast():
            logits_real = self.D(batch["x_in"], gaussian_blur(real, sigma), batch["delta"], batch["c_out"]).float()
        loss_real = F.softplus(-logits_real).mean()
        total = loss_fake + loss_real
        stats = {"D_fake": logits_fake.detach().mean(), "D_real": logits_real.detach().mean()}
        if do_r1 and cfg.r1_gamma > 0:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
            r1 = penalty * (cfg.r1_gamma / 2.0) * cfg.r1_interval
            total = total + r1
            stats["D_r1"] = penalty.detach()
        stats["D_loss"] = total.detach()
        return total, stats

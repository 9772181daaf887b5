"""Method-specific loss terms of the volumetric baselines, added to the shared trainer's losses.

The shared losses (:class:`unicoal.train.losses.UniCoalLoss`) have one hook: a generator whose
class names ``loss_terms = "module:factory"`` gets ``factory(G, D, loss_cfg)`` called once
(:func:`load_terms`); the object it returns (or ``None``) has

* ``generator(batch, fake, real) -> (loss, stats)``: added to G's loss after the adversarial
  term (so a discriminator pass on the generated pair has just run);
* ``discriminator() -> (loss, stats)``: added to D's loss.

The terms:

* :class:`ScganTerms` -- SC-GAN's generator terms as in the authors' ``src/net.py``
  (Haoyulance/SC-GAN): the brain-area RMSE ``sqrt(mean((y - G(x))^2 over y != -1))`` (weight
  200; the mask is the batch's ``mask``, :mod:`unicoal.data3d`), the feature-matching loss
  (weight 20: mean over the discriminator's feature maps of ``mean |D_k(x, y) - D_k(x, G(x))|``,
  0 below 2e-4) and the L2 weight regulariser ``1e-3 * sum(w^2) / 2`` of G (0 below 1e-5) and
  of D (0 below 5e-5). Weights come from the model section
  (:class:`unicoal.models.baselines.scgan.ScganConfig`).
"""
from __future__ import annotations

import importlib

__all__ = ["load_terms", "ScganTerms", "weight_l2", "FM_FLOOR", "G_REG_FLOOR", "D_REG_FLOOR"]

#: the authors' thresholds below which a term counts as 0 (``tf.cond(x < floor, 0, x)`` in src/net.py)
FM_FLOOR = 2e-4
G_REG_FLOOR = 1e-5
D_REG_FLOOR = 5e-5


def load_terms(G, D, loss_cfg):
    """The method terms of generator ``G`` (its class's ``loss_terms`` "module:factory"), or ``None``."""
    spec = getattr(G, "loss_terms", None)
    if not spec:
        return None
    module, _, attr = str(spec).partition(":")
    return getattr(importlib.import_module(module), attr)(G, D, loss_cfg)


def _floored(value, floor: float):
    """``value``, or 0 (no gradient) below ``floor``."""
    import torch

    return torch.where(value < floor, torch.zeros_like(value), value)


def weight_l2(module):
    """``sum(w^2) / 2`` over every trainable parameter of ``module`` (``tf.nn.l2_loss``; the
    authors exclude variables named ``bias``, and their convolutions have none)."""
    return sum(p.float().square().sum() for p in module.parameters() if p.requires_grad) / 2.0


class ScganTerms:
    """SC-GAN's RMSE, feature-matching and L2 terms (see module doc); ``G.cfg`` holds the weights."""

    def __init__(self, G, D, loss_cfg):
        cfg = G.cfg
        self.G, self.D = G, D
        self.fm_weight = float(cfg.feature_matching_weight)
        self.rmse_weight = float(cfg.rmse_weight)
        self.decay_g = float(cfg.weight_decay_g)
        self.decay_d = float(cfg.weight_decay_d)
        if self.fm_weight > 0:
            if D is None or not getattr(loss_cfg, "adversarial", True):
                raise ValueError("SC-GAN's feature-matching loss needs the discriminator: set model.feature_matching_weight 0 or keep loss.adversarial")
            D.keep_features = True

    def feature_matching(self, batch: dict, real):
        """``mean_k mean |D_k(x, y) - D_k(x, G(x))|`` from the features of the discriminator's last
        pass (the generated pair, in G's loss) and a pass on the real pair without gradients."""
        import torch

        fake_feats = self.D.features
        if not fake_feats:
            raise RuntimeError("feature matching: the discriminator has not just seen the generated pair")
        with torch.no_grad():
            self.D(batch["x_in"], real, batch.get("delta"), batch.get("c_out"))
        real_feats = self.D.features
        self.D.features = None
        return torch.stack([(r.float() - f.float()).abs().mean() for r, f in zip(real_feats, fake_feats)]).mean()

    def generator(self, batch: dict, fake, real):
        import torch

        total = fake.new_zeros(())
        stats = {}
        if self.rmse_weight:
            if "mask" not in batch:
                raise KeyError("SC-GAN's brain-area RMSE needs the batch's 'mask' (unicoal.data3d.PatchDataset3D)")
            mask = batch["mask"].to(fake.dtype)
            count = mask.sum()
            mse = ((fake - real).square() * mask).sum() / count.clamp_min(1.0)
            rmse = torch.sqrt(mse.clamp_min(1e-12)) if float(count) > 0 else mse
            total = total + self.rmse_weight * rmse
            stats["G_rmse"] = rmse.detach()
        if self.fm_weight:
            fm = _floored(self.feature_matching(batch, real), FM_FLOOR)
            total = total + self.fm_weight * fm
            stats["G_fm"] = fm.detach()
        if self.decay_g:
            reg = _floored(self.decay_g * weight_l2(self.G), G_REG_FLOOR)
            total = total + reg
            stats["G_l2reg"] = reg.detach()
        return total, stats

    def discriminator(self):
        if not self.decay_d or self.D is None:
            return 0.0, {}
        reg = _floored(self.decay_d * weight_l2(self.D), D_REG_FLOOR)
        return reg, {"D_l2reg": reg.detach()}

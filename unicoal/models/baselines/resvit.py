"""ResViT: residual vision transformers for multi-modal MR image synthesis (baseline of Tables I, IV).

Reference: O. Dalmaz, M. Yurt and T. Cukur, "ResViT: residual vision transformers for
multimodal medical image synthesis", IEEE Trans. Med. Imag. 41(10):2598-2614, 2022 (the
Uni-COAL paper's [2]). Authors' code: github.com/icon-lab/ResViT (read for the layer table and
the training recipe; nothing copied).

What is the paper's (and the authors' code's):

* generator: a CNN encoder (7x7 conv to ``ngf`` channels, two stride-2 3x3 convs to ``2 ngf`` and
  ``4 ngf``; batch norm + ReLU), an information bottleneck of 9 *aggregated residual transformer*
  (ART) blocks at 1/4 resolution, and a decoder mirroring the encoder (two stride-2 transposed
  convs, a 7x7 conv, ``tanh``);
* ART block: a residual CNN block (two 3x3 convs, reflection padding, batch norm); blocks 1 and 6
  also hold a transformer branch: two stride-2 convs (``4 ngf -> 8 ngf -> 1024`` channels), a
  1x1 patch embedding (``patch size 1`` on the 16 x 16 map of a 256 x 256 image) with learnable
  position embeddings, a ViT-B/16 encoder (12 layers, width 768, 12 heads, MLP 3072, dropout 0.1)
  *shared by both blocks* (each block has its own embedding), two stride-2 transposed convs back to
  ``4 ngf`` channels, then a channel-compression residual block over ``[transformer | CNN]`` before
  the residual CNN;
* training schedule: the CNN-only network (every ART block without its transformer branch) is
  pre-trained first (authors' README: ``--niter 50 --niter_decay 50 --lr 0.0002``), then a *new
  run* builds the full network, copies the pre-trained CNN weights, initialises the transformer
  branches (the patch embeddings of both blocks, the encoder layers, the final norm and the
  resampled position embeddings) from ImageNet-21k R50+ViT-B/16 weights, and fine-tunes everything
  with a new Adam at lr 1e-3 (``--niter 25 --niter_decay 25 --lr 0.001``) and a newly initialised
  discriminator: a phase boundary at 2/3 of training;
* transformer: attention and projection dropout 0 (``attention_dropout_rate`` feeds both), MLP
  and embedding dropout 0.1; the MLP layers are initialised Xavier-uniform with biases
  ``N(0, 1e-6)``; every other generator layer keeps PyTorch's default initialisation (their
  ``define_G`` calls no ``init_weights`` for ``res_cnn`` / ``resvit``); D is ``N(0, 0.02)``;
* within a step D is updated before G, from one forward of G (``optimize_parameters``);
* discriminator: the conditional PatchGAN of pix2pix (``n_layers = 3``, ``ndf = 64``, batch norm,
  70 x 70 receptive field) on ``[source | target]``; losses: adversarial (LSGAN in the authors'
  code) + 100 x L1; Adam with beta1 0.5 (configs/resvit.yaml);
* unified synthesis: one ResViT model serves many source/target configurations (Table V: CMS
  with arbitrary input and arbitrary output; no SR / CMSR).

What is ours:

* the two phases run inside the one trainer: the generator holds a ``transformer_on`` buffer;
  the trainer calls :meth:`ResViTGenerator.set_train_step` before every step, and the
  transformer branches switch on at step ``pretrain_steps`` (default ``round(pretrain_fraction *
  total_steps)``, ``pretrain_fraction = 2/3`` as in the authors' 100 + 50 epochs). Pre-training
  runs exactly the authors' CNN-only network; the transformer, embedding, up/down-sampling and
  channel-compression weights exist from the start but get no gradients (Adam skips them) until
  the switch. The switch is a training phase of the trainer (:meth:`ResViTGenerator.optim_phases`):
  as in the authors' second run, Adam restarts for G and D at ``finetune_lr`` (1e-3) with its own
  constant-then-linear schedule over the remaining third, and D is re-initialised
  (:meth:`PatchDiscriminator.reset_parameters`). The buffer travels with the checkpoints, so
  ``--resume`` and ``unicoal synthesize`` use the phase the run reached.
* ImageNet ViT weights: ``vit_weights`` (a path given by the user; never downloaded) is read at
  the switch, as the authors insert them at fine-tuning: Google's ``.npz``
  (``Transformer/encoderblock_i/...``, e.g. ``R50+ViT-B_16.npz`` or ``ViT-B_16.npz``) or a timm
  ViT state dict (``.pt`` / ``.pth`` / ``.bin`` / ``.safetensors``; loaded weights-only). Only the
  encoder layers, final norm, position embeddings (resampled to the token grid, as the
  authors do) and the patch embedding are loaded: R50+ViT-B/16's embedding is a 1 x 1
  convolution from the 1024 channels of its ResNet stage (``embedding/kernel`` ``[1, 1, 1024,
  768]``), which is exactly ResViT's patch embedding, copied into both transformer ART blocks as
  the authors do; a plain ViT-B/16 file (RGB 16 x 16 patches) has none that fits, and one log
  line says it stays as initialised. Without a path the transformer starts from scratch; either
  way one log line says which, and the tables mark the run (:func:`unicoal.pretrained.fallback_weights`).
* normalisation: the authors train with batch norm at batch size 1 and keep the network in
  training mode at test time, i.e. per-image statistics with a learned scale and shift; we use
  exactly that, ``InstanceNorm2d(affine=True)`` (:func:`unicoal.nn.patchgan.norm_layer`, shared
  with pix2pix), so larger batches do not mix slices and eval mode changes nothing.
* the transformer layers are timm's ``VisionTransformer`` blocks (pre-norm attention + MLP,
  GELU, LayerNorm eps 1e-6): the same computation as the authors' ViT code.
* target conditioning for the unified model: the one-hot target modality ``c_out`` is appended
  to the generator input (and to the discriminator input) as constant planes. The authors'
  unified model receives all modalities with the missing ones masked; with one source slice per
  item here, the mask reduces to telling the network which modality to produce.
* the call convention of docs/training.md: ``G(x_in [B, 1, S, S], delta, c_out, z=None)``
  (``delta`` and ``z`` are ignored: ResViT is deterministic and slice-to-slice);
  ``D(x_in, y, delta, c_out)`` returns ``[B, 1, h, w]`` patch logits.

Sizes: ``paper`` is the published network (256 x 256 input); ``tiny`` a CPU-sized one (64 x 64,
``ngf`` 8, 4 ART blocks with the shared transformer in blocks 1 and 3, width 32, 2 layers).

Example:
    >>> cfg = ResViTConfig.tiny()
    >>> G, D = build_resvit(cfg)
    >>> x = torch.zeros(2, 1, 64, 64); c = torch.tensor([0, 1])
    >>> G(x, None, c).shape, D(x, x, None, c).shape
    (torch.Size([2, 1, 64, 64]), torch.Size([2, 1, 6, 6]))
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from unicoal.nn.patchgan import PatchDiscriminator as _PatchGAN
from unicoal.nn.patchgan import init_pix2pix_weights, norm_layer

__all__ = ["ResViTConfig", "ResViTGenerator", "PatchDiscriminator", "resvit_config", "build_resvit", "load_vit_state"]

log = logging.getLogger(__name__)

_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")


@dataclass(frozen=True)
class ResViTConfig:
    """Sizes and schedule of ResViT (published values are the defaults).

    Attributes:
        img_resolution: in-plane size ``S`` (multiple of 16: /4 in the encoder, /4 in the ART
            down-sampling; the token grid is ``S / 16`` squared).
        num_inputs: source slices per item (1: ResViT is slice-to-slice).
        modalities: modalities the model reads or writes; ``c_out`` indexes them.
        ngf: encoder width (authors 64); the bottleneck has ``4 ngf`` channels.
        num_art: ART blocks (authors 9).
        transformer_blocks: 1-based ART blocks holding the shared transformer (authors 1 and 6).
        vit_in_channels: channels after the ART down-sampling (authors 1024).
        vit_dim / vit_depth / vit_heads / vit_mlp_dim: ViT-B/16 (768, 12, 12, 3072).
        vit_dropout / attn_dropout: ViT dropout (0.1) and attention dropout (0.0).
        ndf / d_layers: PatchGAN width and stride-2 layers (64, 3).
        condition: append one-hot ``c_out`` planes to G's and D's input (unified model).
        pretrain_fraction: CNN pre-training share of the training horizon (2/3).
        pretrain_steps: explicit phase boundary in steps (overrides ``pretrain_fraction``).
        finetune_lr: lr of G and D in the fine-tuning phase, a new Adam (authors 1e-3; ``None``:
            the config's lr).
        vit_weights: ImageNet ViT weights read at the switch (``None``: from scratch).
        pad_mode: copied from ``data.padding`` by the trainer (ResViT reads one slice; unused).
    """

    img_resolution: int = 256
    num_inputs: int = 1
    modalities: tuple[str, ...] = ("T1", "T2", "PD")
    ngf: int = 64
    num_art: int = 9
    transformer_blocks: tuple[int, ...] = (1, 6)
    vit_in_channels: int = 1024
    vit_dim: int = 768
    vit_depth: int = 12
    vit_heads: int = 12
    vit_mlp_dim: int = 3072
    vit_dropout: float = 0.1
    attn_dropout: float = 0.0
    ndf: int = 64
    d_layers: int = 3
    condition: bool = True
    pretrain_fraction: float = 2.0 / 3.0
    pretrain_steps: int | None = None
    finetune_lr: float | None = 1e-3
    vit_weights: str | None = None
    pad_mode: str = "replicate"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("modalities", tuple(str(m) for m in self.modalities))
        set_("transformer_blocks", tuple(int(b) for b in self.transformer_blocks))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities) or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be distinct names from {', '.join(_MODALITIES)}, got {list(self.modalities)}")
        if int(self.num_inputs) != 1:
            raise ValueError(f"ResViT maps one source slice: num_inputs must be 1, got {self.num_inputs}")
        if int(self.img_resolution) < 16 or int(self.img_resolution) % 16:
            raise ValueError(f"img_resolution must be a positive multiple of 16, got {self.img_resolution}")
        for name in ("ngf", "num_art", "vit_in_channels", "vit_dim", "vit_depth", "vit_heads", "vit_mlp_dim", "ndf", "d_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.vit_dim % self.vit_heads:
            raise ValueError(f"vit_dim {self.vit_dim} must be divisible by vit_heads {self.vit_heads}")
        if any(not 1 <= b <= self.num_art for b in self.transformer_blocks) or len(set(self.transformer_blocks)) != len(self.transformer_blocks):
            raise ValueError(f"transformer_blocks must be distinct ART indices in 1..{self.num_art}, got {list(self.transformer_blocks)}")
        for name in ("vit_dropout", "attn_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= float(self.pretrain_fraction) <= 1.0:
            raise ValueError(f"pretrain_fraction must be in [0, 1], got {self.pretrain_fraction}")
        if self.pretrain_steps is not None and int(self.pretrain_steps) < 0:
            raise ValueError(f"pretrain_steps must be >= 0 or null, got {self.pretrain_steps}")
        if self.finetune_lr is not None and not float(self.finetune_lr) > 0:
            raise ValueError(f"finetune_lr must be > 0 or null, got {self.finetune_lr}")

    @property
    def z_dim(self) -> int:
        return 0

    @property
    def grid(self) -> int:
        """Token grid side (``S / 16``)."""
        return int(self.img_resolution) // 16

    @classmethod
    def paper(cls, **kw) -> "ResViTConfig":
        """The published network (256 x 256, 9 ART blocks, ViT-B/16 in blocks 1 and 6)."""
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "ResViTConfig":
        """CPU-sized ResViT (64 x 64, ngf 8, 4 ART blocks, transformer width 32 x 2 layers)."""
        base = dict(img_resolution=64, ngf=8, num_art=4, transformer_blocks=(1, 3), vit_in_channels=32, vit_dim=32,
                    vit_depth=2, vit_heads=2, vit_mlp_dim=64, ndf=8)
        return cls(**{**base, **kw})

    def boundary(self, total_steps: int) -> int:
        """Step at which the transformer branches switch on."""
        if self.pretrain_steps is not None:
            return int(self.pretrain_steps)
        return int(round(float(self.pretrain_fraction) * int(total_steps)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"] = list(d["modalities"])
        d["transformer_blocks"] = list(d["transformer_blocks"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ResViTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ResViT model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
        return cls(**d)


def resvit_config(d: dict | None) -> ResViTConfig:
    """``model`` section -> :class:`ResViTConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    base = ResViTConfig.paper() if preset == "paper" else ResViTConfig.tiny()
    return ResViTConfig.from_dict({**base.to_dict(), **d}) if d else base


def build_resvit(cfg: ResViTConfig, discriminator: bool = True):
    """``(G, D)``; ``D`` is ``None`` when not asked for."""
    return ResViTGenerator(cfg), (PatchDiscriminator(cfg) if discriminator else None)


# --------------------------------------------------------------------------------------------
# layers
def _conv_bn_relu(cin: int, cout: int, stride: int = 2) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _norm(cout), nn.ReLU(True)]


def _deconv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False), _norm(cout), nn.ReLU(True)]


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, BN, ReLU, pad, conv3x3, BN](x)`` with reflection padding."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), _norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), _norm(dim),
        )

    def forward(self, x):
        return x + self.block(x)


class ChannelCompression(nn.Module):
    """Residual block ``2C -> C`` over ``[transformer | CNN]`` features (1x1 projection skip)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _norm(cout))
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(cout),
        )

    def forward(self, x):
        return F.relu(self.block(x) + self.skip(x))


class ViTEncoder(nn.Module):
    """ViT encoder: ``depth`` timm transformer blocks and a final LayerNorm (``[B, N, dim]``)."""

    def __init__(self, cfg: ResViTConfig):
        super().__init__()
        from functools import partial

        from timm.models.vision_transformer import Block

        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*[
            Block(cfg.vit_dim, cfg.vit_heads, mlp_ratio=cfg.vit_mlp_dim / cfg.vit_dim, qkv_bias=True,
                  proj_drop=cfg.vit_dropout, attn_drop=cfg.attn_dropout, norm_layer=norm)
            for _ in range(cfg.vit_depth)
        ])
        self.norm = norm(cfg.vit_dim)
        for blk in self.blocks:
            # the authors' Attention: attention_dropout_rate (0) after the softmax *and* after the
            # output projection (timm's proj_drop would use the MLP's 0.1); default Linear init
            blk.attn.proj_drop = nn.Dropout(cfg.attn_dropout)
            for lin in (blk.attn.qkv, blk.attn.proj):
                lin.reset_parameters()
            for lin in (blk.mlp.fc1, blk.mlp.fc2):  # the authors' Mlp._init_weights
                nn.init.xavier_uniform_(lin.weight)
                nn.init.normal_(lin.bias, std=1e-6)

    def forward(self, tokens):
        return self.norm(self.blocks(tokens))


class ARTBlock(nn.Module):
    """Aggregated residual transformer block; the transformer branch is optional and shared."""

    def __init__(self, cfg: ResViTConfig, with_transformer: bool):
        super().__init__()
        c = 4 * cfg.ngf
        self.with_transformer = with_transformer
        if with_transformer:
            self.downsample = nn.Sequential(*_conv_bn_relu(c, 2 * c), *_conv_bn_relu(2 * c, cfg.vit_in_channels))
            self.patch_embed = nn.Conv2d(cfg.vit_in_channels, cfg.vit_dim, kernel_size=1)  # patch size 1
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, cfg.vit_dim))
            self.pos_drop = nn.Dropout(cfg.vit_dropout)
            self.upsample = nn.Sequential(*_deconv_bn_relu(cfg.vit_dim, 2 * c), *_deconv_bn_relu(2 * c, c))
            self.cc = ChannelCompression(2 * c, c)
        self.residual_cnn = ResnetBlock(c)

    def forward(self, x, transformer: nn.Module | None = None):
        if self.with_transformer and transformer is not None:
            t = self.patch_embed(self.downsample(x))  # [B, dim, g, g]
            b, dim, g, _ = t.shape
            tokens = self.pos_drop(t.flatten(2).transpose(1, 2) + self.pos_embed)
            t = transformer(tokens).transpose(1, 2).reshape(b, dim, g, g)
            x = self.cc(torch.cat([self.upsample(t), x], dim=1))
        return self.residual_cnn(x)


def _cond_planes(c_out, num: int, like: torch.Tensor) -> torch.Tensor:
    if c_out is None:
        raise ValueError("ResViT is conditioned on the target modality: pass c_out [B]")
    c = torch.as_tensor(c_out, device=like.device).long().reshape(-1)
    if c.numel() == 1 and like.shape[0] > 1:
        c = c.expand(like.shape[0])
    if c.shape[0] != like.shape[0] or bool(((c < 0) | (c >= num)).any()):
        raise ValueError(f"c_out must be {like.shape[0]} indices in [0, {num}), got {c.tolist()}")
    return F.one_hot(c, num).to(like.dtype)[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


def _check_input(x: torch.Tensor, name: str, channels: int, size: int) -> None:
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"{name} must be [B, {channels}, {size}, {size}], got {list(x.shape)}")


def _norm(channels: int) -> nn.Module:
    """The authors' ``--norm batch`` at batch size 1 with test-batch statistics = per-image
    statistics with a learned scale and shift (:func:`unicoal.nn.patchgan.norm_layer`)."""
    return norm_layer("batch", channels)


# --------------------------------------------------------------------------------------------
# networks
class ResViTGenerator(nn.Module):
    """ResViT generator ``G(x_in [B, 1, S, S], delta, c_out [B], z=None) -> [B, 1, S, S]`` in [-1, 1]."""

    has_unused_parameters = True  # the transformer branches get no gradients before the switch (DDP)

    def __init__(self, cfg: ResViTConfig):
        super().__init__()
        self.cfg = cfg
        ngf = cfg.ngf
        cin = cfg.num_inputs + (len(cfg.modalities) if cfg.condition else 0)
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=False), _norm(ngf), nn.ReLU(True),
            *_conv_bn_relu(ngf, 2 * ngf), *_conv_bn_relu(2 * ngf, 4 * ngf),
        )
        self.art = nn.ModuleList([ARTBlock(cfg, i + 1 in cfg.transformer_blocks) for i in range(cfg.num_art)])
        self.decoder = nn.Sequential(
            *_deconv_bn_relu(4 * ngf, 2 * ngf), *_deconv_bn_relu(2 * ngf, ngf),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh(),
        )
        # PyTorch's default initialisation everywhere, as the authors' define_G (no init_weights)
        self.transformer = ViTEncoder(cfg)  # shared by the transformer ART blocks
        self.register_buffer("transformer_on", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"resolution={c.img_resolution}, ngf={c.ngf}, art={c.num_art}, transformer_blocks={list(c.transformer_blocks)}, "
                f"vit=({c.vit_dim}, depth {c.vit_depth}, heads {c.vit_heads}, tokens {c.grid}x{c.grid}), condition={c.condition}")

    @property
    def phase(self) -> str:
        """``pretrain`` (CNN only) or ``finetune`` (transformer branches on)."""
        return "finetune" if bool(self.transformer_on) else "pretrain"

    def optim_phases(self, total_steps: int) -> list:
        """Trainer hook: CNN pre-training, then transformer fine-tuning as a new phase (Adam
        restarted at ``finetune_lr``, its own schedule, a re-initialised discriminator)."""
        from unicoal.train.schedule import Phase

        b = self.cfg.boundary(total_steps)
        lr = None if self.cfg.finetune_lr is None else float(self.cfg.finetune_lr)
        if b <= 0:
            return [Phase(0, lr=lr, name="transformer fine-tuning")]
        if b >= int(total_steps):
            return [Phase(0, name="CNN pre-training")]
        return [Phase(0, name="CNN pre-training"), Phase(b, lr=lr, fresh_discriminator=True, name="transformer fine-tuning")]

    def set_train_step(self, step: int, total_steps: int) -> None:
        """Trainer hook (before every optimiser step): switch the transformer on at the boundary."""
        if not bool(self.transformer_on) and int(step) >= self.cfg.boundary(total_steps):
            self.enable_transformer(step)

    def enable_transformer(self, step: int | None = None) -> None:
        """Insert the transformer branches: load ImageNet ViT weights when configured, then switch on."""
        where = "" if step is None else f" at step {step}"
        if self.cfg.vit_weights:
            n = self.load_vit(self.cfg.vit_weights)
            log.warning("ResViT: transformer branches on%s, initialised from ImageNet ViT weights %s (%d tensors)", where, self.cfg.vit_weights, n)
        else:
            log.warning("ResViT: transformer branches on%s, trained from scratch (no model.vit_weights given)", where)
        self.transformer_on.fill_(1)

    @torch.no_grad()
    def load_vit(self, path: str | Path) -> int:
        """Copy a pretrained ViT's encoder layers, final norm, (resampled) position embeddings and
        patch embedding (R50+ViT-B/16: a 1 x 1 convolution from 1024 channels) into the model."""
        state = load_vit_state(path, self.cfg.vit_depth)
        own = self.transformer.state_dict()
        count = self._load_patch_embed(state, path)
        for key, value in state.items():
            if key == "pos_embed" or key.startswith("patch_embed."):
                continue
            if key not in own:
                continue
            if tuple(own[key].shape) != tuple(value.shape):
                raise ValueError(f"{path}: ViT tensor {key} has shape {list(value.shape)}, the model needs {list(own[key].shape)} (model.vit_dim / vit_mlp_dim / vit_depth must match the weights)")
            own[key].copy_(value.to(own[key].dtype))
            count += 1
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"{path}: ViT weights lack {len(missing)} tensor(s) of the encoder, e.g. {missing[0]}")
        self.transformer.load_state_dict(own)
        if "pos_embed" in state:
            pos = _resample_pos(state["pos_embed"].float(), self.cfg.grid)
            for blk in self.art:
                if blk.with_transformer:
                    if pos.shape[-1] != blk.pos_embed.shape[-1]:
                        raise ValueError(f"{path}: position embedding width {pos.shape[-1]} differs from vit_dim {blk.pos_embed.shape[-1]}")
                    blk.pos_embed.copy_(pos)
                    count += 1
        return count

    def _load_patch_embed(self, state: dict, path) -> int:
        """Copy ``patch_embed.proj.{weight,bias}`` into every transformer ART block when it fits."""
        w, b = state.get("patch_embed.proj.weight"), state.get("patch_embed.proj.bias")
        blocks = [blk for blk in self.art if blk.with_transformer]
        if w is None:
            log.warning("ResViT: %s has no patch embedding; the ART patch embeddings stay as initialised", path)
            return 0
        want = tuple(blocks[0].patch_embed.weight.shape)
        if tuple(w.shape) != want:
            log.warning("ResViT: the patch embedding of %s has shape %s, ResViT's is %s (R50+ViT-B_16's reads 1024 "
                        "ResNet channels; a plain ViT's reads RGB patches): it stays as initialised", path, list(w.shape), list(want))
            return 0
        for blk in blocks:
            blk.patch_embed.weight.copy_(w.to(blk.patch_embed.weight.dtype))
            if b is not None:
                blk.patch_embed.bias.copy_(b.to(blk.patch_embed.bias.dtype))
        return 2 * len(blocks) if b is not None else len(blocks)

    def forward(self, x_in, delta=None, c_out=None, z=None):
        cfg = self.cfg
        _check_input(x_in, "x_in", cfg.num_inputs, cfg.img_resolution)
        x = x_in
        if cfg.condition:
            x = torch.cat([x, _cond_planes(c_out, len(cfg.modalities), x)], dim=1)
        h = self.encoder(x)
        transformer = self.transformer if bool(self.transformer_on) else None
        for blk in self.art:
            h = blk(h, transformer)
        return self.decoder(h)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN of pix2pix (:class:`unicoal.nn.patchgan.PatchDiscriminator`, ``norm:
    batch``) on ``[source | c_out planes | target]``: ``D(x_in, y, delta, c_out) -> [B, 1, h, w]``."""

    def __init__(self, cfg: ResViTConfig):
        super().__init__()
        self.cfg = cfg
        cond = len(cfg.modalities) if cfg.condition else 0
        self.patch = _PatchGAN(cfg.num_inputs + cond + 1, cfg.ndf, cfg.d_layers, "batch")

    def reset_parameters(self) -> None:
        """A newly initialised discriminator (``N(0, 0.02)``, the authors' ``define_D``): the
        fine-tuning run builds a new D."""
        init_pix2pix_weights(self)

    def forward(self, x_in, y, delta=None, c_out=None):
        cfg = self.cfg
        _check_input(x_in, "x_in", cfg.num_inputs, cfg.img_resolution)
        _check_input(y, "y", 1, cfg.img_resolution)
        if cfg.condition:
            x_in = torch.cat([x_in, _cond_planes(c_out, len(cfg.modalities), y)], dim=1)
        return self.patch(x_in, y)


# --------------------------------------------------------------------------------------------
# ImageNet ViT weights
def _resample_pos(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """``[1, N(+1), dim]`` -> ``[1, grid^2, dim]`` (class token dropped, bicubic resampling)."""
    from timm.layers import resample_abs_pos_embed

    n = pos.shape[1]
    side = int(math.isqrt(n))
    prefix = 0 if side * side == n else 1
    side = int(math.isqrt(n - prefix))
    if side * side != n - prefix:
        raise ValueError(f"position embedding of {n} tokens is not a square grid")
    if side != grid:
        pos = resample_abs_pos_embed(pos, new_size=[grid, grid], old_size=[side, side], num_prefix_tokens=prefix)  # keeps the prefix
    return pos[:, prefix:]


def _npz_to_timm(w: dict, depth: int) -> dict[str, torch.Tensor]:
    """Google ViT ``.npz`` keys -> timm block names (``blocks.i.*``, ``norm.*``, ``pos_embed``)."""
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))  # noqa: E731
    out: dict[str, torch.Tensor] = {}
    for i in range(depth):
        root = f"Transformer/encoderblock_{i}/"
        if root + "LayerNorm_0/scale" not in w:
            raise ValueError(f"the .npz has no encoder block {i} (model.vit_depth is {depth})")
        att = root + "MultiHeadDotProductAttention_1/"
        dim = w[att + "query/kernel"].shape[0]
        out[f"blocks.{i}.norm1.weight"] = t(w[root + "LayerNorm_0/scale"])
        out[f"blocks.{i}.norm1.bias"] = t(w[root + "LayerNorm_0/bias"])
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([t(w[att + f"{n}/kernel"]).reshape(dim, dim).t() for n in ("query", "key", "value")])
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([t(w[att + f"{n}/bias"]).reshape(-1) for n in ("query", "key", "value")])
        out[f"blocks.{i}.attn.proj.weight"] = t(w[att + "out/kernel"]).reshape(dim, dim).t()
        out[f"blocks.{i}.attn.proj.bias"] = t(w[att + "out/bias"])
        out[f"blocks.{i}.norm2.weight"] = t(w[root + "LayerNorm_2/scale"])
        out[f"blocks.{i}.norm2.bias"] = t(w[root + "LayerNorm_2/bias"])
        for j in (0, 1):
            out[f"blocks.{i}.mlp.fc{j + 1}.weight"] = t(w[root + f"MlpBlock_3/Dense_{j}/kernel"]).t()
            out[f"blocks.{i}.mlp.fc{j + 1}.bias"] = t(w[root + f"MlpBlock_3/Dense_{j}/bias"])
    out["norm.weight"] = t(w["Transformer/encoder_norm/scale"])
    out["norm.bias"] = t(w["Transformer/encoder_norm/bias"])
    if "embedding/kernel" in w:  # [kh, kw, in, out] -> [out, in, kh, kw] (R50+ViT-B_16: [1, 1, 1024, 768])
        out["patch_embed.proj.weight"] = t(w["embedding/kernel"]).permute(3, 2, 0, 1).contiguous()
        out["patch_embed.proj.bias"] = t(w["embedding/bias"])
    if "Transformer/posembed_input/pos_embedding" in w:
        out["pos_embed"] = t(w["Transformer/posembed_input/pos_embedding"])
    return out


def load_vit_state(path: str | Path, depth: int) -> dict[str, torch.Tensor]:
    """The first ``depth`` encoder blocks, final norm, position and patch embedding of a ViT
    checkpoint, named as timm's ``VisionTransformer`` (``blocks.i.*``, ``norm.*``, ``pos_embed``,
    ``patch_embed.proj.*``).

    Reads Google's ``.npz`` (``Transformer/encoderblock_i/...``) or a timm / torch state dict
    (``.safetensors``, else ``torch.load(weights_only=True)``); common prefixes (``module.``,
    ``model.``, ``transformer.``) are stripped."""
    from unicoal.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "ImageNet ViT weights not found", "give model.vit_weights as a readable .npz / .pth / .safetensors file, or null to train the transformer from scratch")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                return _npz_to_timm({k: npz[k] for k in npz.files}, depth)
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(p))
        else:
            raw = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(p, f"not readable ViT weights ({type(err).__name__}: {str(err).splitlines()[0][:120]})", "pass Google's ViT .npz or a timm ViT state dict") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(raw, dict) and key in raw and isinstance(raw[key], dict):
            raw = raw[key]
    out: dict[str, torch.Tensor] = {}
    for k, v in raw.items():
        for pre in ("module.", "model.", "transformer."):
            if k.startswith(pre):
                k = k[len(pre):]
        if k.startswith("blocks."):
            if int(k.split(".")[1]) < depth:
                out[k] = v
        elif k in ("norm.weight", "norm.bias", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"):
            out[k] = v
    if not any(k.startswith(f"blocks.{depth - 1}.") for k in out):
        raise InputError(p, f"no ViT encoder block {depth - 1} (timm names blocks.i.*) in the weights", "pass a ViT with at least model.vit_depth blocks")
    return out

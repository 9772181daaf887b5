"""SC-GAN: 3D self-attention conditional GAN with spectral normalisation (baseline of Tables I, III, IV).

Reference: H. Lan, A. W. Toga, F. Sepehrband et al., "Three-dimensional self-attention
conditional GAN with spectral normalization for multimodal neuroimaging synthesis", Magnetic
Resonance in Medicine 86(3):1718-1733, 2021 (the Uni-COAL paper's [11]). Authors' code:
github.com/Haoyulance/SC-GAN (TensorFlow; read for the layer table, nothing copied).

What is the paper's (and the authors' code's):

* generator: a 3D U-Net of ``len(channels)`` stride-2 convolutions (published 8: 64, 128, 256,
  512, 512, 512, 512, 512 channels, kernels 5, 5, 5, 5, 3, 3, 3, 2), leaky ReLU 0.2, batch
  normalisation (``src/utils/util.py`` ``batch_norm``: ``tf.layers.batch_normalization``,
  momentum 0.99, epsilon 1e-3, scale and offset; none on the first layer; instance norm is the
  commented-out alternative there and ``norm: instance`` here), mirrored by stride-2 transposed
  convolutions with batch norm and ReLU, skip concatenations and dropout 0.5 on the three deepest
  decoder layers; the last transposed convolution returns as many channels as the input, then a
  3x3x3 convolution, a final self-attention and ``tanh``; no convolution has a bias
  (``snconv3d``); filters start from a truncated normal of std 0.02, the attention projections
  from Glorot-uniform;
* self-attention (SAGAN-style, 3D): theta / phi / g 1x1x1 projections to C/8, C/8 and C/2
  channels, phi and g max-pooled (2x2x2, stride 2; stride 64 in the final attention), softmax
  attention, a 1x1x1 output projection and ``(x + sigma * o) / (1 + sigma)`` with a learnable
  ``sigma`` starting at 0; in the generator after encoder level 5, after decoder level 5 (at
  encoder level 3's size) and on the output; in the discriminator after its third layer;
* spectral normalisation of every convolution of both networks (one power iteration);
* discriminator: a conditional 3D PatchGAN on ``[source | target]``: four 5x5x5 stride-2
  convolutions (64, 128, 256, 512), batch norm (none on the first), leaky ReLU 0.2, then a
  5x5x5 convolution to one logit per patch;
* training (``src/net.py``, ``training.py``; configs/scgan.yaml and
  :mod:`unicoal.train.losses_volume`): non-saturating GAN loss; G: ``+ 200 * L1 + 200 *
  RMSE(brain) + 20 * FM + L2``: the RMSE over the target's brain area (voxels where the target
  is not background -1), the feature-matching loss (mean over D's five feature maps -- its
  three conv layers, the attention and the fourth layer -- of the mean absolute difference
  between the real and the generated pair, counted as 0 below 2e-4; ``floss`` is on in
  ``training.py``), and the L2 weight regulariser ``1e-3 * sum(w^2) / 2`` over G's weights
  (0 below 1e-5), D's loss likewise ``+ 1e-3 * sum(w^2) / 2`` (0 below 5e-5); Adam lr 1e-3
  (``--lr``), beta1 0.5, *constant*: ``training.py`` assigns a cosine-decayed value to
  ``model.lr`` each step, but the optimisers were built with the initial float, so the decay
  only reaches the logged summary; G step, then D step; batch 1. Task-specific: one model per
  (source, target, thickness) combination.

The Uni-COAL authors' reimplementation (zhiyuns/UniCOAL ``models/scgan_model.py``) trains with
the pix2pix recipe: vanilla GAN loss with D's loss halved, L1 only (no RMSE, no feature
matching), Adam ``weight_decay=1e-3`` (the same gradient as the L2 term) with lr 2e-4 decaying
linearly over the second half (``configs/defaults.py``), D step before G step. ``parity:
official`` selects it (:data:`unicoal.train.config.PARITY_METHODS`).

What is ours:

* patches: the network sees 3D patches ``[B, 1, D, H, W]`` of the source volume
  pre-interpolated onto the target grid (for SR / CMSR; :class:`unicoal.data3d.PatchDataset3D`,
  dataset kind ``patch3d``) and synthesis runs it over Gaussian-blended sliding windows of the
  patch size (:class:`unicoal.predictors.volume.VolumePredictor`, kind ``volume``); every patch
  side must be a multiple of ``2 ** len(channels)`` (the published 8 levels need 256: the
  authors fed whole volumes, so the published preset uses 256^3 patches);
* normalisation is skipped where a map has one value per channel (the 256^3 bottleneck at
  batch 1: the authors' code normalises it to the constant beta in training, erasing the
  bottleneck, and PyTorch refuses it), and the discriminator returns logits without the
  authors' final batch norm + sigmoid (at their batch of 1 a normalised 1-channel logit map has
  the same mean for every sample, so it cannot tell real from fake on average); the sigmoid is
  inside the loss (binary cross-entropy with logits, the same function);
* the RMSE and feature-matching terms run as method terms of the shared trainer
  (:mod:`unicoal.train.losses_volume`), their weights in the model section;
* a volume smaller than the patch or window is padded with background (-1) by
  :func:`unicoal.data3d.pad_to`, the same rule in training and synthesis;
* batch-norm running statistics also move during the other network's phase (TensorFlow runs a
  network's update ops only with its own step); they are used only at synthesis;
* parameters at the published size: G 132,851,848, the authors' trainable variables counted
  from their layer table; D 21,667,713 (theirs 21,667,715: the final batch norm);
* the call convention of docs/training.md: ``G(x_in, delta, c_out, z=None)`` ignores ``delta``,
  ``c_out`` and ``z`` (SC-GAN is deterministic and task-specific), ``D(x_in, y, delta, c_out)``
  returns ``[B, 1, d, h, w]`` patch logits.

Example:
    >>> cfg = ScganConfig.tiny()
    >>> G, D = ScganGenerator(cfg), ScganDiscriminator(cfg)
    >>> x = torch.zeros(2, 1, *cfg.patch_shape)
    >>> G(x, None, None).shape
    torch.Size([2, 1, 8, 16, 16])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ScganConfig", "SelfAttention3d", "ScganGenerator", "ScganDiscriminator", "scgan_config", "build_scgan"]

_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")
_CHUNK = 1 << 24  # attention entries (query locations x keys) computed at once


@dataclass(frozen=True)
class ScganConfig:
    """Sizes of the SC-GAN generator and discriminator (published values are the defaults).

    Attributes:
        modalities: modalities the model reads or writes (task-specific: usually two).
        num_inputs: input channels (1: the source volume).
        patch_size: training patch ``(D, H, W)``, slice axis first.
        window: sliding-window size at synthesis (``None``: the patch size); larger windows give
            the self-attention more context and need fewer passes.
        interpolation: kernel of the pre-resampling of a thick-slice source onto the target
            slices (``linear``, ``cubic``, ``lanczos``; :mod:`unicoal.data3d`).
        channels / kernels: the encoder's stride-2 levels (decoder mirrors them).
        last_channels: channels of the last transposed convolution (authors: = num_inputs).
        attention_level: encoder level (1-based) followed by self-attention, and the decoder
            level at the same depth (authors: 5); 0 disables both.
        final_attention: self-attention on the output (authors: True), its pooling stride
            ``final_attention_pool`` (authors: 64).
        dropout: dropout of the ``dropout_levels`` deepest decoder layers (authors: 0.5, 3).
        d_channels: discriminator's stride-2 levels; ``d_attention_level`` (authors: 3).
        sn_iters: power iterations of spectral normalisation per training forward.
        norm: ``batch`` (authors' released code) or ``instance``.
        feature_matching_weight / rmse_weight: weights of the authors' feature-matching loss
            (20) and brain-area RMSE (200); ``weight_decay_g`` / ``weight_decay_d``: their L2
            regularisers (1e-3) -- all computed by :mod:`unicoal.train.losses_volume`.
    """

    modalities: tuple[str, ...] = ("T1", "T2")
    num_inputs: int = 1
    pad_mode: str = "replicate"  # set by data.padding; unused: 3D patches and windows pad by unicoal.data3d.pad_to
    patch_size: tuple[int, int, int] = (256, 256, 256)
    window: tuple[int, int, int] | None = None
    interpolation: str = "cubic"
    channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)
    kernels: tuple[int, ...] = (5, 5, 5, 5, 3, 3, 3, 2)
    last_channels: int | None = None
    attention_level: int = 5
    final_attention: bool = True
    final_attention_pool: int = 64
    dropout: float = 0.5
    dropout_levels: int = 3
    d_channels: tuple[int, ...] = (64, 128, 256, 512)
    d_kernel: int = 5
    d_attention_level: int = 3
    sn_iters: int = 1
    norm: str = "batch"
    feature_matching_weight: float = 20.0
    rmse_weight: float = 200.0
    weight_decay_g: float = 1e-3
    weight_decay_d: float = 1e-3

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("modalities", tuple(str(m) for m in self.modalities))
        set_("channels", tuple(int(c) for c in self.channels))
        set_("kernels", tuple(int(k) for k in self.kernels))
        set_("d_channels", tuple(int(c) for c in self.d_channels))
        set_("patch_size", tuple(int(p) for p in self.patch_size))
        if self.window is not None:
            set_("window", tuple(int(p) for p in self.window))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities) or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be distinct names from {', '.join(_MODALITIES)}, got {list(self.modalities)}")
        if self.pad_mode not in ("replicate", "constant"):
            raise ValueError(f"pad_mode must be 'replicate' or 'constant', got {self.pad_mode!r}")
        if int(self.num_inputs) != 1:
            raise ValueError(f"SC-GAN reads one source volume: num_inputs must be 1, got {self.num_inputs}")
        if not self.channels or len(self.channels) != len(self.kernels):
            raise ValueError(f"channels {list(self.channels)} and kernels {list(self.kernels)} must be non-empty and of equal length")
        if any(c < 1 for c in self.channels + self.d_channels) or any(k < 1 for k in self.kernels) or self.d_kernel < 1:
            raise ValueError("channels and kernel sizes must be positive")
        mult = 2 ** len(self.channels)
        if len(self.patch_size) != 3 or any(v < mult or v % mult for v in self.patch_size):
            raise ValueError(f"patch_size {list(self.patch_size)} must be three positive multiples of 2**{len(self.channels)} = {mult} (one halving per level)")
        if self.window is not None and (len(self.window) != 3 or any(v < mult or v % mult for v in self.window)):
            raise ValueError(f"window {list(self.window)} must be three positive multiples of 2**{len(self.channels)} = {mult}")
        if self.interpolation not in ("linear", "cubic", "lanczos"):
            raise ValueError(f"interpolation must be linear, cubic or lanczos, got {self.interpolation!r}")
        if not 0 <= self.attention_level <= len(self.channels):
            raise ValueError(f"attention_level must be in 0..{len(self.channels)}, got {self.attention_level}")
        if not 0 <= self.d_attention_level <= len(self.d_channels):
            raise ValueError(f"d_attention_level must be in 0..{len(self.d_channels)}, got {self.d_attention_level}")
        if not 0.0 <= self.dropout < 1.0 or self.dropout_levels < 0:
            raise ValueError(f"dropout must be in [0, 1) and dropout_levels >= 0, got {self.dropout}, {self.dropout_levels}")
        if self.final_attention_pool < 1 or self.sn_iters < 1:
            raise ValueError("final_attention_pool and sn_iters must be >= 1")
        if self.last_channels is not None and int(self.last_channels) < 1:
            raise ValueError(f"last_channels must be >= 1, got {self.last_channels}")
        if self.norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {self.norm!r}")
        if min(self.feature_matching_weight, self.rmse_weight, self.weight_decay_g, self.weight_decay_d) < 0:
            raise ValueError("feature_matching_weight, rmse_weight and weight_decay_g / _d must be >= 0")

    # the generic model-config interface of docs/training.md
    @property
    def patch_shape(self) -> tuple[int, int, int]:
        return self.patch_size

    @property
    def inference_window(self) -> tuple[int, int, int]:
        """Sliding-window size at synthesis (:mod:`unicoal.predictors.volume`): ``window``, else
        the training patch (published: 256^3, the authors' whole volumes)."""
        return self.window or self.patch_size

    @property
    def img_resolution(self) -> int:
        """In-plane patch side (the generic model-config field; 3D data ignore it)."""
        return int(self.patch_size[1])

    @property
    def z_dim(self) -> int:
        return 0

    @classmethod
    def paper(cls, **kw) -> "ScganConfig":
        """The authors' network (whole 256^3 volumes, 8 levels)."""
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "ScganConfig":
        """CPU-sized SC-GAN (8 x 16 x 16 patches, 16 x 64 x 64 synthesis windows, 3 levels, <= 16
        channels; the output attention pools keys by 8, so a window has 1/512 as many keys as
        voxels: with the authors' stride 64 a window smaller than 64^3 would have one key)."""
        base = dict(patch_size=(8, 16, 16), window=(16, 64, 64), channels=(8, 16, 16), kernels=(3, 3, 3), last_channels=4,
                    attention_level=2, final_attention_pool=8, d_channels=(8, 16), d_kernel=3, d_attention_level=1)
        return cls(**{**base, **kw})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("modalities", "channels", "kernels", "d_channels", "patch_size", "window"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ScganConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SC-GAN model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
        return cls(**d)


def scgan_config(d: dict | None) -> ScganConfig:
    """``model`` section -> :class:`ScganConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    base = ScganConfig.paper() if preset == "paper" else ScganConfig.tiny()
    return ScganConfig.from_dict({**base.to_dict(), **d}) if d else base


def build_scgan(cfg: ScganConfig, discriminator: bool = True):
    return ScganGenerator(cfg), (ScganDiscriminator(cfg) if discriminator else None)


# --------------------------------------------------------------------------------------------
# layers
def _sn(module: nn.Module, iters: int, std: float | None = 0.02) -> nn.Module:
    """Spectrally normalised ``module`` with the authors' initial filter: truncated normal of
    ``std`` (cut at 2 std, TensorFlow's ``truncated_normal_initializer``), or Glorot-uniform
    (``std=None``, their attention projections)."""
    if std is None:
        nn.init.xavier_uniform_(module.weight)
    else:
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    return spectral_norm(module, n_power_iterations=iters)


class _Norm(nn.Module):
    """Batch norm (TensorFlow's defaults: momentum 0.99, epsilon 1e-3) or affine instance norm;
    a map with one value per channel passes through unchanged (see module doc)."""

    def __init__(self, channels: int, kind: str = "batch"):
        super().__init__()
        self.norm = nn.BatchNorm3d(channels, eps=1e-3, momentum=0.01) if kind == "batch" else nn.InstanceNorm3d(channels, affine=True)

    def forward(self, x):
        voxels = x.shape[2:].numel()
        if isinstance(self.norm, nn.BatchNorm3d):
            # training: one value per channel in the batch; synthesis: a layer that never saw more
            # (its running statistics are untouched), so it passes through as in training
            skip = x.shape[0] * voxels <= 1 if self.training else voxels <= 1 and int(self.norm.num_batches_tracked) == 0
        else:
            skip = voxels <= 1
        return x if skip else self.norm(x)


class SelfAttention3d(nn.Module):
    """SC-GAN's spectrally normalised 3D self-attention (see module doc); ``pool`` is the stride
    of the 2x2x2 max-pooling of the key / value maps (2, or 64 on the output)."""

    def __init__(self, channels: int, pool: int = 2, sn_iters: int = 1):
        super().__init__()
        self.channels, self.pool = int(channels), int(pool)
        ck, cv = channels // 8 or 4, channels // 2 or 16
        self.theta = _sn(nn.Conv3d(channels, ck, 1, bias=False), sn_iters, None)
        self.phi = _sn(nn.Conv3d(channels, ck, 1, bias=False), sn_iters, None)
        self.g = _sn(nn.Conv3d(channels, cv, 1, bias=False), sn_iters, None)
        self.out = _sn(nn.Conv3d(cv, channels, 1, bias=False), sn_iters, None)
        self.sigma = nn.Parameter(torch.zeros(()))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, pool={self.pool}"

    def _down(self, x):
        size = min(2, *x.shape[2:])
        stride = max(1, min(self.pool, *x.shape[2:]))
        return F.max_pool3d(x, kernel_size=size, stride=stride)

    def forward(self, x):
        b, c, d, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # [B, N, ck]
        k = self._down(self.phi(x)).flatten(2)  # [B, ck, M]
        v = self._down(self.g(x)).flatten(2).transpose(1, 2)  # [B, M, cv]
        # softmax(q k) v over chunks of query locations: the same result, memory bounded by
        # _CHUNK x M (the output attention of a 256^3 volume has 16.7 M x 64 entries)
        n = q.shape[1]
        step = max(1, _CHUNK // max(1, k.shape[-1]))
        o = torch.cat([torch.softmax(q[:, s:s + step] @ k, dim=-1) @ v for s in range(0, n, step)], dim=1)  # [B, N, cv]
        o = o.transpose(1, 2).reshape(b, -1, d, h, w)
        o = self.out(o)
        return (x + self.sigma * o) / (1.0 + self.sigma)


def _check_patch(x: torch.Tensor, name: str, channels: int, shape: tuple[int, int, int] | None = None) -> None:
    if x.ndim != 5 or x.shape[1] != channels:
        raise ValueError(f"{name} must be [B, {channels}, D, H, W], got {tuple(x.shape)}")
    if shape is not None and tuple(x.shape[2:]) != tuple(shape):
        raise ValueError(f"{name} patch must be {tuple(shape)}, got {tuple(x.shape[2:])}")


# --------------------------------------------------------------------------------------------
# networks
class ScganGenerator(nn.Module):
    """SC-GAN's self-attention 3D U-Net: ``G(x_in [B, 1, D, H, W], delta, c_out, z=None) -> [B, 1, D, H, W]``
    in [-1, 1] (``delta``, ``c_out``, ``z`` are ignored: the model is task-specific).
    Any ``D, H, W`` that are multiples of ``2 ** levels`` work (sliding windows use the config's)."""

    #: sliding-window halo (unicoal.predictors.volume): 0, as self-attention makes the receptive
    #: field the whole window, so no finite halo makes windows exact; windows are Gaussian-blended
    receptive_radius = 0
    #: the authors' RMSE, feature-matching and L2 terms (unicoal.train.losses hook)
    loss_terms = "unicoal.train.losses_volume:ScganTerms"

    def __init__(self, cfg: ScganConfig):
        super().__init__()
        self.cfg = cfg
        self.size_multiple = 2 ** len(cfg.channels)  # window sides (unicoal.predictors.volume)
        it = cfg.sn_iters
        n = len(cfg.channels)
        self.down = nn.ModuleList()
        c_prev = cfg.num_inputs
        for i, (c, k) in enumerate(zip(cfg.channels, cfg.kernels)):
            self.down.append(nn.Sequential(_sn(nn.Conv3d(c_prev, c, k, stride=2, padding=(k - 1) // 2, bias=False), it),
                                           _Norm(c, cfg.norm) if i > 0 else nn.Identity(), nn.LeakyReLU(0.2)))
            c_prev = c
        self.enc_attn = SelfAttention3d(cfg.channels[cfg.attention_level - 1], 2, it) if cfg.attention_level else None
        # decoder level j (0 = deepest) maps to the resolution of encoder level n-2-j (or the input)
        self.up = nn.ModuleList()
        skips = list(cfg.channels[:-1][::-1]) + [None]
        last = int(cfg.last_channels or cfg.num_inputs)
        c_in = cfg.channels[-1]
        for j in range(n):
            k = cfg.kernels[n - 1 - j]
            pad = (k - 1) // 2
            c_out = skips[j] if skips[j] is not None else last
            layers = [_sn(nn.ConvTranspose3d(c_in, c_out, k, stride=2, padding=pad, output_padding=2 + 2 * pad - k, bias=False), it),
                      _Norm(c_out, cfg.norm)]
            if j < cfg.dropout_levels and cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            layers.append(nn.ReLU())
            self.up.append(nn.Sequential(*layers))
            c_in = 2 * c_out if skips[j] is not None else c_out
        # decoder attention after decoder level ``attention_level`` (authors: dl5, at encoder level 3's size)
        self.dec_attn_level = cfg.attention_level - 1 if 0 < cfg.attention_level < n else None
        self.dec_attn = SelfAttention3d(skips[self.dec_attn_level], 2, it) if self.dec_attn_level is not None else None
        self.final = _sn(nn.Conv3d(last, 1, 3, padding=1, bias=False), it)
        self.final_attn = SelfAttention3d(1, cfg.final_attention_pool, it) if cfg.final_attention else None

    def forward(self, x_in, delta=None, c_out=None, z=None):
        _check_patch(x_in, "x_in", self.cfg.num_inputs)
        mult = 2 ** len(self.cfg.channels)
        if any(s % mult for s in x_in.shape[2:]):
            raise ValueError(f"x_in patch {tuple(x_in.shape[2:])} must have sides that are multiples of {mult}")
        feats = []
        h = x_in
        for i, layer in enumerate(self.down):
            h = layer(h)
            if self.enc_attn is not None and i == self.cfg.attention_level - 1:
                h = self.enc_attn(h)
            feats.append(h)
        skips = feats[:-1][::-1]
        for j, layer in enumerate(self.up):
            h = layer(h)
            if self.dec_attn is not None and j == self.dec_attn_level:
                h = self.dec_attn(h)
            if j < len(skips):
                h = torch.cat([h, skips[j]], dim=1)
        h = self.final(h)
        if self.final_attn is not None:
            h = self.final_attn(h)
        return torch.tanh(h)


class ScganDiscriminator(nn.Module):
    """SC-GAN's conditional 3D PatchGAN: ``D(x_in [B, 1, D, H, W], y [B, 1, D, H, W], delta, c_out)
    -> [B, 1, d, h, w]`` logits (one per receptive-field patch; ``delta`` / ``c_out`` ignored).

    With ``keep_features`` set (by the feature-matching loss), each forward leaves the authors'
    ``_perceptual_fmap`` list in ``features``: every level's activation and the attention's output."""

    def __init__(self, cfg: ScganConfig):
        super().__init__()
        self.cfg = cfg
        self.keep_features = False
        self.features: list[torch.Tensor] | None = None
        it = cfg.sn_iters
        k = cfg.d_kernel
        layers: list[nn.Module] = []
        c_prev = cfg.num_inputs + 1
        for i, c in enumerate(cfg.d_channels):
            layers += [_sn(nn.Conv3d(c_prev, c, k, stride=2, padding=(k - 1) // 2, bias=False), it)]
            if i > 0:
                layers.append(_Norm(c, cfg.norm))
            layers.append(nn.LeakyReLU(0.2))
            if i + 1 == cfg.d_attention_level:
                layers.append(SelfAttention3d(c, 2, it))
            c_prev = c
        layers.append(_sn(nn.Conv3d(c_prev, 1, k, padding=(k - 1) // 2, bias=False), it))
        self.net = nn.Sequential(*layers)

    def forward(self, x_in, y, delta=None, c_out=None):
        _check_patch(x_in, "x_in", self.cfg.num_inputs)
        _check_patch(y, "y", 1, tuple(x_in.shape[2:]))
        h = torch.cat([x_in, y], dim=1)
        feats = []
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, (nn.LeakyReLU, SelfAttention3d)):
                feats.append(h)
        self.features = feats if self.keep_features else None
        return h

"""AutoGAN-Synthesizer: a searched multi-resolution generator for cross-modality MRI synthesis
(baseline of Table I, 2D CMS), trained as a fixed network.

Reference: X. Hu, R. Shen, D. Luo, Y. Tai, C. Wang and B. H. Menze, "AutoGAN-Synthesizer: neural
architecture search for cross-modality MRI synthesis", MICCAI 2022, pp. 397-409 (the Uni-COAL
paper's [17]). Authors' code: github.com/HUuxiaobin/AutoGAN-Synthesizer (``search_space.py``,
``main_train_exploring_time_model_brats_gan_v2_perception.py``, ``discriminator.py``; read for
the layer table and the recipe, nothing copied).

What is the paper's (and the authors' code's):

* search space (HRNet-like, multi-resolution): a full-resolution stem of 2 ResNet bottlenecks
  (32 planes, 128 channels), then stages 2-4 with 2, 3 and 4 parallel branches of 32, 64, 128 and
  256 channels (each new branch: a stride-2 3 x 3 convolution of the lowest one; each stage starts
  with a transition), stage ``s`` holding 4 *modules*; each module is one of two searched
  operations: a **parallel** module (one residual block per branch) or a **fusion** module (every
  branch receives the sum of all branches, resampled: 1 x 1 convolution + nearest upsampling from
  lower resolutions, stride-2 3 x 3 convolutions from higher ones); a final fusion into the
  full-resolution branch and a 1 x 1 convolution to the output (no output activation); batch
  norm everywhere; convolution weights ``N(0, 0.001)``;
* input: every source image *and its k-space image*, the log-magnitude of its centred 2D Fourier
  transform (``create_data/k_space_analysis.py``: ``log|fftshift(fft2(img))|``), stacked as
  channels (images first, then their k-space images: ``main_train_...py``);
* training of the searched network: content loss = MSE + 1e5 x Gram-matrix style loss over VGG16
  relu1_2 / 2_2 / 3_3 / 4_3 (ImageNet weights; ``vgg.py``, ``utils.gram``) + 1e-7 x total
  variation (``perception_loss``); an unconditional 70 x 70 PatchGAN on the generated / real
  target (``define_D(..., 'instance', use_sigmoid=True)``), adversarial weight 1e-4; within a step
  D is updated before G from one forward of G; Adam lr 5e-5, betas (0.9, 0.999), batch 16, lr
  constant (the authors' cosine schedule is attached to an unused optimiser), 1000 epochs;
  augmentation (``datasets.py``): a rotation by 90, 180 or 270 degrees, a left-right mirror with
  probability 1/2, and a saturation factor in [0.8, 1.2].

What is ours:

* the searched operation sequence (``arch``): the authors' code reads it from their search
  checkpoint (``--ckt_path``), which is not released, and we could not read it off the paper, so
  the default is ``"pfpf" * 3`` (parallel, fusion, alternating in each stage: HRNet's own
  "residual blocks, then exchange" rhythm). Set ``model.arch`` (12 letters ``p`` / ``f`` for
  stages 2, 3, 4) to a searched sequence; the search itself (``main_train_search.py``: a
  softmax-relaxed choice per module trained on MSE, DARTS-style) is not part of this package;
* the k-space channel is built inside the generator (:func:`log_kspace`, ``model.kspace``), so
  training and synthesis compute it with the one function from the (augmented) input slice; its
  log-magnitude is min-max scaled per image to [-1, 1] (the authors store it as an image file,
  whose scaling their code does not show) and ``log(1 + |F|)`` of the image in [0, 255] avoids
  ``log 0``;
* losses, within the one trainer: the authors' content loss on the [0, 1] images
  (``loss.mse_weight`` 1, ``style_weight`` 1e5 with :class:`unicoal.nn.perceptual.StyleLoss`,
  ``tv_weight`` 1e-7); VGG16's ImageNet weights come from ``loss.perceptual_checkpoint`` (never
  downloaded), else the logged LiteMedSAM fallback runs (one feature map) and the tables mark
  the run; their sigmoid-MSE / BCE adversarial pair is the cross-entropy GAN loss (``gan:
  vanilla``) at weight 1e-4 (``adversarial_weight``); no EMA, no R1, no blur; the D's step
  decay (x0.1 every 150 epochs) is not reproduced (their scheduler is rebuilt every epoch, so it
  never fires), nor is their rebuilding of both Adam optimisers at every epoch;
* augmentation: ``data.augment: [rot90, mirror, saturation]`` (sampled per item with the other
  random choices, then applied: :class:`unicoal.data.SliceDataset`); saturation is torchvision's
  blend with the image's own grey version, which leaves grey slices unchanged (as it leaves the
  authors' grey-as-RGB slices), so it is drawn and recorded but changes no pixel;
* one grey input slice (plus its k-space image) and one output slice (the authors feed three
  source contrasts as RGB images); the output stays linear (no ``tanh``), as in the authors'
  code, and synthesis clips it to [0, 1];
* the blocks are torchvision's ``Bottleneck`` and ``BasicBlock`` (the same layers as the authors'
  ``Bottleneck`` / ``ResidualBlock``); the call convention of docs/training.md:
  ``G(x_in [B, 1, S, S], delta, c_out, z=None)`` (``delta``, ``c_out``, ``z`` ignored: one model
  per task), ``D(x_in, y, delta, c_out) -> [B, 1, h, w]`` (``x_in`` ignored: unconditional);
* ``tiny`` preset: 64 x 64, branches of 8 / 16 / 32 / 64 channels, 1 + 2 + 2 + 2 modules, and
  batch-norm momentum 0.5 instead of 0.1: the authors' ``N(0, 0.001)`` initialisation makes the
  activations grow by orders of magnitude in the first steps, so after a few dozen steps running
  statistics averaged with momentum 0.1 still describe the early network and ``eval()`` outputs
  are far off (held-out L1 0.62 in eval vs 0.10 in train mode after 24 steps); with 0.5 they
  follow the last few batches. Published training runs long enough for 0.1.

Sizes: ``paper`` with the default ``arch`` has 6,542,560 generator parameters (160 of them read
the k-space channel; the count depends on ``arch``: 8.72 M with only parallel modules, 4.36 M with
only fusion modules) and 2,762,689 discriminator parameters; the paper states no count we could
check, and the searched cell sequence that fixes it is not released (the tables say so).

The Uni-COAL authors' reimplementation (``models/autogan_model.py``, ``parity: official``) trains
the search space with their pix2pix losses (cross-entropy GAN + 100 x L1) on two input channels
(``in_channel = 2``, ``cat_inputs``; their code computes no k-space image) without augmentation.

Example:
    >>> G, D = build_autogan(autogan_config({"preset": "tiny"}))
    >>> G(torch.zeros(2, 1, 64, 64), None, None).shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unicoal.nn.patchgan import NORMS, PatchDiscriminator
from unicoal.nn.shapes import check_shape

__all__ = ["AutoGanConfig", "FusionModule", "ParallelModule", "AutoGanGenerator", "autogan_config", "build_autogan", "log_kspace"]


def log_kspace(x: torch.Tensor) -> torch.Tensor:
    """The k-space image of every slice of ``x`` ``[B, m, S, S]`` in [-1, 1]: ``log(1 + |fftshift(
    fft2(255 u))|)`` of the image ``u`` in [0, 1] (the authors' 8-bit slices), min-max scaled per
    slice to [-1, 1] (-1 for a constant map). Float32, no gradient: an input channel, computed by
    the generator itself in training and synthesis alike."""
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        u = (x.float() + 1.0) * 127.5
        mag = torch.fft.fftshift(torch.fft.fft2(u), dim=(-2, -1)).abs()
        k = torch.log1p(mag)
        lo = k.amin(dim=(-2, -1), keepdim=True)
        span = k.amax(dim=(-2, -1), keepdim=True) - lo
        return torch.where(span > 0, 2.0 * (k - lo) / span.clamp_min(1e-12) - 1.0, torch.full_like(k, -1.0))


@dataclass(frozen=True)
class AutoGanConfig:
    """Sizes of the AutoGAN-Synthesizer generator (paper search space) and its discriminator.

    Attributes:
        img_resolution: slice size S (a multiple of 8: three stride-2 branches).
        num_inputs: source slices (1: 2D).
        modalities: modalities the model knows (its source and target; ``c_out`` is ignored).
        pad_mode: how the loader fills source slices outside the volume (only matters for m > 1).
        channels: branch widths (32, 64, 128, 256).
        modules: stem bottlenecks, then modules of stages 2, 3, 4 ((2, 4, 4, 4)).
        arch: one letter per module of stages 2-4, ``p`` (parallel) or ``f`` (fusion).
        ndf / n_layers_d / norm_d: the unconditional PatchGAN (64, 3, ``instance``).
        bn_momentum: momentum of the generator's batch-norm running statistics (0.1, PyTorch's
            and the authors'; the tiny preset uses 0.5 so that a few dozen steps leave running
            statistics that match the weights, see the module docstring).
        kspace: feed each source slice's log-magnitude k-space image as an extra channel (the
            authors' input; :func:`log_kspace`).
    """

    img_resolution: int = 256
    num_inputs: int = 1
    modalities: tuple[str, ...] = ("T1", "T2")
    pad_mode: str = "replicate"
    channels: tuple[int, ...] = (32, 64, 128, 256)
    modules: tuple[int, ...] = (2, 4, 4, 4)
    arch: str = "pfpf" * 3
    ndf: int = 64
    n_layers_d: int = 3
    norm_d: str = "instance"
    bn_momentum: float = 0.1
    kspace: bool = True

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "modules", tuple(int(m) for m in self.modules))
        if int(self.img_resolution) < 8 or self.img_resolution % 8:
            raise ValueError(f"img_resolution must be a multiple of 8 (three stride-2 branches), got {self.img_resolution}")
        if self.num_inputs < 1 or not self.modalities:
            raise ValueError(f"num_inputs must be >= 1 and modalities non-empty, got {self.num_inputs}, {self.modalities}")
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ValueError(f"channels must be four positive widths, got {self.channels}")
        if len(self.modules) != 4 or min(self.modules) < 1:
            raise ValueError(f"modules must be four counts >= 1, got {self.modules}")
        want = sum(self.modules[1:])
        if len(self.arch) != want or set(self.arch) - {"p", "f"}:
            raise ValueError(f"arch must be {want} letters p (parallel) / f (fusion), one per module of stages 2-4, got {self.arch!r}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
        if self.norm_d not in NORMS or self.ndf < 1 or self.n_layers_d < 1:
            raise ValueError(f"bad discriminator settings ndf={self.ndf}, n_layers_d={self.n_layers_d}, norm_d={self.norm_d!r}")

    def stage_arch(self, stage: int) -> str:
        """The operation letters of stage ``stage`` (2, 3 or 4)."""
        start = sum(self.modules[1 : stage - 1])
        return self.arch[start : start + self.modules[stage - 1]]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(modalities=list(self.modalities), channels=list(self.channels), modules=list(self.modules))
        return d

    @classmethod
    def paper(cls, **overrides: Any) -> "AutoGanConfig":
        """The published search space at 256 x 256 with the default operation sequence."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "AutoGanConfig":
        """64 x 64, branches of 8 / 16 / 32 / 64 channels, 1 + 2 + 2 + 2 modules, ``ndf = 16``."""
        return cls(**{"img_resolution": 64, "channels": (8, 16, 32, 64), "modules": (1, 2, 2, 2), "arch": "pf" * 3, "ndf": 16, "bn_momentum": 0.5, **overrides})


def autogan_config(d: dict | None) -> AutoGanConfig:
    """``model`` section -> :class:`AutoGanConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    names = {f.name for f in dataclasses.fields(AutoGanConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown AutoGAN model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
    return AutoGanConfig.paper(**d) if preset == "paper" else AutoGanConfig.tiny(**d)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(True)) if relu else nn.Sequential(*layers)


class ParallelModule(nn.Module):
    """The "parallel" operation: one residual block (torchvision ``BasicBlock``) per branch."""

    def __init__(self, channels):
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.blocks = nn.ModuleList(BasicBlock(c, c) for c in channels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [block(x) for block, x in zip(self.blocks, xs)]


class FusionModule(nn.Module):
    """The "fusion" operation: output ``i`` = ReLU(sum over ``j`` of branch ``j`` resampled to ``i``);
    lower resolutions come up by 1 x 1 conv + BN + nearest upsampling, higher ones down by chains
    of stride-2 3 x 3 conv + BN (ReLU between); ``outputs = 1`` keeps only the first branch."""

    def __init__(self, channels, outputs: int | None = None):
        super().__init__()
        n = len(channels)
        self.outputs = n if outputs is None else int(outputs)
        self.paths = nn.ModuleList()
        for i in range(self.outputs):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]), nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = [_conv_bn(channels[j], channels[j], 3, 2) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _conv_bn(channels[j], channels[i], 3, 2, relu=False)))
            self.paths.append(row)
        self.relu = nn.ReLU(True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for row in self.paths:
            total = row[0](xs[0])
            for path, x in zip(row[1:], xs[1:]):
                total = total + path(x)
            out.append(self.relu(total))
        return out


class _Transition(nn.Module):
    """Adapts the branches between stages: width changes by 3 x 3 conv, a new branch by a stride-2 conv of the last."""

    def __init__(self, before, after):
        super().__init__()
        self.paths = nn.ModuleList()
        for i, c in enumerate(after):
            if i < len(before):
                self.paths.append(nn.Identity() if before[i] == c else _conv_bn(before[i], c, 3))
            else:
                self.paths.append(_conv_bn(before[-1], c, 3, 2))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [path(xs[i] if i < len(xs) else xs[-1]) for i, path in enumerate(self.paths)]


class AutoGanGenerator(nn.Module):
    """``G(x_in [B, m, S, S], delta, c_out, z=None) -> [B, 1, S, S]`` (linear output)."""

    def __init__(self, cfg: AutoGanConfig):
        super().__init__()
        from torchvision.models.resnet import Bottleneck

        self.cfg = cfg
        c = cfg.channels
        stem_out = c[0] * Bottleneck.expansion
        cin = cfg.num_inputs * (2 if cfg.kspace else 1)  # [source slices | their k-space images]
        down = nn.Sequential(nn.Conv2d(cin, stem_out, 1, bias=False), nn.BatchNorm2d(stem_out))
        self.stem = nn.Sequential(Bottleneck(cin, c[0], downsample=down), *[Bottleneck(stem_out, c[0]) for _ in range(cfg.modules[0] - 1)])
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        before = [stem_out]
        for stage in (2, 3, 4):
            width = list(c[:stage])
            self.transitions.append(_Transition(before, width))
            ops = [ParallelModule(width) if op == "p" else FusionModule(width) for op in cfg.stage_arch(stage)]
            self.stages.append(nn.ModuleList(ops))
            before = width
        self.final_fuse = FusionModule(list(c), outputs=1)
        self.to_out = nn.Conv2d(c[0], 1, 1, bias=False)
        for m in self.modules():  # the authors' initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.momentum = cfg.bn_momentum

    def forward(self, x_in: torch.Tensor, delta=None, c_out=None, z=None) -> torch.Tensor:
        s = self.cfg.img_resolution
        x = check_shape(x_in, [None, self.cfg.num_inputs, s, s], "x_in")
        if self.cfg.kspace:
            x = torch.cat([x, log_kspace(x).to(x.dtype)], dim=1)
        xs = [self.stem(x)]
        for transition, ops in zip(self.transitions, self.stages):
            xs = transition(xs)
            for op in ops:
                xs = op(xs)
        return self.to_out(self.final_fuse(xs)[0])

    def extra_repr(self) -> str:
        c = self.cfg
        return f"channels={list(c.channels)}, modules={list(c.modules)}, arch={c.arch!r}, kspace={c.kspace}"


def build_autogan(cfg: AutoGanConfig, discriminator: bool = True):
    """``(G, D)``: the fixed searched generator and, if asked, the unconditional PatchGAN on ``y``."""
    G = AutoGanGenerator(cfg)
    D = PatchDiscriminator(1, cfg.ndf, cfg.n_layers_d, cfg.norm_d, conditional=False) if discriminator else None
    return G, D

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
* training of the searched network: an unconditional 70 x 70 PatchGAN on the generated / real
  target (``define_D(..., 'instance', use_sigmoid=True)``), adversarial weight 1e-4; Adam lr 5e-5,
  betas (0.9, 0.999), batch 16, lr constant (the authors' cosine schedule is attached to an
  unused optimiser), 1000 epochs.

What is ours:

* the searched operation sequence (``arch``): the authors' code reads it from their search
  checkpoint (``--ckt_path``), which is not released, and we could not read it off the paper, so
  the default is ``"pfpf" * 3`` (parallel, fusion, alternating in each stage: HRNet's own
  "residual blocks, then exchange" rhythm). Set ``model.arch`` (12 letters ``p`` / ``f`` for
  stages 2, 3, 4) to a searched sequence; the search itself (``main_train_search.py``: a
  softmax-relaxed choice per module trained on MSE, DARTS-style) is not part of this package;
* losses, within the one trainer: the authors' content loss (MSE + 1e5 x Gram-matrix style loss
  over four VGG16 layers + 1e-7 x total variation) is replaced by L1 (``l1_weight: 1``), and
  their sigmoid-MSE / BCE adversarial pair by the cross-entropy GAN loss (``gan: vanilla``) at
  weight 1e-4 (``adversarial_weight``); no EMA, no R1, no blur; the D's step decay (x0.1 every
  150 epochs) is not reproduced;
* one grey input slice and one output slice (the authors feed 3-channel images); the output
  stays linear (no ``tanh``), as in the authors' code, and synthesis clips it to [0, 1];
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

Sizes: ``paper`` with the default ``arch`` has 6.54 M generator parameters (the count depends on
``arch``: 8.72 M with only parallel modules, 4.36 M with only fusion modules) and 2.76 M
discriminator parameters; the paper states no count we could check.

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

__all__ = ["AutoGanConfig", "FusionModule", "ParallelModule", "AutoGanGenerator", "autogan_config", "build_autogan"]


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
        down = nn.Sequential(nn.Conv2d(cfg.num_inputs, stem_out, 1, bias=False), nn.BatchNorm2d(stem_out))
        self.stem = nn.Sequential(Bottleneck(cfg.num_inputs, c[0], downsample=down), *[Bottleneck(stem_out, c[0]) for _ in range(cfg.modules[0] - 1)])
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
        xs = [self.stem(check_shape(x_in, [None, self.cfg.num_inputs, s, s], "x_in"))]
        for transition, ops in zip(self.transitions, self.stages):
            xs = transition(xs)
            for op in ops:
                xs = op(xs)
        return self.to_out(self.final_fuse(xs)[0])

    def extra_repr(self) -> str:
        c = self.cfg
        return f"channels={list(c.channels)}, modules={list(c.modules)}, arch={c.arch!r}"


def build_autogan(cfg: AutoGanConfig, discriminator: bool = True):
    """``(G, D)``: the fixed searched generator and, if asked, the unconditional PatchGAN on ``y``."""
    G = AutoGanGenerator(cfg)
    D = PatchDiscriminator(1, cfg.ndf, cfg.n_layers_d, cfg.norm_d, conditional=False) if discriminator else None
    return G, D

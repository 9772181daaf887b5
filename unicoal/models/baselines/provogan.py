"""ProvoGAN: progressively volumetrized synthesis with sequential 2D cGANs (baseline of Tables I, III, IV).

Reference: M. Yurt, M. Ozbey, S. U. H. Dar, B. Tinaz, K. K. Oguz and T. Cukur, "Progressively
volumetrized deep generative models for data-efficient contextual learning of MR image
recovery", Medical Image Analysis 78:102429, 2022 (the Uni-COAL paper's [13]). Authors' code:
github.com/icon-lab/ProvoGAN (``sample_run.sh``, ``models/pix2pix_model_perceptual*.py``; read for
the recipe, nothing copied).

What is the paper's (and the authors' code's):

* the volume is recovered in three stages, one per orientation (the order, e.g. axial ->
  coronal -> sagittal, is a hyper-parameter); each stage is a 2D conditional GAN on the
  cross-sections of its orientation;
* stage 1 maps source cross-sections to target cross-sections; stages 2 and 3 receive the
  source cross-sections *and* the cross-sections of the previous stage's output volume and
  predict a residual: ``y_s = y_(s-1) - 2 G_s([x | y_(s-1)])`` (clamped to [-1, 1] at test
  time); each stage is trained after the previous one, on the previous stage's outputs for the
  training volumes;
* every stage: the ResNet generator of pix2pix (``resnet_9blocks``, dropout 0.5) and the
  70 x 70 PatchGAN on ``[inputs | target]``, both with ``ngf = ndf = 24`` (the defaults of the
  authors' ``options/base_options.py``, which ``sample_run.sh`` never changes), batch norm at
  batch size 1, LSGAN + 100 x L1 (stage 1 runs the authors' ``pix2pix_perceptual`` model class,
  stages 2-3 ``pix2pix_perceptual_residual``); D is updated before G within a step (their
  ``optimize_parameters``); each stage is its own ``train.py`` run, so each has its own Adam
  (lr 2e-4, beta1 0.5) and schedule: 50 epochs constant + 50 linear decay to 0
  (configs/provogan.yaml);
* task-specific: one model per (source, target, thickness) task (Table V: CMS, SR and CMSR,
  no arbitrary input or output).

What is ours:

* the generator and discriminator of each stage are pGAN's (:mod:`unicoal.models.baselines.pgan`:
  the same ``resnet_9blocks`` and PatchGAN), with ``norm: batch`` = per-image statistics with a
  learned scale and shift (what batch norm at batch 1 computes in the authors' code);
* one ``unicoal train`` run trains the three stages one after the other: the run's horizon is
  split into equal thirds (:func:`stage_of`), each a training phase of the trainer
  (:meth:`ProvoGANGenerator.optim_phases`): Adam restarts and the constant-then-linear schedule
  runs anew in every stage, as in the authors' three runs; ``optim.update_order: d_then_g``.
  The trainer calls ``set_train_step`` before every
  step, which selects the stage of G and D, and the training items of stage ``s`` (cross-sections
  of orientation ``order[s]``, :class:`unicoal.predictors.provogan.ProvoDataset`) carry the output
  of stages ``1 .. s-1`` on the training volumes, computed once when the stage starts with the
  frozen earlier stages (eval mode). Only the current stage's networks get gradients, so the
  earlier ones stay as they were when their stage ended.
* orientations are the volume's voxel axes with the slice axis first: ``order = (0, 1, 2)``
  starts with the acquired slices; each cross-section is centre-cropped / padded to
  ``img_resolution`` (fill -1) as everywhere in the project;
* SR / CMSR: the source volume is first resampled onto the target grid along the slice axis
  (``interpolation``: cubic convolution, Keys a = -0.5, by default; the same pre-resampling as
  the 3D baselines, :func:`unicoal.data3d.preinterpolate`); CMS needs none;
* no perceptual term in any stage (one loss configuration serves the three stages; we did not
  check how the authors' stage-1 class weights its VGG term), no dropout at test time; the
  call convention of docs/training.md: ``G(x_in [B, 2, S, S], delta, c_out, z=None)`` with
  ``x_in = [source | previous stage]`` (the second channel is ignored by stage 1), ``D(x_in, y,
  delta, c_out) -> [B, 1, h, w]``.

Sizes: ``paper`` (``ngf = ndf = 24``) has 3 generators of 1,602,961 / 1,604,137 / 1,604,137
parameters (G 4,811,235) and 3 discriminators of 391,609 / 391,993 / 391,993 (D 1,175,595): exactly
what the authors' ``models/networks.py`` (``ResnetGenerator``, ``NLayerDiscriminator``, ``--norm
batch``, ngf = ndf = 24) builds for one source contrast (``input_nc`` 1 / 2 / 2); their
``sample_run.sh`` feeds two source contrasts (``input_nc`` 2 / 3 / 3: 4,814,763 / 1,176,747). The
paper states no count. ``tiny`` (64 x 64, ``ngf = ndf = 8``, 2 residual blocks) is for tests and
``-profile test``.

Example:
    >>> G, D = build_provogan(ProvoGANConfig.tiny())
    >>> G.set_train_step(0, 30); G(torch.zeros(2, 2, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unicoal.models.baselines.pgan import PganConfig, ResnetGenerator
from unicoal.nn.patchgan import NORMS, PatchDiscriminator

__all__ = ["ProvoGANConfig", "ProvoGANGenerator", "ProvoGANDiscriminator", "provogan_config", "build_provogan", "stage_of"]

_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")
_KERNELS = ("linear", "cubic", "lanczos")


def stage_of(step: int, total_steps: int, stages: int = 3) -> int:
    """Stage (0-based) trained at optimiser step ``step`` of ``total_steps``: equal shares."""
    return int(min(stages - 1, max(0, int(step)) * stages // max(1, int(total_steps))))


@dataclass(frozen=True)
class ProvoGANConfig:
    """Sizes of the three ProvoGAN stages (published values are the defaults).

    Attributes:
        img_resolution: cross-section size ``S`` (multiple of 4).
        num_inputs: source volumes (1).
        modalities: modalities the model reads or writes (task-specific: its source and target).
        pad_mode: copied from ``data.padding`` (unused: whole cross-sections are used).
        order: volume axis of each stage (0 = the slice axis; a permutation of 0, 1, 2).
        ngf / ndf / n_blocks / n_layers_d / norm / dropout: each stage's pGAN-style networks.
        interpolation: pre-resampling of the source onto the target grid (SR / CMSR).
    """

    img_resolution: int = 256
    num_inputs: int = 1
    modalities: tuple[str, ...] = ("T1", "T2")
    pad_mode: str = "replicate"
    order: tuple[int, ...] = (0, 1, 2)
    ngf: int = 24  # the authors' options/base_options.py default
    ndf: int = 24
    n_blocks: int = 9
    n_layers_d: int = 3
    norm: str = "batch"
    dropout: float = 0.5
    interpolation: str = "cubic"

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(str(m) for m in self.modalities))
        object.__setattr__(self, "order", tuple(int(a) for a in self.order))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities) or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be distinct names from {', '.join(_MODALITIES)}, got {list(self.modalities)}")
        if int(self.num_inputs) != 1:
            raise ValueError(f"ProvoGAN reads one source volume here: num_inputs must be 1, got {self.num_inputs}")
        if int(self.img_resolution) < 8 or self.img_resolution % 4:
            raise ValueError(f"img_resolution must be a multiple of 4 and >= 8, got {self.img_resolution}")
        if not self.order or len(set(self.order)) != len(self.order) or any(a not in (0, 1, 2) for a in self.order):
            raise ValueError(f"order must list distinct volume axes from 0, 1, 2 (0 = slice axis), got {list(self.order)}")
        if min(self.ngf, self.ndf, self.n_layers_d) < 1 or self.n_blocks < 0:
            raise ValueError("ngf, ndf, n_layers_d must be >= 1 and n_blocks >= 0")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.interpolation not in _KERNELS:
            raise ValueError(f"interpolation must be one of {', '.join(_KERNELS)}, got {self.interpolation!r}")

    @property
    def z_dim(self) -> int:
        return 0

    @property
    def stages(self) -> int:
        return len(self.order)

    def stage_config(self, stage: int) -> PganConfig:
        """The pGAN-style networks of ``stage``: 1 input channel (stage 0) or source + previous."""
        return PganConfig(img_resolution=self.img_resolution, num_inputs=1 if stage == 0 else 2, modalities=self.modalities,
                          ngf=self.ngf, ndf=self.ndf, n_blocks=self.n_blocks, n_layers_d=self.n_layers_d, norm=self.norm,
                          dropout=self.dropout, test_dropout=False)

    @classmethod
    def paper(cls, **kw) -> "ProvoGANConfig":
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "ProvoGANConfig":
        """64 x 64, ``ngf = ndf = 8``, 2 residual blocks per stage (CPU, seconds)."""
        return cls(**{"img_resolution": 64, "ngf": 8, "ndf": 8, "n_blocks": 2, **kw})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"], d["order"] = list(self.modalities), list(self.order)
        return d


def provogan_config(d: dict | None) -> ProvoGANConfig:
    """``model`` section -> :class:`ProvoGANConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    names = {f.name for f in dataclasses.fields(ProvoGANConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown ProvoGAN model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
    return ProvoGANConfig.paper(**d) if preset == "paper" else ProvoGANConfig.tiny(**d)


def build_provogan(cfg: ProvoGANConfig, discriminator: bool = True):
    """``(G, D)``: the stage containers (``D`` is ``None`` when not asked for)."""
    return ProvoGANGenerator(cfg), (ProvoGANDiscriminator(cfg) if discriminator else None)


class _Staged(nn.Module):
    """A ``stage`` buffer set by the trainer hook (saved with the checkpoints)."""

    has_unused_parameters = True  # only the current stage gets gradients (DDP)

    def __init__(self, cfg: ProvoGANConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))

    def set_train_step(self, step: int, total_steps: int) -> None:
        """Trainer hook (before every optimiser step): select the stage trained at ``step``."""
        self.stage.fill_(stage_of(step, total_steps, self.cfg.stages))


class ProvoGANGenerator(_Staged):
    """``G(x_in [B, 2, S, S] = [source | previous stage], delta, c_out, z=None) -> [B, 1, S, S]``
    for the current stage; :meth:`run_stage` runs any stage."""

    def __init__(self, cfg: ProvoGANConfig):
        super().__init__(cfg)
        self.stages = nn.ModuleList([ResnetGenerator(cfg.stage_config(s)) for s in range(cfg.stages)])

    def optim_phases(self, total_steps: int) -> list:
        """Trainer hook: one training phase per stage (:func:`stage_of`), each restarting Adam
        and its constant-then-linear schedule at the config's lr, as the authors' per-stage runs."""
        from unicoal.train.schedule import Phase

        starts = sorted({-(-s * int(total_steps) // self.cfg.stages) for s in range(self.cfg.stages)})
        return [Phase(start, name=f"stage {i + 1}") for i, start in enumerate(starts) if start < max(1, int(total_steps)) or start == 0]

    def run_stage(self, stage: int, x_in: torch.Tensor) -> torch.Tensor:
        s = self.cfg.img_resolution
        if x_in.ndim != 4 or x_in.shape[1] != 2 or x_in.shape[2:] != (s, s):
            raise ValueError(f"x_in must be [B, 2, {s}, {s}] (source, previous stage), got {list(x_in.shape)}")
        if stage == 0:
            return self.stages[0](x_in[:, :1])
        return x_in[:, 1:2] - 2.0 * self.stages[stage](x_in)  # the authors' residual stages

    def forward(self, x_in, delta=None, c_out=None, z=None):
        return self.run_stage(int(self.stage), x_in)


class ProvoGANDiscriminator(_Staged):
    """The current stage's PatchGAN on ``[source (| previous stage) | target]``."""

    def __init__(self, cfg: ProvoGANConfig):
        super().__init__(cfg)
        self.stages = nn.ModuleList([PatchDiscriminator((1 if s == 0 else 2) + 1, cfg.ndf, cfg.n_layers_d, cfg.norm) for s in range(cfg.stages)])

    def forward(self, x_in, y, delta=None, c_out=None):
        s = int(self.stage)
        return self.stages[s](x_in[:, :1] if s == 0 else x_in, y)

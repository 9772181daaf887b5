"""The method registry: name -> capabilities (paper Table V) and how to build / run the method.

Every method -- Uni-COAL, the learned baselines, the interpolation baselines -- is one
:class:`MethodSpec` in :data:`METHODS`. ``unicoal train`` builds trainable methods through
``build_models``; ``unicoal synthesize`` runs every method through the same target-grid code
path (:mod:`unicoal.infer`) with the predictor kind the spec names (:mod:`unicoal.predictors`;
this module imports no inference code).

Capabilities follow Table V: for each task (``cms``, ``sr``, ``cmsr``) a method is either
unsupported, *specific* (one model per input/output combination) or also *arbitrary in* /
*arbitrary out*. This module imports nothing heavy; builders import torch lazily.

Adding a baseline: write ``unicoal/models/baselines/<name>.py`` (one network per file, obeying
the generator / discriminator interface of docs/training.md), then add a ``MethodSpec`` here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from unicoal.errors import InputError

__all__ = ["TASKS", "MethodSpec", "METHODS", "get_method", "check_task", "task_of", "methods_table"]

TASKS: tuple[str, ...] = ("cms", "sr", "cmsr")
DIMS: tuple[str, ...] = ("1D", "2D", "2.5D", "3D")


@dataclass(frozen=True)
class MethodSpec:
    """One method of the benchmark.

    Attributes:
        name: registry key (CLI ``--method``).
        display: name as printed in the paper's tables (``Uni-COAL``, ``ResViT`` ...).
        tasks: tasks it can perform at all (Table V "Spec." rows).
        arbitrary_in / arbitrary_out: tasks for which one model takes any input modality /
            produces any output modality and thickness (Table V "Arb. In" / "Arb. Out").
        dims: ``1D`` (along the slice axis), ``2D``, ``2.5D`` or ``3D``.
        trainable: learned (needs ``unicoal train`` and a checkpoint) or not.
        max_inputs: input volumes it accepts at synthesis time.
        reference: the paper's citation of the method.
        model_config: ``dict -> model config`` (trainable methods; has ``img_resolution``,
            ``num_inputs``, ``modalities``, ``to_dict()``).
        build_models: ``(model config, discriminator=True) -> (G, D)`` (D is ``None`` when not
            asked for, or for non-adversarial methods).
        predictor: the predictor kind, a key of :data:`unicoal.predictors.PREDICTORS`
            (``slice``: slice-wise networks; ``interpolation``: kernel = method name; 3D and
            volume-level kinds live there too). The registry names it and imports no
            inference code.
        dataset: the training dataset kind, a key of :data:`unicoal.train.loop.DATASETS`
            (``slice``: :class:`unicoal.data.SliceDataset`; ``patch3d``: 3D patches,
            :class:`unicoal.data3d.PatchDataset3D`).
    """

    name: str
    display: str
    tasks: frozenset[str]
    arbitrary_in: frozenset[str] = frozenset()
    arbitrary_out: frozenset[str] = frozenset()
    dims: str = "2D"
    trainable: bool = True
    max_inputs: int = 1
    reference: str = ""
    model_config: Callable[[dict], Any] | None = field(default=None, repr=False, compare=False)
    build_models: Callable[[Any], tuple[Any, Any]] | None = field(default=None, repr=False, compare=False)
    predictor: str = "slice"
    dataset: str = "slice"

    def __post_init__(self):
        for attr in ("tasks", "arbitrary_in", "arbitrary_out"):
            val = frozenset(getattr(self, attr))
            bad = val - set(TASKS)
            if bad:
                raise ValueError(f"{self.name}: unknown task(s) {sorted(bad)} in {attr}")
            object.__setattr__(self, attr, val)
        if not (self.arbitrary_in | self.arbitrary_out) <= self.tasks:
            raise ValueError(f"{self.name}: arbitrary tasks must be a subset of tasks")
        if self.dims not in DIMS:
            raise ValueError(f"{self.name}: dims must be one of {DIMS}, got {self.dims!r}")
        if self.trainable and (self.model_config is None or self.build_models is None):
            raise ValueError(f"{self.name}: a trainable method needs model_config and build_models")
        if not isinstance(self.predictor, str) or not self.predictor:
            raise ValueError(f"{self.name}: predictor must name a predictor kind (unicoal.predictors.PREDICTORS), got {self.predictor!r}")

    def capability(self, task: str) -> str:
        """Table V cell: ``-`` (no), ``spec`` and ``+in`` / ``+out`` for arbitrary input / output."""
        if task not in self.tasks:
            return "-"
        return "spec" + ("+in" if task in self.arbitrary_in else "") + ("+out" if task in self.arbitrary_out else "")

    def row(self) -> dict:
        """Plain-data summary (for ``unicoal methods``)."""
        return {
            "name": self.name,
            "display": self.display,
            "dims": self.dims,
            "trainable": self.trainable,
            "max_inputs": self.max_inputs,
            **{t: self.capability(t) for t in TASKS},
            "reference": self.reference,
        }


# --- Uni-COAL ---------------------------------------------------------------------------------
def _unicoal_config(d: dict):
    from unicoal.models.config import UniCoalConfig

    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    base = UniCoalConfig.paper() if preset == "paper" else UniCoalConfig.tiny()
    if not d:
        return base
    merged = {**base.to_dict(), **d}
    return UniCoalConfig.from_dict(merged)


def _unicoal_build(cfg, discriminator: bool = True):
    from unicoal.models.generator import Generator

    if not discriminator:
        return Generator(cfg), None
    from unicoal.models.discriminator import Discriminator

    return Generator(cfg), Discriminator(cfg)


# --- ArSSR and SC-GAN (unicoal/models/baselines/{arssr,scgan}.py) -----------------------------
def _arssr_config(d: dict):
    from unicoal.models.baselines.arssr import arssr_config

    return arssr_config(d)


def _arssr_build(cfg, discriminator: bool = True):
    from unicoal.models.baselines.arssr import build_arssr

    return build_arssr(cfg, discriminator)


def _scgan_config(d: dict):
    from unicoal.models.baselines.scgan import scgan_config

    return scgan_config(d)


def _scgan_build(cfg, discriminator: bool = True):
    from unicoal.models.baselines.scgan import build_scgan

    return build_scgan(cfg, discriminator)


# --- ResViT (unicoal/models/baselines/resvit.py) ---------------------------------------------
def _resvit_config(d: dict):
    from unicoal.models.baselines.resvit import resvit_config

    return resvit_config(d)


def _resvit_build(cfg, discriminator: bool = True):
    from unicoal.models.baselines.resvit import build_resvit

    return build_resvit(cfg, discriminator)


# --- 3D methods on the target grid (unicoal/models/baselines/{dcsrn,deepresolve,synthsr}.py) ---
def _baseline3d(module: str, config: str, build: str):
    """Lazy ``(model_config, build_models)`` of a 3D baseline module."""

    def model_config(d: dict):
        import importlib

        return getattr(importlib.import_module(f"unicoal.models.baselines.{module}"), config)(d)

    def build_models(cfg, discriminator: bool = True):
        import importlib

        return getattr(importlib.import_module(f"unicoal.models.baselines.{module}"), build)(cfg, discriminator)

    return dict(model_config=model_config, build_models=build_models, dims="3D", predictor="volume", dataset="patch3d")


# --- pix2pix, pGAN, AutoGAN-Synthesizer (unicoal/models/baselines/{pix2pix,pgan,autogan}.py) --
def _slice_baseline(module: str, config_fn: str, build_fn: str) -> dict:
    """Lazy ``(model_config, build_models)`` of a slice-wise baseline module."""

    def model_config(d: dict):
        import importlib

        return getattr(importlib.import_module(f"unicoal.models.baselines.{module}"), config_fn)(d)

    def build_models(cfg, discriminator: bool = True):
        import importlib

        return getattr(importlib.import_module(f"unicoal.models.baselines.{module}"), build_fn)(cfg, discriminator)

    return dict(model_config=model_config, build_models=build_models, predictor="slice")


# --- ProvoGAN (unicoal/models/baselines/provogan.py, unicoal/predictors/provogan.py) -----------
def _provogan_config(d: dict):
    from unicoal.models.baselines.provogan import provogan_config

    return provogan_config(d)


def _provogan_build(cfg, discriminator: bool = True):
    from unicoal.models.baselines.provogan import build_provogan

    return build_provogan(cfg, discriminator)


# --- interpolation ----------------------------------------------------------------------------
_INTERP = dict(tasks={"sr"}, arbitrary_in={"sr"}, arbitrary_out={"sr"}, dims="1D", trainable=False, predictor="interpolation")

METHODS: dict[str, MethodSpec] = {
    "unicoal": MethodSpec(
        "unicoal", "Uni-COAL", tasks=set(TASKS), arbitrary_in=set(TASKS), arbitrary_out=set(TASKS), dims="2.5D",
        reference="this paper", model_config=_unicoal_config, build_models=_unicoal_build, predictor="slice",
    ),
    "linear": MethodSpec("linear", "Linear", reference="linear interpolation along the slice axis", **_INTERP),
    "cubic": MethodSpec("cubic", "Cubic", reference="cubic convolution (Keys, a = -0.5) along the slice axis", **_INTERP),
    "lanczos": MethodSpec("lanczos", "Lanczos", reference="Lanczos-3 windowed sinc along the slice axis", **_INTERP),
    # the identity baseline (a reference row, not in the paper): the source contrast itself,
    # resampled onto the target grid with linear interpolation along the slice axis
    "copy": MethodSpec("copy", "Copy", tasks={"cms", "cmsr"}, arbitrary_in={"cms", "cmsr"}, arbitrary_out={"cms", "cmsr"},
                       dims="1D", trainable=False, predictor="copy",
                       reference="identity baseline: the source contrast, linearly resampled onto the target grid"),
    # Table V: CMS, SR and CMSR, one model per task (no arbitrary input or output); volume-level
    "provogan": MethodSpec(
        "provogan", "ProvoGAN", tasks=set(TASKS), dims="3D",
        reference="Yurt et al., Med. Image Anal. 2022 (progressively volumetrized sequential 2D cGANs)",
        model_config=_provogan_config, build_models=_provogan_build, predictor="provogan", dataset="provogan",
    ),
    # Table V: CMS only, one unified model for any input and any output modality (conditioned on c_out)
    "resvit": MethodSpec(
        "resvit", "ResViT", tasks={"cms"}, arbitrary_in={"cms"}, arbitrary_out={"cms"}, dims="2D",
        reference="Dalmaz et al., IEEE TMI 2022 (residual vision transformers, ART blocks)",
        model_config=_resvit_config, build_models=_resvit_build, predictor="slice",
    ),
    # Table V: SR only, one model for any input and any output thickness (implicit voxel function)
    "arssr": MethodSpec(
        "arssr", "ArSSR", tasks={"sr"}, arbitrary_in={"sr"}, arbitrary_out={"sr"}, dims="3D",
        reference="Wu et al., IEEE JBHI 2023 (arbitrary-scale SR via implicit neural representation)",
        model_config=_arssr_config, build_models=_arssr_build, predictor="implicit", dataset="implicit",
    ),
    # Table V: CMS, SR and CMSR, each with a task-specific model (one per source, target, thickness)
    "scgan": MethodSpec(
        "scgan", "SC-GAN", tasks={"cms", "sr", "cmsr"}, dims="3D",
        reference="Lan et al., MRM 2021 (3D self-attention conditional GAN with spectral normalisation)",
        model_config=_scgan_config, build_models=_scgan_build, predictor="volume", dataset="patch3d",
    ),
    # not in Table V (Table II only): SR, one model per modality and thickness ratio
    "dcsrn": MethodSpec(
        "dcsrn", "DCSRN", tasks={"sr"}, reference="Chen et al., IEEE ISBI 2018 (3D densely connected SR network)",
        **_baseline3d("dcsrn", "dcsrn_config", "build_dcsrn"),
    ),
    "deepresolve": MethodSpec(
        "deepresolve", "DeepResolve", tasks={"sr"}, reference="Chaudhari et al., MRM 2018 (3D residual CNN, 20 layers x 64 filters)",
        **_baseline3d("deepresolve", "deepresolve_config", "build_deepresolve"),
    ),
    # Table V: CMS, SR and CMSR; any input modality and resolution, one model per output modality
    "synthsr": MethodSpec(
        "synthsr", "SynthSR", tasks=set(TASKS), arbitrary_in=set(TASKS),
        reference="Iglesias et al., NeuroImage 2021 (3D U-Net regression, supervised)",
        **_baseline3d("synthsr", "synthsr_config", "build_synthsr"),
    ),
    # not in Table V (Table I only): CMS, one model per source/target pair ("specific")
    "pix2pix": MethodSpec(
        "pix2pix", "pix2pix", tasks={"cms"}, dims="2D",
        reference="Isola et al., CVPR 2017 (U-Net-256 + 70x70 PatchGAN, cGAN + 100 L1)",
        **_slice_baseline("pix2pix", "pix2pix_config", "build_pix2pix"),
    ),
    "pgan": MethodSpec(
        "pgan", "pGAN", tasks={"cms"}, dims="2.5D",
        reference="Dar et al., IEEE TMI 2019 (ResNet generator on 3 neighbouring slices, LSGAN + 100 L1 + 100 perceptual)",
        **_slice_baseline("pgan", "pgan_config", "build_pgan"),
    ),
    "autogan": MethodSpec(
        "autogan", "AutoGAN", tasks={"cms"}, dims="2D",
        reference="Hu et al., MICCAI 2022 (AutoGAN-Synthesizer: searched multi-resolution generator, trained fixed)",
        **_slice_baseline("autogan", "autogan_config", "build_autogan"),
    ),
}


def get_method(name: str) -> MethodSpec:
    spec = METHODS.get(name)
    if spec is None:
        raise InputError(None, f"unknown method {name!r}", f"use one of {', '.join(sorted(METHODS))} (see unicoal methods)")
    return spec


def task_of(source: str | None, target: str, same_thickness: bool) -> str:
    """CMS when the thickness is unchanged, SR when the modality is unchanged, CMSR otherwise
    (paper Sec. III-A). Same modality and thickness counts as SR at 1x. An unknown source
    modality (``None``) counts as a modality change."""
    if source is not None and source == target:
        return "sr"
    return "cms" if same_thickness else "cmsr"


def check_task(spec: MethodSpec, task: str) -> None:
    """One-line error when ``spec`` cannot perform ``task``."""
    if task not in spec.tasks:
        can = ", ".join(t.upper() for t in TASKS if t in spec.tasks) or "nothing"
        raise InputError(None, f"method {spec.name} ({spec.display}) cannot perform {task.upper()}; it supports {can}", "choose another method, or a target modality/thickness it supports")


def methods_table(fmt: str = "table") -> str:
    """The registry as an aligned text table, JSON, or CSV."""
    rows = [m.row() for m in METHODS.values()]
    if fmt == "json":
        import json

        return json.dumps(rows, indent=2)
    cols = ["name", "display", "dims", "trainable", "max_inputs", *TASKS, "reference"]
    if fmt == "csv":
        return "\n".join([",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)

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

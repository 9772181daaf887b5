"""What the 3D baselines on the target grid share (DCSRN, DeepResolve, SynthSR): the config fields
of the 3D machinery and the ``model`` section parser.

These methods see the source volume pre-interpolated onto the target grid
(:mod:`unicoal.data3d` for training patches, :mod:`unicoal.predictors.volume` at synthesis) and
map it to the target volume on the same grid. Their generators follow the call convention
``G(x [B, 1, D, H, W], delta [B, D], c_out [B], z=None) -> [B, 1, D, H, W]`` (delta, c_out and
z ignored: one model per output modality) and expose ``receptive_radius`` (voxels; the halo of
exact sliding-window inference) and ``size_multiple`` (inputs must be multiples of it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Volume3dConfig", "parse_model_section"]

_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")
_INTERPOLATIONS = ("linear", "cubic", "lanczos")


def _triple(v, name: str, allow_none: bool = False):
    if v is None and allow_none:
        return None
    t = tuple(int(x) for x in ([v] * 3 if isinstance(v, (int, float)) else v))
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"{name} must be 3 positive ints (slices, rows, cols), got {v!r}")
    return t


@dataclass(frozen=True)
class Volume3dConfig:
    """Fields of every 3D target-grid method.

    Attributes:
        modalities: class order of the modalities the model reads or writes.
        num_inputs: 1 (one source volume).
        pad_mode: set from ``data.padding`` by the trainer (unused: the 3D methods pad by
            :func:`unicoal.data3d.pad_to`, one rule for training and synthesis).
        patch_size: training patch ``(D, H, W)``, slice axis first.
        inference_window: sliding window at synthesis ``(D, H, W)``; ``None``: whole volume at once.
        interpolation: pre-resampling of the source onto the target slices (``linear``, ``cubic``
            = Keys a = -0.5, ``lanczos``; :func:`unicoal.data3d.preinterpolate`).
    """

    modalities: tuple[str, ...] = ("T1", "T2", "PD")
    num_inputs: int = 1
    pad_mode: str = "replicate"
    patch_size: tuple[int, int, int] = (32, 32, 32)
    inference_window: tuple[int, int, int] | None = (96, 96, 96)
    interpolation: str = "cubic"

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(str(m) for m in self.modalities))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities) or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be distinct names from {', '.join(_MODALITIES)}, got {list(self.modalities)}")
        if int(self.num_inputs) != 1:
            raise ValueError(f"3D methods read one volume: num_inputs must be 1, got {self.num_inputs}")
        if self.pad_mode not in ("replicate", "constant"):
            raise ValueError(f"pad_mode must be 'replicate' or 'constant', got {self.pad_mode!r}")
        object.__setattr__(self, "patch_size", _triple(self.patch_size, "patch_size"))
        object.__setattr__(self, "inference_window", _triple(self.inference_window, "inference_window", allow_none=True))
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {self.interpolation!r}")

    @property
    def img_resolution(self) -> int:
        """In-plane patch side (``data.resolution`` of the trainer)."""
        return int(self.patch_size[-1])

    @property
    def z_dim(self) -> int:
        return 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"] = list(d["modalities"])
        d["patch_size"] = list(d["patch_size"])
        d["inference_window"] = None if d["inference_window"] is None else list(d["inference_window"])
        return d


def parse_model_section(cls, d: dict | None, presets: dict[str, dict]):
    """``model`` section -> ``cls`` instance: ``preset`` (a key of ``presets``, default ``paper``)
    plus field overrides; unknown keys are errors."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in presets:
        raise ValueError(f"model.preset must be one of {', '.join(presets)}, got {preset!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
    return cls(**{**presets[preset], **d})

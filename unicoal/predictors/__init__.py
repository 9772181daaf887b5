"""Predictors: how each kind of method turns a source volume into target slices.

``unicoal synthesize`` (:mod:`unicoal.infer`) handles grids, files and tasks for every method
and asks a *predictor* for the pixels. A :class:`unicoal.methods.MethodSpec` names its
predictor kind (``spec.predictor``, a key of :data:`PREDICTORS`); the registry itself imports no
inference code, and this package is the one place where predictors live:

* ``slice``: slice-wise 2D / 2.5D networks with the Uni-COAL call convention
  (:class:`unicoal.predictors.slices.SlicePredictor`);
* ``interpolation``: linear / cubic / Lanczos along the slice axis
  (:class:`unicoal.models.interpolation.InterpolationPredictor`, kernel = method name);
* ``copy``: the identity baseline, the source contrast resampled linearly onto the target grid
  (:class:`unicoal.models.copy_source.CopySourcePredictor`);
* ``volume``: 3D networks on the target grid (DCSRN, DeepResolve, SynthSR): pre-interpolation
  along the slice axis, then overlapping sliding windows with Gaussian blending
  (:class:`unicoal.predictors.volume.VolumePredictor`).

Every predictor obeys :class:`Predictor`. Factories are called as
``PREDICTORS[kind](spec, checkpoint_dict_or_None, device)`` and import their modules lazily, so
importing this package stays cheap.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np

__all__ = ["Predictor", "PREDICTORS", "make_predictor"]


class Predictor(Protocol):
    """What ``synthesize`` needs from a method.

    ``predict(volume, n, delta, target, *, seed, batch_size, progress)`` gets the source volume
    ``[N, A, B]`` (slice axis first, intensities in [0, 1]) and, for every target slice ``k``,
    its LR index ``n[k]`` and offset ``delta[k]`` (``u = n + delta`` in source slice units, from
    :func:`unicoal.geometry.slice_positions`); it returns ``[K, A, B]`` in [0, 1].
    ``modalities`` lists the target modalities it can produce (``None``: any, e.g. SR-only
    interpolation); ``stochastic`` says whether ``seed`` changes the output.
    """

    name: str
    stochastic: bool
    modalities: Sequence[str] | None

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray: ...


def _slice(spec, ckpt: dict | None, device: str):
    from unicoal.predictors.slices import SlicePredictor

    return SlicePredictor.from_checkpoint(spec, ckpt, device)


def _interpolation(spec, ckpt: dict | None, device: str):
    from unicoal.models.interpolation import InterpolationPredictor

    return InterpolationPredictor(spec.name)


def _copy(spec, ckpt: dict | None, device: str):
    from unicoal.models.copy_source import CopySourcePredictor

    return CopySourcePredictor(spec.name)


def _implicit(spec, ckpt: dict | None, device: str):
    from unicoal.predictors.implicit import ImplicitPredictor

    return ImplicitPredictor.from_checkpoint(spec, ckpt, device)


def _volume(spec, ckpt: dict | None, device: str):
    from unicoal.predictors.volume import VolumePredictor

    return VolumePredictor.from_checkpoint(spec, ckpt, device)


def _provogan(spec, ckpt: dict | None, device: str):
    from unicoal.predictors.provogan import ProvoPredictor

    return ProvoPredictor.from_checkpoint(spec, ckpt, device)


#: predictor kind -> ``(spec, checkpoint | None, device) -> Predictor``
PREDICTORS: dict[str, Callable[[Any, dict | None, str], Predictor]] = {
    "slice": _slice,
    "interpolation": _interpolation,
    "volume": _volume,
    "copy": _copy,
    "provogan": _provogan,  # the three orientation stages over the whole volume (ProvoGAN)
    "implicit": _implicit,  # encoder + coordinate-queried decoder over slice windows (ArSSR)
}


def make_predictor(spec, ckpt: dict | None, device: str = "cpu") -> Predictor:
    """The predictor of ``spec`` (its kind looked up in :data:`PREDICTORS`)."""
    try:
        factory = PREDICTORS[spec.predictor]
    except KeyError:
        raise ValueError(f"method {spec.name}: unknown predictor kind {spec.predictor!r}; expected one of {', '.join(PREDICTORS)}") from None
    return factory(spec, ckpt, device)

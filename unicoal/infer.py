"""Volume synthesis (paper Sec. III-B): traverse every target position, predict, write NIfTI.

One code path for every method (``unicoal synthesize``):

1. the source grid is read from the input's affine (:class:`unicoal.geometry.Grid`);
2. the target grid is ``geometry.target_grid(source, thickness)`` or, with ``like``, exactly
   the reference's grid (checked to share the source's slice planes);
3. ``(n, delta)`` of every target slice comes from ``geometry.slice_positions``;
4. the method's predictor (:mod:`unicoal.predictors`, named by its registry entry) turns the source volume and the
   positions into target slices (networks: the ``m`` source slices ``n-1 .. n+2`` per target
   slice, batched through the EMA generator; interpolation: resampling at ``u = n + delta``);
5. the volume is written on the target grid (so it overlays the ground truth), atomically,
   with a JSON sidecar; ``samples > 1`` also writes the voxel-wise mean and standard deviation
   over latent codes (an uncertainty map).

CMS when the thickness is unchanged, SR when the modality is unchanged, CMSR otherwise;
non-integer factors (e.g. 5.33x) need nothing special.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.geometry import Grid, slice_positions, target_grid

__all__ = ["load_predictor", "build_target_grid", "synthesize", "derived_path"]


def load_predictor(method: str | None, checkpoint: str | os.PathLike | None, device: str = "cpu"):
    """The predictor of ``method`` (from the checkpoint when given). Returns ``(spec, predictor, ckpt)``."""
    from unicoal.methods import get_method

    ckpt = None
    if checkpoint is not None:
        from unicoal.train.checkpoint import MODEL_FORMAT, inference_export, load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        if ckpt["format"] != MODEL_FORMAT:
            ckpt = inference_export(ckpt)  # a training last.pt: use its EMA generator
        if method is not None and method != ckpt["method"]:
            raise InputError(checkpoint, f"checkpoint is a {ckpt['method']!r} model, not {method!r}", "drop --method or pass the matching checkpoint")
        method = ckpt["method"]
    if method is None:
        raise InputError(None, "no --checkpoint and no --method given", "pass --checkpoint RUN_DIR/model.pt, or --method linear|cubic|lanczos")
    spec = get_method(method)
    if spec.trainable and ckpt is None:
        raise InputError(None, f"method {method} is learned and needs --checkpoint", "pass the model.pt written by unicoal train")
    try:
        from unicoal.predictors import make_predictor

        pred = make_predictor(spec, ckpt, device)
    except (KeyError, RuntimeError) as err:
        raise InputError(checkpoint, f"checkpoint does not match the {method} network ({type(err).__name__}: {str(err).splitlines()[0][:160]})", "pass a model.pt written by this version of unicoal train") from None
    return spec, pred, ckpt


def _check_trained_pair(spec, task: str, source: str | None, target: str, ckpt: dict | None, checkpoint) -> None:
    """A *specific* model (Table V: not arbitrary in / out for ``task``) only serves the source and
    target modalities it was trained on (``data.input_modalities`` / ``output_modalities`` of its
    training config); anything else is one clear error instead of a silently wrong volume."""
    data = ((ckpt or {}).get("train_config") or {}).get("data") or {}
    ins, outs = list(data.get("input_modalities") or []), list(data.get("output_modalities") or [])
    bad_in = task not in spec.arbitrary_in and source is not None and ins and source not in ins
    bad_out = task not in spec.arbitrary_out and outs and target not in outs
    if bad_in or bad_out:
        raise InputError(checkpoint, f"this {spec.display} model was trained for {'/'.join(ins)} -> {'/'.join(outs)}, not {source or '?'} -> {target} "
                         f"({spec.display} trains one model per source/target pair)", "use the checkpoint trained for this pair, or train one")


def build_target_grid(source: Grid, thickness: float | None, like: Grid | None = None) -> Grid:
    """``target_grid(source, thickness)``, or ``like`` after checking it is compatible."""
    if like is None:
        if thickness is None:
            raise ValueError("give a target thickness or a reference grid")
        return target_grid(source, float(thickness))
    like = like.with_slice_axis(source.slice_axis)
    slice_positions(source, like)  # raises ValueError when incompatible
    if thickness is not None and abs(like.thickness - thickness) > 1e-3 * max(1.0, thickness):
        raise ValueError(f"--thickness {thickness} mm differs from the reference's {like.thickness:.4g} mm")
    return like


def derived_path(out: str | os.PathLike, suffix: str) -> Path:
    """``OUT.nii.gz`` -> ``OUT_<suffix>.nii.gz`` (same folder and extension)."""
    from unicoal.io import nifti_stem

    p = Path(out)
    ext = p.name[len(nifti_stem(p)):] or ".nii.gz"
    return p.with_name(f"{nifti_stem(p)}_{suffix}{ext}")


def _check_thickness(thickness: float | None) -> None:
    if thickness is None:
        return
    if not (isinstance(thickness, (int, float)) and math.isfinite(thickness) and thickness > 0):
        raise InputError(None, f"--thickness must be > 0 mm, got {thickness}", "pass the target slice thickness in mm, e.g. 1.25")


def synthesize(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    to: str,
    thickness: float | None = None,
    like: str | os.PathLike | None = None,
    source_modalities: Sequence[str] | None = None,
    method: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    samples: int = 1,
    batch_size: int = 16,
    device: str = "cpu",
    seed: int = 0,
    axis: int | None = None,
    progress: bool = True,
    loaded: tuple | None = None,
) -> dict:
    """Synthesize the target volume; returns the sidecar metadata (see module doc).

    ``loaded``: the ``(spec, predictor, ckpt)`` of :func:`load_predictor` for these ``method`` /
    ``checkpoint`` / ``device``, so that a batch (``unicoal synthesize --jobs``) loads the model once."""
    from unicoal.cohort.samplesheet import MODALITIES, canonical_modality
    from unicoal.io import check_writable, load_volume, save_volume, sidecar_path, software_versions, write_json
    from unicoal.methods import check_task, task_of

    t_start = time.perf_counter()
    _check_thickness(thickness)
    if thickness is None and like is None:
        raise InputError(None, "no target thickness", "pass --thickness MM or --like REFERENCE.nii.gz")
    target = canonical_modality(to)
    if target is None:
        raise InputError(None, f"unknown modality {to!r}", f"use one of {', '.join(MODALITIES)}")
    if not inputs:
        raise InputError(None, "no --input given", "pass the source volume with --input IN.nii.gz")
    sources = [None] * len(inputs)
    if source_modalities:
        if len(source_modalities) not in (1, len(inputs)):
            raise InputError(None, f"{len(source_modalities)} --from values for {len(inputs)} inputs", "give one --from per --input")
        sources = []
        for name in list(source_modalities) * (len(inputs) if len(source_modalities) == 1 else 1):
            canon = canonical_modality(name)
            if canon is None:
                raise InputError(None, f"unknown modality {name!r}", f"use one of {', '.join(MODALITIES)}")
            sources.append(canon)
    if samples < 1:
        raise InputError(None, f"--samples must be >= 1, got {samples}", "pass a positive number of samples")
    if batch_size < 1:
        raise InputError(None, f"--batch-size must be >= 1, got {batch_size}", "pass a positive batch size")
    check_writable(out)

    spec, pred, ckpt = loaded if loaded is not None else load_predictor(method, checkpoint, device)
    if len(inputs) > spec.max_inputs:
        raise InputError(inputs[spec.max_inputs], f"method {spec.name} takes {spec.max_inputs} input volume(s), got {len(inputs)}", "pass fewer --input volumes")
    if pred.modalities is not None and target not in pred.modalities:
        raise InputError(checkpoint, f"unknown target modality {target!r} for this model (it knows {', '.join(pred.modalities)})", f"use --to {' or --to '.join(pred.modalities)}")
    data, img = load_volume(inputs[0])
    try:
        src = Grid.from_image(img, axis)
    except ValueError as err:
        raise InputError(inputs[0], str(err), "check the header or pass --axis") from None
    for extra in inputs[1:]:
        _, other = load_volume(extra)
        if not Grid.from_image(other, src.slice_axis).same_as(src):
            raise InputError(extra, "grid differs from the first --input", "register all inputs to one grid")
    like_grid = None
    if like is not None:
        _, like_img = load_volume(like, allow_empty=True)
        like_grid = Grid.from_image(like_img, src.slice_axis)
    try:
        tgt = build_target_grid(src, thickness, like_grid)
        n, delta = slice_positions(src, tgt)
    except ValueError as err:
        where = like if like is not None else inputs[0]
        fix = "resample the reference to the input's in-plane grid" if like is not None else "choose a thickness that fits the volume"
        raise InputError(where, str(err), fix) from None
    same_thickness = abs(tgt.thickness - src.thickness) <= 1e-4 * src.thickness and bool(np.allclose(n + delta, np.arange(tgt.num_slices), atol=1e-4))
    source = sources[0]
    if source is None and not spec.tasks - {"sr"}:
        source = target  # an SR-only method: the input is the target modality
    task = task_of(source, target, same_thickness)
    check_task(spec, task)
    _check_trained_pair(spec, task, source, target, ckpt, checkpoint)
    lo, hi = float(data.min()), float(data.max())
    if spec.trainable and (lo < -1e-3 or hi > 1.0 + 1e-3):
        raise InputError(inputs[0], f"intensities span [{lo:.4g}, {hi:.4g}], expected [0, 1]", "normalise the input first (unicoal normalize)")
    vol = np.ascontiguousarray(np.moveaxis(data, src.slice_axis, 0))
    if spec.trainable:
        vol = np.clip(vol, 0.0, 1.0)

    outs = []
    for s in range(samples):
        pred_s = pred.predict(vol, n, delta, target, seed=seed + s, batch_size=batch_size, progress=progress)
        if not spec.trainable:
            pred_s = np.clip(pred_s, lo, hi)
        outs.append(np.moveaxis(pred_s, 0, tgt.slice_axis))
    assert outs[0].shape == tgt.shape, (outs[0].shape, tgt.shape)
    meta = {
        "step": "synthesize",
        "method": spec.name,
        "method_display": spec.display,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "inputs": [str(p) for p in inputs],
        "source_modality": source,
        "target_modality": target,
        "task": task,
        "source_thickness_mm": src.thickness,
        "target_thickness_mm": tgt.thickness,
        "scale": src.thickness / tgt.thickness,
        "like": None if like is None else str(like),
        "source_grid": src.to_json(),
        "target_grid": tgt.to_json(),
        "samples": samples,
        "seed": seed,
        "device": str(device),
        "seconds": None,
        "versions": software_versions("torch", "nibabel", "numpy"),
    }
    written = [Path(out)]
    save_volume(out, outs[0], tgt.matrix)
    if samples > 1:
        stack = np.stack(outs)
        mean_p, std_p = derived_path(out, "mean"), derived_path(out, "std")
        save_volume(mean_p, stack.mean(axis=0), tgt.matrix)
        save_volume(std_p, stack.std(axis=0), tgt.matrix)
        written += [mean_p, std_p]
        meta["mean"], meta["std"] = str(mean_p), str(std_p)
    meta["seconds"] = round(time.perf_counter() - t_start, 3)
    meta["outputs"] = [str(p) for p in written]
    write_json(sidecar_path(out), meta)
    return meta

"""Checkpoints: training state (``checkpoints/last.pt``) and the inference export (``model.pt``).

Both are written atomically (temporary file + rename) and hold only tensors, plain dicts, lists,
numbers and strings, so they load with ``torch.load(path, weights_only=True)`` -- no pickled
code is ever executed. RNG states of Python, NumPy and torch (CPU and CUDA) are stored as
tensors / lists, so ``--resume`` continues bit-for-bit on the same device.

Training checkpoint keys: ``format``, ``step``, ``images_seen``, ``epoch``, ``G``, ``D``,
``G_ema``, ``opt_G``, ``opt_D``, ``sched_G``, ``sched_D``, ``rng``, ``config`` (the resolved
training config), ``model_config``.

Inference export keys: ``format``, ``method``, ``model_config``, ``modalities``, ``num_inputs``,
``resolution``, ``padding``, ``profile``, ``state_dict`` (the EMA generator), ``step``,
``images_seen``, ``train_config``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from unicoal.errors import InputError
from unicoal.io import atomic_path

__all__ = [
    "TRAIN_FORMAT",
    "MODEL_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "inference_export",
]

#: /2: Uni-COAL's skip connections enter the last synthesis map of each size and its encoder input
#: has a margin (issue #15); a /1 generator's weights would load into the wrong layers unnoticed.
#: /3: the networks follow their authors (issue #20): Uni-COAL's global code e from the whole
#: encoder map and delta bias 0, SC-GAN and SynthSR with batch norm, ProvoGAN at 24 filters,
#: AutoGAN with its k-space channel; a /2 model would load unnoticed into other arithmetic
#: (Uni-COAL) or fail on mismatched keys (the baselines)
TRAIN_FORMAT = "unicoal-train/3"
MODEL_FORMAT = "unicoal-model/3"
#: formats of earlier versions, refused with the reason
_BEFORE_15 = "written before the generator's skip connections moved to the last map of each size (issue #15)"
_BEFORE_20 = "written before the networks followed their authors' recipes (issue #20: Uni-COAL's global code, SC-GAN/SynthSR batch norm, ProvoGAN width, AutoGAN input)"
OLD_FORMATS: dict[str, str] = {"unicoal-train/1": _BEFORE_15, "unicoal-model/1": _BEFORE_15,
                               "unicoal-train/2": _BEFORE_20, "unicoal-model/2": _BEFORE_20}


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as weights-only-loadable data."""
    import torch

    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [int(py_version), list(py_state), py_gauss],
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    import torch

    version, py_state, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in py_state), gauss))
    npd = state["numpy"]
    np.random.set_state(("MT19937", npd["key"].numpy().astype(np.uint32), npd["pos"], npd["has_gauss"], npd["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save`` ``payload`` atomically (the file is complete or absent)."""
    import torch

    dest = Path(path)
    with atomic_path(dest) as tmp:
        torch.save(payload, tmp)
    return dest


def load_checkpoint(path: str | os.PathLike, *, expect: str | None = None, map_location: str = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; one-line :class:`InputError` on any problem.

    ``expect``: ``"train"`` (a ``last.pt``), ``"model"`` (a ``model.pt``) or ``None`` (either).
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise InputError(p, "checkpoint not found", "give the model.pt written by unicoal train (RUN_DIR/model.pt)")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a checkpoint file", "give RUN_DIR/model.pt")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt zip, pickle with code, truncated file ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(p, f"unreadable checkpoint ({type(err).__name__}: {first[:160]})", "pass a model.pt or last.pt written by unicoal train (loaded with weights_only=True)") from None
    if isinstance(obj, dict) and obj.get("format") in OLD_FORMATS:
        raise InputError(p, f"checkpoint format {obj['format']} is {OLD_FORMATS[obj['format']]}; this version reads "
                            f"{TRAIN_FORMAT} / {MODEL_FORMAT}", "train the model again with this version (its weights do not fit)")
    if not isinstance(obj, dict) or obj.get("format") not in (TRAIN_FORMAT, MODEL_FORMAT):
        raise InputError(p, "not a unicoal checkpoint (no 'format' key)", "pass a model.pt or last.pt written by unicoal train")
    kind = "train" if obj["format"] == TRAIN_FORMAT else "model"
    if expect is not None and kind != expect:
        want = "a training checkpoint (checkpoints/last.pt)" if expect == "train" else "an inference export (model.pt)"
        raise InputError(p, f"is a {kind} checkpoint, expected {want}", "check the path")
    return obj


def inference_export(train_ckpt: dict) -> dict:
    """The ``model.pt`` payload for a training checkpoint (EMA generator + what inference needs)."""
    cfg = train_ckpt["config"]
    data = cfg["data"]
    return {
        "format": MODEL_FORMAT,
        "method": cfg["method"],
        "model_config": train_ckpt["model_config"],
        "modalities": list(data["modalities"]),
        "num_inputs": int(data["num_inputs"]),
        "resolution": int(data["resolution"]),
        "padding": data["padding"],
        "profile": data["profile"],
        "state_dict": train_ckpt["G_ema"],
        "step": int(train_ckpt["step"]),
        "images_seen": int(train_ckpt["images_seen"]),
        "train_config": cfg,
    }

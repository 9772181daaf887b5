"""nnU-Net v2 plumbing: its three folders under one root, its process pools, threads and devices.

nnU-Net's three folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) are always
sub-folders of ``NNUNET_ROOT``, set in ``os.environ`` by :func:`nnunet_environment` before nnU-Net
is imported and restored afterwards (never the user's home). With ``processes <= 1`` nnU-Net's
``spawn`` process pools (fingerprint, preprocessing, integrity check, unpacking) are replaced by
one worker thread (:func:`inline_pools`): a spawned worker re-imports torch and nnU-Net, which
costs more than the work on small cohorts and needs a ``__main__`` guard in the caller.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.pool
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from unicoal.errors import InputError

__all__ = [
    "FILE_ENDING",
    "MODEL_RECORD",
    "NnunetRoot",
    "nnunet_environment",
    "inline_pools",
    "quiet_stdout",
    "torch_threads",
    "torch_device",
    "dataset_folder_name",
    "find_dataset",
]

#: image file ending of every exported and predicted volume
FILE_ENDING = ".nii.gz"
#: ``nnUNet_results/<dataset>/unicoal_model.json``: which model folder, fold and plans predict uses
MODEL_RECORD = "unicoal_model.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_POOLED_MODULES = (
    "nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
    "nnunetv2.preprocessing.preprocessors.default_preprocessor",
    "nnunetv2.experiment_planning.verify_dataset_integrity",
    "nnunetv2.training.dataloading.utils",
)


@dataclass(frozen=True)
class NnunetRoot:
    """The three nnU-Net folders under one root (the run's output directory)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    def env(self) -> dict[str, str]:
        return {"nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed), "nnUNet_results": str(self.results)}


@contextlib.contextmanager
def nnunet_environment(root: str | os.PathLike | NnunetRoot, *, processes: int = 1, da_processes: int | None = None) -> Iterator[NnunetRoot]:
    """Point nnU-Net at ``root``'s sub-folders (creating them) for the duration of the block.

    Sets ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` (under ``root``),
    ``nnUNet_def_n_proc`` (= ``processes``), ``nnUNet_n_proc_DA`` (data-augmentation workers,
    default ``processes`` if > 1 else 0 = in-process), ``nnUNet_wandb_enabled=0`` and, unless the
    user set it, ``nnUNet_compile=false``. Previous values are restored on exit. nnU-Net reads the
    folders lazily, but ``nnunetv2.configuration`` reads ``nnUNet_def_n_proc`` at import: call
    this before the first nnU-Net import (all functions of this module do).
    """
    r = root if isinstance(root, NnunetRoot) else NnunetRoot(Path(root))
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    for p in (r.raw, r.preprocessed, r.results):
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(p, f"cannot create nnU-Net folder ({err.strerror})", "choose a writable --nnunet-root") from None
    da = (processes if processes > 1 else 0) if da_processes is None else int(da_processes)
    values = {**r.env(), "nnUNet_def_n_proc": str(processes), "nnUNet_n_proc_DA": str(da), "nnUNet_wandb_enabled": "0"}
    if "nnUNet_compile" not in os.environ:
        values["nnUNet_compile"] = "false"
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield r
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ThreadContext:
    """Stands in for ``multiprocessing.get_context('spawn')``: pools are thread pools."""

    @staticmethod
    def Pool(processes=None, *args, **kwargs):  # noqa: N802 (multiprocessing's name)
        return multiprocessing.pool.ThreadPool(processes or 1)


class _ThreadMultiprocessing:
    """A ``multiprocessing`` module whose ``get_context`` returns :class:`_ThreadContext`."""

    @staticmethod
    def get_context(method=None):
        return _ThreadContext()

    def __getattr__(self, name):
        return getattr(multiprocessing, name)


@contextlib.contextmanager
def inline_pools(enabled: bool) -> Iterator[None]:
    """Run nnU-Net's spawn pools as one-thread pools while the block runs (if ``enabled``)."""
    if not enabled:
        yield
        return
    import importlib

    mods = [importlib.import_module(m) for m in _POOLED_MODULES]
    saved = [m.multiprocessing for m in mods]
    for m in mods:
        m.multiprocessing = _ThreadMultiprocessing()
    try:
        yield
    finally:
        for m, s in zip(mods, saved):
            m.multiprocessing = s


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """nnU-Net prints progress to stdout; send it to stderr so stdout stays clean for results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``(501, "Phantom") -> "Dataset501_Phantom"`` (nnU-Net's ``DatasetXXX_YYY``), validated."""
    if not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise InputError(None, f"--dataset-id must be an integer in 1..999 (nnU-Net's DatasetXXX_ form), got {dataset_id!r}", "use e.g. --dataset-id 501")
    if not _NAME_RE.match(str(name)):
        raise InputError(None, f"--name {name!r} must be letters, digits, '_' or '-'", "use e.g. --name Phantom")
    return f"Dataset{dataset_id:03d}_{name}"


def find_dataset(root: NnunetRoot, dataset_id: int, where: str = "raw") -> str:
    """The ``DatasetNNN_Name`` folder name of ``dataset_id`` under ``root``'s raw/preprocessed/results."""
    dataset_folder_name(dataset_id, "x")  # validates the id
    base = getattr(root, where)
    hits = sorted(p.name for p in base.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir()) if base.is_dir() else []
    if not hits:
        step = {"raw": "unicoal segment export", "preprocessed": "unicoal segment train", "results": "unicoal segment train"}[where]
        raise InputError(base, f"no nnU-Net dataset with id {dataset_id} (expected a Dataset{dataset_id:03d}_<Name> folder)",
                         f"run `{step}` with --nnunet-root {root.root} --dataset-id {dataset_id} first")
    if len(hits) > 1:
        raise InputError(base, f"several datasets share id {dataset_id}: {', '.join(hits)}", "remove the stale folder or use another --dataset-id")
    return hits[0]



def torch_device(name: str):
    """``auto`` -> cuda if available else cpu; refuses ``cuda`` without a visible device."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda requested but no CUDA device is visible", "use --device cpu or run on a GPU node")
    return torch.device(name)

"""Segmentation-based evaluation with nnU-Net v2: export, plan/preprocess, train, predict, Dice.

Paper, Sec. IV: "we use the Dice Similarity Coefficient (DSC) to measure the segmentation
performance" of "a pretrained segmentation model" applied to the synthesized images (Tables I-III,
VI). We train nnU-Net v2 (Isensee et al., Nature Methods 2021) on the *real* target-modality
images of the training split and apply it to synthesized test volumes; the real test images give
the upper-bound row (method ``Real``).

Steps (each file-in/file-out, each a ``unicoal segment`` sub-command):

1. :func:`export_dataset` -- samplesheet -> nnU-Net raw dataset
   ``NNUNET_ROOT/nnUNet_raw/DatasetNNN_Name/{imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz,
   dataset.json}``. Labels: ``lesion`` -> background 0, lesion 1 (any label > 0);
   ``brats`` -> plain labels 0, 1 (necrosis / non-enhancing core), 2 (oedema), 3 (enhancing; BraTS
   label 4 renumbered because nnU-Net needs consecutive labels). BraTS regions are *not* trained
   region-based: the network predicts the three labels and the regions are formed at evaluation
   (whole tumour {1,2,4}, tumour core {1,4}, enhancing {4}), after mapping 3 back to 4.
2. :func:`plan_and_preprocess` and :func:`train` -- nnU-Net's fingerprint, planner and
   preprocessor (through its Python API), then :class:`~unicoal.evaluate.nnunet_trainers.nnUNetTrainerUnicoal`
   instantiated directly (no trainer lookup by name).
3. :func:`predict` -- synthesized volumes -> label maps on the input grids. The background is set
   to 0 with the brain mask first: nnU-Net's z-score normalisation of skull-stripped MRI uses the
   non-zero region only, so residual background intensities of a synthesized volume would shift it.
4. :func:`dice_files` / :func:`dice_rows` -- Dice per region into the shared long-format rows
   (:mod:`unicoal.evaluate.rows`), metric ``DSC`` (lesion) or ``DSC_WT``, ``DSC_TC``, ``DSC_ET``
   plus ``DSC`` = the summary region (whole tumour by default) for BraTS.

Dice conventions (stated in every row's ``convention`` column and in the JSON sidecar):
``|P & T| * 2 / (|P| + |T|)``; a region empty in *both* prediction and truth scores 1.0
(convention ``brats-empty-1``: the BraTS challenge convention, the default) or NaN
(``nnunet-empty-nan``: what nnU-Net's own evaluation returns), and the sidecar flags it
(``empty_both``); a region empty in exactly one of them scores 0. (Rows written before this
naming say ``nnunet`` for the BraTS convention.)

nnU-Net's three folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) are always
sub-folders of ``NNUNET_ROOT``, set in ``os.environ`` by :func:`nnunet_environment` before nnU-Net
is imported and restored afterwards (never the user's home). With ``processes <= 1`` nnU-Net's
``spawn`` process pools (fingerprint, preprocessing, integrity check, unpacking) are replaced by
one worker thread (:func:`_inline_pools`): a spawned worker re-imports torch and nnU-Net, which
costs more than the work on small cohorts and needs a ``__main__`` guard in the caller.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.pool
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.io import load_volume, nifti_stem, read_json, save_volume, write_json

__all__ = [
    "REGION_SETS",
    "EXPORT_LABELS",
    "EMPTY_CONVENTIONS",
    "NnunetRoot",
    "TrainConfig",
    "PredictConfig",
    "TrainResult",
    "DiceResult",
    "nnunet_environment",
    "dataset_folder_name",
    "find_dataset",
    "export_dataset",
    "plan_and_preprocess",
    "train",
    "predict",
    "score_real",
    "dice",
    "region_masks",
    "region_dice",
    "dice_files",
    "dice_rows",
    "dice_convention",
]

#: Dice regions per label scheme: metric name -> label values forming the region (None: any label > 0).
#: BraTS: whole tumour {1, 2, 4}, tumour core {1, 4}, enhancing tumour {4} (reference-facts).
REGION_SETS: dict[str, dict[str, tuple[int, ...] | None]] = {
    "lesion": {"DSC": None},
    "brats": {"DSC_WT": (1, 2, 4), "DSC_TC": (1, 4), "DSC_ET": (4,)},
}
#: nnU-Net ``dataset.json`` labels per scheme (consecutive, background 0).
EXPORT_LABELS: dict[str, dict[str, int]] = {
    "lesion": {"background": 0, "lesion": 1},
    "brats": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
}
#: BraTS label -> nnU-Net label at export; inverted after prediction.
_BRATS_TO_NNUNET = {0: 0, 1: 1, 2: 2, 4: 3}
#: value of a region empty in both prediction and truth -> ``convention`` column text
EMPTY_CONVENTIONS: dict[str, str] = {"one": "brats-empty-1", "nan": "nnunet-empty-nan"}

_ENV_FOLDERS = {"nnUNet_raw": "nnUNet_raw", "nnUNet_preprocessed": "nnUNet_preprocessed", "nnUNet_results": "nnUNet_results"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CASE_RE = re.compile(r"[^A-Za-z0-9_-]")
_MODEL_RECORD = "unicoal_model.json"
_FILE_ENDING = ".nii.gz"
_POOLED_MODULES = (
    "nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
    "nnunetv2.preprocessing.preprocessors.default_preprocessor",
    "nnunetv2.experiment_planning.verify_dataset_integrity",
    "nnunetv2.training.dataloading.utils",
)


# ----------------------------------------------------------------------------------------------
# nnU-Net environment


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
def _inline_pools(enabled: bool) -> Iterator[None]:
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
def _quiet_stdout() -> Iterator[None]:
    """nnU-Net prints progress to stdout; send it to stderr so stdout stays clean for results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
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


# ----------------------------------------------------------------------------------------------
# 1. export


def _case_id(subject: str) -> str:
    return _CASE_RE.sub("_", subject)


def _check_regions(regions: str) -> None:
    if regions not in REGION_SETS:
        raise InputError(None, f"unknown --regions {regions!r}", f"use one of {', '.join(REGION_SETS)}")


def _export_label(label: np.ndarray, regions: str, path: Path) -> np.ndarray:
    lab = np.rint(label).astype(np.int64)
    if regions == "lesion":
        if lab.min() < 0:
            raise InputError(path, f"label map has negative values (min {lab.min()})", "labels must be 0 (background) or positive")
        return (lab > 0).astype(np.uint8)
    values = set(np.unique(lab).tolist())
    bad = sorted(values - set(_BRATS_TO_NNUNET))
    if bad:
        raise InputError(path, f"BraTS label map has values {bad} outside 0, 1, 2, 4", "use BraTS 2019 labels (1 necrosis, 2 oedema, 4 enhancing) or --regions lesion")
    out = np.zeros(lab.shape, np.uint8)
    for src, dst in _BRATS_TO_NNUNET.items():
        out[lab == src] = dst
    return out


def labelled_rows(samplesheet: str | os.PathLike, modality: str, splits: Sequence[str], *, fix: str,
                  require_split: bool = False):
    """``(canonical modality, rows)``: the samplesheet rows of ``modality`` in ``splits``, all labelled.

    One clear error when the modality is unknown, no row matches, or a row lacks its label
    (``fix`` is that error's advice); ``require_split`` also refuses a sheet without splits.
    """
    from unicoal.cohort.samplesheet import canonical_modality, read_samplesheet

    mod = canonical_modality(modality)
    if mod is None:
        raise InputError(None, f"unknown --modality {modality!r}", "use T1, T2, PD, FLAIR or T1CE")
    splits = tuple(dict.fromkeys(splits))
    rows = read_samplesheet(samplesheet)
    if require_split and any(r.split is None for r in rows):
        raise InputError(samplesheet, "samplesheet has no split column", "run `unicoal cohort check SHEET --out SHEET2` to assign splits, or add a split column")
    chosen = [r for r in rows if r.modality == mod and r.split in splits]
    if not chosen:
        raise InputError(samplesheet, f"no {mod} rows in split(s) {', '.join(splits)}", "check --modality and --split")
    unlabeled = [r.subject for r in chosen if r.label is None]
    if unlabeled:
        raise InputError(samplesheet, f"{len(unlabeled)} {mod} row(s) without a label ({', '.join(unlabeled[:5])})", fix)
    return mod, chosen


def export_dataset(samplesheet: str | os.PathLike, nnunet_root: str | os.PathLike, *, modality: str = "T1",
                   splits: Sequence[str] = ("train",), dataset_id: int = 501, name: str = "Unicoal",
                   regions: str = "lesion") -> Path:
    """Write the real ``modality`` images and labels of ``splits`` as an nnU-Net v2 raw dataset.

    Every selected row needs a ``label``; the label must lie on the image's grid (same shape,
    affine within 1e-3 mm). Case ids are the subject ids (characters other than letters, digits,
    ``_`` and ``-`` become ``_``). The dataset folder is built next to its destination and renamed
    into place, replacing an earlier export of the same id and name. ``dataset.json`` is written by
    nnU-Net's ``generate_dataset_json`` (``channel_names {0: modality}``, z-score normalisation;
    ``NibabelIO`` reader so training and :func:`predict` read voxels in the same order).

    Returns:
        the dataset folder ``nnUNet_raw/DatasetNNN_Name``.
    """
    _check_regions(regions)
    folder_name = dataset_folder_name(dataset_id, name)
    mod, chosen = labelled_rows(samplesheet, modality, splits, require_split=True,
                                fix="give every training row a lesion label map in the label column")
    cases: dict[str, object] = {}
    for r in chosen:
        cid = _case_id(r.subject)
        if cid in cases:
            raise InputError(samplesheet, f"subjects {cases[cid].subject} and {r.subject} map to the same nnU-Net case id {cid}", "rename one subject")
        cases[cid] = r

    root = NnunetRoot(Path(nnunet_root))
    root.raw.mkdir(parents=True, exist_ok=True)
    clash = [p.name for p in root.raw.glob(f"Dataset{dataset_id:03d}_*") if p.name != folder_name and not p.name.startswith(".")]
    if clash:
        raise InputError(root.raw / clash[0], f"dataset id {dataset_id} is already used by {clash[0]}", "pick another --dataset-id or --name, or delete that folder")
    final = root.raw / folder_name
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", dir=root.raw))
    try:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        counts = {}
        for cid, r in _progress(cases.items(), "export", total=len(cases)):
            data, img = load_volume(r.path)
            lab, limg = load_volume(r.label, allow_empty=True)
            _check_grid(img, limg, r.label, f"label grid differs from the {mod} image grid of {r.path}",
                        f"resample the label onto the {mod} image (e.g. `unicoal register --label`)")
            seg = _export_label(lab, regions, r.label)
            save_volume(tmp / "imagesTr" / f"{cid}_0000{_FILE_ENDING}", data, img.affine, dtype=np.float32)
            save_volume(tmp / "labelsTr" / f"{cid}{_FILE_ENDING}", seg, img.affine, dtype=np.uint8)
            counts[cid] = int(np.count_nonzero(seg))
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        generate_dataset_json(
            str(tmp), channel_names={0: mod}, labels=dict(EXPORT_LABELS[regions]), num_training_cases=len(cases),
            file_ending=_FILE_ENDING, dataset_name=folder_name, overwrite_image_reader_writer="NibabelIO",
            description=f"unicoal: real {mod} images of split(s) {', '.join(splits)} with {regions} labels",
            reference="Uni-COAL benchmark (unicoal segment export)", license="as the source data",
            converted_by="unicoal",
            unicoal={"samplesheet": str(Path(samplesheet).resolve()), "modality": mod, "splits": list(splits),
                     "regions": regions, "label_map": ({str(k): v for k, v in _BRATS_TO_NNUNET.items()} if regions == "brats" else "any label > 0 -> 1"),
                     "lesion_voxels": counts, "subjects": {cid: r.subject for cid, r in cases.items()}},
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ----------------------------------------------------------------------------------------------
# 2. plan, preprocess, train


@dataclass(frozen=True)
class TrainConfig:
    """nnU-Net training options (defaults = nnU-Net's: 1000 epochs x 250 iterations, 50 validation).

    ``fold="all"`` trains on every exported case (the test subjects are never exported), nnU-Net's
    choice for a final model; 0-4 use its 5-fold split (needs >= 5 cases). ``base_features``
    replaces the plan's feature schedule by ``base * 2**stage`` (capped at the plan's maximum) --
    for CPU smoke runs only; the results folder then carries the plans name ``<plans>_f<base>``.
    ``processes`` bounds nnU-Net's worker processes (1: none, all in-process), ``threads`` torch's
    intra-op threads.
    """

    configuration: str = "3d_fullres"
    fold: int | str = "all"
    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50
    device: str = "auto"
    processes: int = 1
    threads: int | None = None
    base_features: int | None = None
    plans_identifier: str = "nnUNetPlans"
    verify: bool = True
    resume: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.configuration not in ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"):
            raise InputError(None, f"unknown nnU-Net configuration {self.configuration!r}", "use 2d, 3d_fullres or 3d_lowres")
        if self.fold != "all":
            try:
                fold = int(self.fold)
            except (TypeError, ValueError):
                raise InputError(None, f"--fold must be 0-4 or 'all', got {self.fold!r}", "use --fold all") from None
            if not 0 <= fold <= 4:
                raise InputError(None, f"--fold must be 0-4 or 'all', got {fold}", "use --fold all")
            object.__setattr__(self, "fold", fold)
        for name in ("epochs", "iterations_per_epoch", "val_iterations", "processes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(None, f"{name.replace('_', '-')} must be a positive integer, got {v!r}", "use a value >= 1")
        if self.threads is not None and self.threads < 1:
            raise InputError(None, f"threads must be >= 1, got {self.threads}", "use e.g. --threads 1")
        if self.base_features is not None and self.base_features < 1:
            raise InputError(None, f"base features must be >= 1, got {self.base_features}", "use e.g. --base-features 8")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(None, f"--device must be auto, cpu or cuda, got {self.device!r}", "use --device cpu")


@dataclass(frozen=True)
class TrainResult:
    """Where the model is and how long each step took (seconds)."""

    model_dir: Path
    fold: int | str
    plans_name: str
    seconds: dict[str, float] = field(default_factory=dict)
    epoch_seconds: tuple[float, ...] = ()
    pseudo_dice: tuple[float, ...] = ()


def _device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda requested but no CUDA device is visible", "use --device cpu or run on a GPU node")
    return torch.device(name)


def plan_and_preprocess(nnunet_root: str | os.PathLike, dataset_id: int, *, configuration: str = "3d_fullres",
                        processes: int = 1, verify: bool = True) -> dict[str, float]:
    """nnU-Net's integrity check, fingerprint, experiment planning and preprocessing of one configuration.

    Uses the API of ``nnunetv2.experiment_planning.plan_and_preprocess_api`` with the default
    ``ExperimentPlanner`` (plans ``nnUNetPlans``). Returns the seconds of each step.
    """
    # _torch_threads(None): the planner changes torch's global thread count; restore it afterwards
    with nnunet_environment(nnunet_root, processes=processes) as root, _inline_pools(processes <= 1), _quiet_stdout(), \
            _torch_threads(None):
        name = find_dataset(root, dataset_id, "raw")
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
        from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

        seconds = {}
        t = time.perf_counter()
        if verify:
            try:
                verify_dataset_integrity(str(root.raw / name), processes)
            except (AssertionError, RuntimeError, FileNotFoundError) as err:
                raise InputError(root.raw / name, f"nnU-Net rejected the dataset: {' '.join(str(err).split())[:300]}", "re-run `unicoal segment export`") from None
            seconds["verify"] = time.perf_counter() - t
            t = time.perf_counter()
        extract_fingerprint_dataset(dataset_id, _fingerprint_extractor(), num_processes=processes, clean=True,
                                    verbose=False, show_progress_bar=sys.stderr.isatty())
        seconds["fingerprint"] = time.perf_counter() - t
        t = time.perf_counter()
        # the planner sets torch's thread count to nnUNet_n_proc_DA, which must be >= 1 here
        os.environ["nnUNet_n_proc_DA"] = str(max(1, processes))
        _, plans_identifier = plan_experiment_dataset(dataset_id)
        seconds["plan"] = time.perf_counter() - t
        t = time.perf_counter()
        preprocess_dataset(dataset_id, plans_identifier, [configuration], [processes], verbose=False,
                           show_progress_bar=sys.stderr.isatty())
        seconds["preprocess"] = time.perf_counter() - t
    return seconds


def _fingerprint_extractor():
    """nnU-Net's fingerprint extractor drawing 1e6 instead of 1e8 foreground intensity samples in all.

    nnU-Net samples ``1e8 / n_cases`` intensities per case *with replacement* (800 MB of float64 for
    any dataset size) only for its intensity statistics, which drive CT normalisation; MRI channels
    use per-image z-scores, so the plans of an MRI dataset do not change. (Percentile estimates
    from 1e6 samples differ from 1e8 ones by well under 0.1 % of the intensity range.)
    """
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    class _Extractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = 1e6

    return _Extractor


def _override_features(plans: dict, configuration: str, base: int) -> None:
    arch = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
    old = arch["features_per_stage"]
    cap = max(old)
    arch["features_per_stage"] = [min(base * 2 ** i, cap) for i in range(len(old))]
    plans["plans_name"] = f"{plans['plans_name']}_f{base}"


def _write_model_record(root: NnunetRoot, name: str, config: TrainConfig, model_dir: Path, plans_name: str,
                        device: str | None) -> None:
    """Update ``nnUNet_results/<dataset>/unicoal_model.json`` (read by :func:`predict`)."""
    record_path = root.results / name / _MODEL_RECORD
    record = read_json(record_path) if record_path.is_file() else {}
    entry = dict(record.get(config.configuration, {}))
    entry.update({
        "model_dir": model_dir.name, "fold": config.fold, "trainer": "nnUNetTrainerUnicoal", "plans_name": plans_name,
        "regions": read_json(root.raw / name / "dataset.json").get("unicoal", {}).get("regions", "lesion"),
        "epochs": config.epochs, "iterations_per_epoch": config.iterations_per_epoch,
        "base_features": config.base_features,
    })
    if device is not None:
        entry["device"] = device
    record[config.configuration] = entry
    write_json(record_path, record)


def train(nnunet_root: str | os.PathLike, dataset_id: int, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Plan, preprocess and train nnU-Net on the exported dataset; returns the model folder and timings.

    With ``config.resume``: a finished run (``weights_final.pth`` present) is kept as is; an
    unfinished one (``checkpoint_latest.pth``) continues from its checkpoint without re-planning. The model record ``nnUNet_results/DatasetNNN_Name/unicoal_model.json``
    tells :func:`predict` which folder, fold and plans to use per configuration.
    """
    import random

    import torch

    seconds: dict[str, float] = {}
    root = NnunetRoot(Path(nnunet_root))
    name = find_dataset(root, dataset_id, "raw")
    plans_name = config.plans_identifier + (f"_f{config.base_features}" if config.base_features else "")
    trainer_name = "nnUNetTrainerUnicoal"
    fold_dir = root.results / name / f"{trainer_name}__{plans_name}__{config.configuration}" / f"fold_{config.fold}"
    if config.resume and (fold_dir / "weights_final.pth").is_file():  # finished earlier: nothing to do
        print(f"unicoal segment train: {fold_dir} already holds final weights (--resume): skipping training", file=sys.stderr)
        _write_model_record(root, name, config, fold_dir.parent, plans_name, device=None)
        return TrainResult(model_dir=fold_dir.parent, fold=config.fold, plans_name=plans_name)
    resuming = config.resume and (fold_dir / "checkpoint_latest.pth").is_file()
    if not resuming:
        raw_json = read_json(root.raw / name / "dataset.json")
        n_cases = int(raw_json.get("numTraining", 0))
        if config.fold != "all" and n_cases < 5:
            raise InputError(root.raw / name, f"fold {config.fold} needs nnU-Net's 5-fold split but the dataset has {n_cases} case(s)", "use --fold all")
        seconds.update(plan_and_preprocess(root.root, dataset_id, configuration=config.configuration,
                                           processes=config.processes, verify=config.verify))
    with nnunet_environment(root, processes=config.processes) as root, _inline_pools(config.processes <= 1), \
            _quiet_stdout(), _torch_threads(config.threads):
        from batchgenerators.utilities.file_and_folder_operations import load_json

        from unicoal.evaluate.nnunet_trainers import nnUNetTrainerUnicoal

        pre = root.preprocessed / name
        plans_file = pre / f"{config.plans_identifier}.json"
        if not plans_file.is_file():
            raise InputError(plans_file, "nnU-Net plans not found", "run without --resume to plan and preprocess")
        plans = load_json(str(plans_file))
        if config.configuration not in plans["configurations"]:
            raise InputError(plans_file, f"nnU-Net planned no {config.configuration!r} configuration for this dataset (planned: {', '.join(plans['configurations'])})",
                             "use one of the planned configurations")
        if config.base_features:
            _override_features(plans, config.configuration, config.base_features)
        plans["continue_training"] = resuming
        dataset_json = load_json(str(pre / "dataset.json"))
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        device = _device(config.device)
        trainer = nnUNetTrainerUnicoal(plans=plans, configuration=config.configuration, fold=config.fold,
                                       dataset_json=dataset_json, device=device)
        trainer.set_schedule(config.epochs, config.iterations_per_epoch, config.val_iterations)
        if resuming:
            trainer.load_checkpoint(str(fold_dir / "checkpoint_latest.pth"))
        t = time.perf_counter()
        trainer.run_training()
        seconds["train"] = time.perf_counter() - t
        log = trainer.logger.local_logger.my_fantastic_logging
        epochs = tuple(float(b - a) for a, b in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"]))
        pseudo = tuple(float(v) for v in log["mean_fg_dice"])
        model_dir = Path(trainer.output_folder_base)
    _write_model_record(root, name, config, model_dir, plans_name, device=str(device))
    return TrainResult(model_dir=model_dir, fold=config.fold, plans_name=plans_name, seconds=seconds,
                       epoch_seconds=epochs, pseudo_dice=pseudo)


# ----------------------------------------------------------------------------------------------
# 3. predict


@dataclass(frozen=True)
class PredictConfig:
    """nnU-Net inference options (defaults = nnU-Net's: Gaussian sliding window, step 0.5, mirroring)."""

    configuration: str = "3d_fullres"
    device: str = "auto"
    threads: int | None = None
    use_mirroring: bool = True
    tile_step_size: float = 0.5

    def __post_init__(self):
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(None, f"--device must be auto, cpu or cuda, got {self.device!r}", "use --device cpu")
        if not 0 < self.tile_step_size <= 1:
            raise InputError(None, f"tile step size must be in (0, 1], got {self.tile_step_size}", "use 0.5")
        if self.threads is not None and self.threads < 1:
            raise InputError(None, f"threads must be >= 1, got {self.threads}", "use e.g. --threads 1")


def _model_record(root: NnunetRoot, dataset_id: int, configuration: str) -> dict:
    """The entry of ``unicoal_model.json`` that :func:`train` wrote for ``configuration``."""
    record_path = root.results / find_dataset(root, dataset_id, "results") / _MODEL_RECORD
    if not record_path.is_file():
        raise InputError(record_path, "no trained unicoal nnU-Net model here", "run `unicoal segment train` first")
    record = read_json(record_path)
    if configuration not in record:
        raise InputError(record_path, f"no model for configuration {configuration!r} (trained: {', '.join(record) or 'none'})",
                         "pass --configuration of a trained model")
    return record[configuration]


def _load_predictor(root: NnunetRoot, dataset_id: int, config: PredictConfig):
    """nnUNetPredictor initialised by hand from our model record and weights-only file."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from unicoal.evaluate.nnunet_trainers import WEIGHTS_FILE, nnUNetTrainerUnicoal

    name = find_dataset(root, dataset_id, "results")
    rec = _model_record(root, dataset_id, config.configuration)
    model_dir = root.results / name / rec["model_dir"]
    weights_file = model_dir / f"fold_{rec['fold']}" / WEIGHTS_FILE
    if not weights_file.is_file():
        raise InputError(weights_file, "final weights not found (training unfinished?)", "finish `unicoal segment train` (use --resume)")
    try:
        ckpt = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise InputError(weights_file, f"unreadable weights ({type(err).__name__}: {err})", "re-run `unicoal segment train`") from None
    plans = load_json(str(model_dir / "plans.json"))
    dataset_json = load_json(str(model_dir / "dataset.json"))
    plans_manager = PlansManager(plans)
    cm = plans_manager.get_configuration(ckpt["configuration"])
    label_manager = plans_manager.get_label_manager(dataset_json)
    network = nnUNetTrainerUnicoal.build_network_architecture(
        plans_manager, cm, determine_num_input_channels(plans_manager, cm, dataset_json),
        label_manager.num_segmentation_heads, enable_deep_supervision=False)
    network.load_state_dict(ckpt["network_weights"])
    axes = ckpt.get("inference_allowed_mirroring_axes")
    predictor = nnUNetPredictor(tile_step_size=config.tile_step_size, use_gaussian=True, use_mirroring=config.use_mirroring,
                                perform_everything_on_device=True, device=_device(config.device), verbose=False,
                                allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, cm, [ckpt["network_weights"]], dataset_json,
                                    rec["trainer"], None if axes is None else tuple(axes))
    network.to(predictor.device)
    return predictor, rec, dataset_json


def predict(nnunet_root: str | os.PathLike, dataset_id: int, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
            *, masks: Sequence[str | os.PathLike] = (), config: PredictConfig = PredictConfig(),
            suffix: str = "_seg", names: Sequence[str] | None = None) -> list[Path]:
    """Segment each input volume with the trained model; write ``out_dir/<stem><suffix>.nii.gz``.

    ``names`` replaces the input stems in the output names (one per input).

    ``masks``: none, one (used for every input) or one per input, each on its input's grid; voxels
    outside the mask are set to 0 before nnU-Net sees the volume. Outputs are uint8 label maps on
    the input grid (input affine), in the source label convention (BraTS: 0, 1, 2, 4). A JSON
    sidecar per output records the model, the mask and the convention.
    """
    inputs = [Path(p) for p in inputs]
    masks = [Path(p) for p in masks]
    if not inputs:
        raise InputError(None, "no --input volumes given", "pass one or more --input SYN.nii.gz")
    if len(masks) not in (0, 1, len(inputs)):
        raise InputError(None, f"{len(masks)} --mask files for {len(inputs)} --input volumes", "give no mask, one mask for all, or one per input")
    out = Path(out_dir)
    if names is not None and len(names) != len(inputs):
        raise InputError(None, f"{len(names)} output names for {len(inputs)} inputs", "give one name per input")
    stems = list(names) if names is not None else [nifti_stem(p) for p in inputs]
    bad = [n for n in stems if not re.match(r"^[A-Za-z0-9._-]+$", str(n))]
    if bad:
        raise InputError(None, f"output name {bad[0]!r} must be letters, digits, '.', '_' or '-'", "pass a plain file-name stem")
    outs = [out / f"{stem}{suffix}{_FILE_ENDING}" for stem in stems]
    dupes = sorted({o.name for o in outs if outs.count(o) > 1})
    if dupes:
        raise InputError(out, f"two inputs would write the same output {dupes[0]}", "rename the inputs or predict them in separate --out-dir folders")
    root = NnunetRoot(Path(nnunet_root))
    written = []
    with nnunet_environment(root, processes=1) as root, _quiet_stdout(), _torch_threads(config.threads):
        predictor, rec, dataset_json = _load_predictor(root, dataset_id, config)
        regions = rec.get("regions", "lesion")
        back = np.zeros(256, np.uint8)  # nnU-Net label -> source label (BraTS 3 -> 4)
        back[:] = np.arange(256)
        if regions == "brats":
            for src_label, nn_label in _BRATS_TO_NNUNET.items():
                back[nn_label] = src_label
        for i, (src, dst) in enumerate(_progress(list(zip(inputs, outs)), "nnU-Net predict")):
            data, img = load_volume(src)
            mask_path = masks[i if len(masks) > 1 else 0] if masks else None
            if mask_path is not None:
                mask, mimg = load_volume(mask_path)
                _check_grid(img, mimg, mask_path, f"mask grid differs from the input grid of {src}",
                            "pass the brain mask of this volume's grid")
                data = np.where(mask > 0.5, data, 0.0).astype(np.float32)
                if not np.any(data):
                    raise InputError(src, "volume is all zero inside the brain mask", "check the mask and the volume")
            spacing = [float(s) for s in img.header.get_zooms()[:3]]
            # nnU-Net's NibabelIO order: array [z, y, x] of the stored voxels, spacing reversed
            arr = np.ascontiguousarray(data.transpose(2, 1, 0)[None], dtype=np.float32)
            seg = predictor.predict_single_npy_array(arr, {"spacing": spacing[::-1]}, None, None, False)
            seg = np.asarray(seg).transpose(2, 1, 0).astype(np.uint8)
            if seg.shape != data.shape:  # internal invariant: nnU-Net resamples back to the input shape
                raise RuntimeError(f"nnU-Net returned shape {seg.shape} for input shape {data.shape}")
            seg = back[seg]
            save_volume(dst, seg, img.affine, dtype=np.uint8)
            write_json(dst.with_name(nifti_stem(dst) + ".json"), {
                "input": str(src.resolve()), "mask": None if mask_path is None else str(mask_path.resolve()),
                "background_zeroed_outside_mask": mask_path is not None, "dataset": find_dataset(root, dataset_id, "results"),
                "configuration": config.configuration, "fold": rec["fold"], "model_dir": rec["model_dir"],
                "regions": regions, "labels": {"lesion": {"1": "lesion"}, "brats": {"1": "necrosis", "2": "edema", "4": "enhancing"}}[regions],
                "use_mirroring": config.use_mirroring, "tile_step_size": config.tile_step_size,
            })
            written.append(dst)
    return written


def score_real(nnunet_root: str | os.PathLike, dataset_id: int, samplesheet: str | os.PathLike, out_dir: str | os.PathLike,
               *, modality: str = "T1", splits: Sequence[str] = ("test",), config: PredictConfig = PredictConfig(),
               empty: str = "one", dataset: str = "", table: str = "", summary: str | None = "DSC_WT"):
    """The upper-bound rows: segment the *real* ``modality`` images of ``splits`` and score them.

    Real images are expected preprocessed (skull-stripped: background 0), so no mask is applied.
    Label maps go to ``out_dir/<subject>_<modality>_seg.nii.gz``. Returns ``(rows, details)``:
    result rows with method ``Real`` (task empty, source = target = ``modality``, scale 1) and the
    per-region :class:`DiceResult` per subject.
    """
    mod, chosen = labelled_rows(samplesheet, modality, splits, fix="every scored row needs a ground-truth label map")
    root = NnunetRoot(Path(nnunet_root))
    regions = _model_record(root, dataset_id, config.configuration).get("regions", "lesion")
    preds = predict(root.root, dataset_id, [r.path for r in chosen], out_dir, config=config,
                    names=[f"{r.subject}_{mod}" for r in chosen])
    rows, details = [], {}
    for r, p in zip(chosen, preds):
        res = dice_files(p, r.label, regions, empty=empty)
        details[r.subject] = res
        rows += dice_rows(res, method="Real", subject=r.subject, dataset=dataset, source=mod, target=mod, scale=1.0,
                          table=table, empty=empty, summary=summary)
    return rows, details


# ----------------------------------------------------------------------------------------------
# 4. Dice


@dataclass(frozen=True)
class DiceResult:
    """Dice of one region: value and the voxel counts it came from."""

    value: float
    intersection: int
    pred_voxels: int
    truth_voxels: int

    @property
    def empty_both(self) -> bool:
        return self.pred_voxels == 0 and self.truth_voxels == 0


def dice(pred: np.ndarray, truth: np.ndarray, *, empty: str = "one") -> DiceResult:
    """Dice ``2|P & T| / (|P| + |T|)`` of two boolean masks of equal shape.

    ``empty``: value when both masks are empty -- ``"one"`` (1.0) or ``"nan"``. One empty mask
    and one non-empty mask give 0.
    """
    if empty not in EMPTY_CONVENTIONS:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_CONVENTIONS)}, got {empty!r}")
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    inter = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    if n_p + n_t == 0:
        value = 1.0 if empty == "one" else math.nan
    else:
        value = 2.0 * inter / (n_p + n_t)
    return DiceResult(value, inter, n_p, n_t)


def region_masks(labels: np.ndarray, regions: str) -> dict[str, np.ndarray]:
    """Boolean mask per region of :data:`REGION_SETS` ``[regions]`` from an integer label map."""
    _check_regions(regions)
    lab = np.rint(np.asarray(labels)).astype(np.int64)
    return {metric: (lab > 0) if values is None else np.isin(lab, values) for metric, values in REGION_SETS[regions].items()}


def region_dice(pred: np.ndarray, truth: np.ndarray, regions: str = "lesion", *, empty: str = "one") -> dict[str, DiceResult]:
    """Dice per region (metric name -> :class:`DiceResult`) of two label maps."""
    pm, tm = region_masks(pred, regions), region_masks(truth, regions)
    return {k: dice(pm[k], tm[k], empty=empty) for k in pm}


def dice_files(pred: str | os.PathLike, truth: str | os.PathLike, regions: str = "lesion", *, empty: str = "one") -> dict[str, DiceResult]:
    """Dice per region of two label-map files on the same grid (shape and affine within 1e-3 mm)."""
    p, pimg = load_volume(pred, allow_empty=True)
    t, timg = load_volume(truth, allow_empty=True)
    _check_grid(timg, pimg, pred, f"prediction grid differs from the ground-truth grid of {truth}",
                "predict on volumes that lie on the label's grid (synthesize onto the target grid)")
    return region_dice(p, t, regions, empty=empty)


def _check_grid(ref_img, other_img, other_path, problem: str, fix: str) -> None:
    """The one grid check of this module: shape and affine (:meth:`unicoal.geometry.Grid.same_as`)."""
    from unicoal.geometry import Grid

    g_ref, g_other = Grid.from_image(ref_img), Grid.from_image(other_img)
    if not g_ref.same_as(g_other):
        raise InputError(other_path, f"{problem} (shape {g_other.shape} vs {g_ref.shape}, or the affine)", fix)


def dice_convention(empty: str = "one") -> str:
    """``convention`` column text for Dice rows (constant for a run, so statistics group it)."""
    if empty not in EMPTY_CONVENTIONS:
        raise InputError(None, f"unknown empty-region convention {empty!r}", f"use one of {', '.join(EMPTY_CONVENTIONS)}")
    return EMPTY_CONVENTIONS[empty]


def dice_rows(results: Mapping[str, DiceResult], *, method: str, subject: str, dataset: str = "", task: str = "",
              source: str = "", target: str = "", scale: float = 1.0, table: str = "", empty: str = "one",
              summary: str | None = "DSC_WT"):
    """Result rows (:class:`unicoal.evaluate.rows.ResultRow`) of one subject's region Dice values.

    For BraTS region sets ``summary`` names the region also written as plain ``DSC`` (the single
    DSC column of Tables I and VI; the paper does not say which region -- whole tumour by default;
    ``"mean"`` averages the three; ``None`` writes none).
    """
    from unicoal.evaluate.rows import ResultRow

    conv = dice_convention(empty)
    values = {k: r.value for k, r in results.items()}
    if "DSC" not in values and summary is not None:
        if summary == "mean":
            vals = [v for v in values.values() if not math.isnan(v)]
            values["DSC"] = float(np.mean(vals)) if vals else math.nan
        elif summary in values:
            values["DSC"] = values[summary]
        else:
            raise InputError(None, f"unknown summary region {summary!r}", f"use one of {', '.join(values)} or mean")
    return [ResultRow(table=table, dataset=dataset, task=task, method=method, subject=subject, source=source,
                      target=target, scale=float(scale), metric=k, value=float(v), convention=conv)
            for k, v in values.items()]


def _progress(items, desc: str, total: int | None = None):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return items
    return tqdm(items, desc=desc, total=total, file=sys.stderr, disable=None, leave=False)

"""Step 2 of the nnU-Net room: nnU-Net's plan and preprocess, then training (resumable).

nnU-Net's fingerprint, planner and preprocessor run through its Python API, then
:class:`~unicoal.evaluate.nnunet_trainers.nnUNetTrainerUnicoal` is instantiated directly (no
trainer lookup by name). :func:`train` picks up where an earlier call on the same root stopped:
a finished model is kept, an unfinished one continues from nnU-Net's ``checkpoint_latest.pth``
(the effect of nnU-Net v2's ``--c``), anything else starts fresh.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unicoal.errors import InputError
from unicoal.evaluate.nnunet.environment import (MODEL_RECORD, NnunetRoot, find_dataset, inline_pools, nnunet_environment,
                                                 quiet_stdout, torch_device, torch_threads)
from unicoal.io import read_json, write_json

__all__ = ["TrainConfig", "TrainResult", "plan_and_preprocess", "model_folder", "train"]


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


def plan_and_preprocess(nnunet_root: str | os.PathLike, dataset_id: int, *, configuration: str = "3d_fullres",
                        processes: int = 1, verify: bool = True) -> dict[str, float]:
    """nnU-Net's integrity check, fingerprint, experiment planning and preprocessing of one configuration.

    Uses the API of ``nnunetv2.experiment_planning.plan_and_preprocess_api`` with the default
    ``ExperimentPlanner`` (plans ``nnUNetPlans``). Returns the seconds of each step.
    """
    # torch_threads(None): the planner changes torch's global thread count; restore it afterwards
    with nnunet_environment(nnunet_root, processes=processes) as root, inline_pools(processes <= 1), quiet_stdout(), \
            torch_threads(None):
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
    record_path = root.results / name / MODEL_RECORD
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


def model_folder(root: NnunetRoot, name: str, config: TrainConfig) -> Path:
    """``nnUNet_results/<dataset>/<trainer>__<plans>__<configuration>``: where :func:`train` writes."""
    plans_name = config.plans_identifier + (f"_f{config.base_features}" if config.base_features else "")
    return root.results / name / f"nnUNetTrainerUnicoal__{plans_name}__{config.configuration}"


def _check_finished_schedule(root: NnunetRoot, name: str, config: TrainConfig, fold_dir: Path) -> None:
    """Refuse to reuse a finished model that the record says was trained on another schedule."""
    record_path = root.results / name / MODEL_RECORD
    entry = (read_json(record_path) if record_path.is_file() else {}).get(config.configuration, {})
    if entry.get("model_dir") != fold_dir.parent.name or str(entry.get("fold")) != str(config.fold):
        return
    recorded = (entry.get("epochs"), entry.get("iterations_per_epoch"))
    if recorded != (config.epochs, config.iterations_per_epoch):
        raise InputError(fold_dir, f"holds a finished model of {recorded[0]} epochs x {recorded[1]} iterations, "
                                   f"not {config.epochs} x {config.iterations_per_epoch}",
                         "use another --nnunet-root, or delete the folder to retrain")


def train(nnunet_root: str | os.PathLike, dataset_id: int, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Plan, preprocess and train nnU-Net on the exported dataset; returns the model folder and timings.

    Picks up where an earlier call on the same root and settings stopped (a job killed at its time
    limit and retried): a finished run (``weights_final.pth`` present) is kept as is, not
    retrained; an unfinished one (nnU-Net's ``checkpoint_latest.pth``, saved every
    ``save_every`` epochs) continues from its checkpoint without re-planning, as nnU-Net v2's
    ``--c``; otherwise training starts fresh. The model record
    ``nnUNet_results/DatasetNNN_Name/unicoal_model.json`` tells :func:`predict` which folder, fold
    and plans to use per configuration.

    Raises:
        InputError: no exported dataset, a fold the dataset cannot split, a finished model of
            another schedule in the same folder, or plans missing next to a checkpoint.
    """
    import random

    import torch

    seconds: dict[str, float] = {}
    root = NnunetRoot(Path(nnunet_root))
    name = find_dataset(root, dataset_id, "raw")
    plans_name = config.plans_identifier + (f"_f{config.base_features}" if config.base_features else "")
    fold_dir = model_folder(root, name, config) / f"fold_{config.fold}"
    if (fold_dir / "weights_final.pth").is_file():  # finished earlier: nothing to do
        _check_finished_schedule(root, name, config, fold_dir)
        print(f"unicoal segment train: {fold_dir} already holds final weights: keeping them (no retraining)", file=sys.stderr)
        _write_model_record(root, name, config, fold_dir.parent, plans_name, device=None)
        return TrainResult(model_dir=fold_dir.parent, fold=config.fold, plans_name=plans_name)
    resuming = (fold_dir / "checkpoint_latest.pth").is_file()
    if not resuming:
        raw_json = read_json(root.raw / name / "dataset.json")
        n_cases = int(raw_json.get("numTraining", 0))
        if config.fold != "all" and n_cases < 5:
            raise InputError(root.raw / name, f"fold {config.fold} needs nnU-Net's 5-fold split but the dataset has {n_cases} case(s)", "use --fold all")
        seconds.update(plan_and_preprocess(root.root, dataset_id, configuration=config.configuration,
                                           processes=config.processes, verify=config.verify))
    with nnunet_environment(root, processes=config.processes) as root, inline_pools(config.processes <= 1), \
            quiet_stdout(), torch_threads(config.threads):
        from batchgenerators.utilities.file_and_folder_operations import load_json

        from unicoal.evaluate.nnunet_trainers import nnUNetTrainerUnicoal

        pre = root.preprocessed / name
        plans_file = pre / f"{config.plans_identifier}.json"
        if not plans_file.is_file():
            raise InputError(plans_file, f"nnU-Net plans not found next to the checkpoint in {fold_dir}", f"delete {fold_dir} to train afresh")
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
        device = torch_device(config.device)
        trainer = nnUNetTrainerUnicoal(plans=plans, configuration=config.configuration, fold=config.fold,
                                       dataset_json=dataset_json, device=device)
        trainer.set_schedule(config.epochs, config.iterations_per_epoch, config.val_iterations)
        if resuming:
            trainer.load_checkpoint(str(fold_dir / "checkpoint_latest.pth"))
            print(f"unicoal segment train: resuming {fold_dir} from checkpoint_latest.pth at epoch {trainer.current_epoch} "
                  f"of {config.epochs}", file=sys.stderr)
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


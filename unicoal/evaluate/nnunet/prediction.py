"""Step 3 of the nnU-Net room: label maps of (synthesized or real) volumes with the trained model.

The background is set to 0 with the brain mask first: nnU-Net's z-score normalisation of
skull-stripped MRI uses the non-zero region only, so residual background intensities of a
synthesized volume would shift it. :func:`score_real` gives the upper-bound rows (method
``Real``): the real test images segmented and scored with :mod:`unicoal.evaluate.dice`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.evaluate.dice import check_label_grid, dice_files, dice_rows
from unicoal.evaluate.nnunet.environment import (FILE_ENDING, MODEL_RECORD, NnunetRoot, find_dataset, nnunet_environment,
                                                 quiet_stdout, torch_device, torch_threads)
from unicoal.evaluate.nnunet.export import BRATS_TO_NNUNET, labelled_rows
from unicoal.io import load_volume, nifti_stem, read_json, save_volume, write_json
from unicoal.progress import progress

__all__ = ["PredictConfig", "predict", "score_real"]


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
    record_path = root.results / find_dataset(root, dataset_id, "results") / MODEL_RECORD
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
                                perform_everything_on_device=True, device=torch_device(config.device), verbose=False,
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
    outs = [out / f"{stem}{suffix}{FILE_ENDING}" for stem in stems]
    dupes = sorted({o.name for o in outs if outs.count(o) > 1})
    if dupes:
        raise InputError(out, f"two inputs would write the same output {dupes[0]}", "rename the inputs or predict them in separate --out-dir folders")
    root = NnunetRoot(Path(nnunet_root))
    written = []
    with nnunet_environment(root, processes=1) as root, quiet_stdout(), torch_threads(config.threads):
        predictor, rec, dataset_json = _load_predictor(root, dataset_id, config)
        regions = rec.get("regions", "lesion")
        back = np.zeros(256, np.uint8)  # nnU-Net label -> source label (BraTS 3 -> 4)
        back[:] = np.arange(256)
        if regions == "brats":
            for src_label, nn_label in BRATS_TO_NNUNET.items():
                back[nn_label] = src_label
        for i, (src, dst) in enumerate(progress(list(zip(inputs, outs)), desc="nnU-Net predict", unit="volume", leave=False)):
            data, img = load_volume(src)
            mask_path = masks[i if len(masks) > 1 else 0] if masks else None
            if mask_path is not None:
                mask, mimg = load_volume(mask_path)
                check_label_grid(img, mimg, mask_path, f"mask grid differs from the input grid of {src}",
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


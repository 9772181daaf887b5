"""Step 1 of the nnU-Net room: a samplesheet split -> an nnU-Net v2 raw dataset.

``NNUNET_ROOT/nnUNet_raw/DatasetNNN_Name/{imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz,
dataset.json}``. Labels: ``lesion`` -> background 0, lesion 1 (any label > 0); ``brats`` -> plain
labels 0, 1 (necrosis / non-enhancing core), 2 (oedema), 3 (enhancing; BraTS label 4 renumbered
because nnU-Net needs consecutive labels). BraTS regions are *not* trained region-based: the
network predicts the three labels and the regions are formed at evaluation
(:mod:`unicoal.evaluate.dice`), after mapping 3 back to 4.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.evaluate.dice import check_label_grid, check_regions
from unicoal.evaluate.nnunet.environment import FILE_ENDING, NnunetRoot, dataset_folder_name
from unicoal.io import load_volume, save_volume
from unicoal.progress import progress

__all__ = ["EXPORT_LABELS", "BRATS_TO_NNUNET", "labelled_rows", "export_dataset"]

#: nnU-Net ``dataset.json`` labels per scheme (consecutive, background 0).
EXPORT_LABELS: dict[str, dict[str, int]] = {
    "lesion": {"background": 0, "lesion": 1},
    "brats": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
}
#: BraTS label -> nnU-Net label at export; inverted after prediction.
BRATS_TO_NNUNET = {0: 0, 1: 1, 2: 2, 4: 3}
_CASE_RE = re.compile(r"[^A-Za-z0-9_-]")


def _case_id(subject: str) -> str:
    return _CASE_RE.sub("_", subject)


def _export_label(label: np.ndarray, regions: str, path: Path) -> np.ndarray:
    lab = np.rint(label).astype(np.int64)
    if regions == "lesion":
        if lab.min() < 0:
            raise InputError(path, f"label map has negative values (min {lab.min()})", "labels must be 0 (background) or positive")
        return (lab > 0).astype(np.uint8)
    values = set(np.unique(lab).tolist())
    bad = sorted(values - set(BRATS_TO_NNUNET))
    if bad:
        raise InputError(path, f"BraTS label map has values {bad} outside 0, 1, 2, 4", "use BraTS 2019 labels (1 necrosis, 2 oedema, 4 enhancing) or --regions lesion")
    out = np.zeros(lab.shape, np.uint8)
    for src, dst in BRATS_TO_NNUNET.items():
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
    check_regions(regions)
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
        for cid, r in progress(cases.items(), desc="nnU-Net export", unit="case", total=len(cases), leave=False):
            data, img = load_volume(r.path)
            lab, limg = load_volume(r.label, allow_empty=True)
            check_label_grid(img, limg, r.label, f"label grid differs from the {mod} image grid of {r.path}",
                        f"resample the label onto the {mod} image (e.g. `unicoal register --label`)")
            seg = _export_label(lab, regions, r.label)
            save_volume(tmp / "imagesTr" / f"{cid}_0000{FILE_ENDING}", data, img.affine, dtype=np.float32)
            save_volume(tmp / "labelsTr" / f"{cid}{FILE_ENDING}", seg, img.affine, dtype=np.uint8)
            counts[cid] = int(np.count_nonzero(seg))
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        generate_dataset_json(
            str(tmp), channel_names={0: mod}, labels=dict(EXPORT_LABELS[regions]), num_training_cases=len(cases),
            file_ending=FILE_ENDING, dataset_name=folder_name, overwrite_image_reader_writer="NibabelIO",
            description=f"unicoal: real {mod} images of split(s) {', '.join(splits)} with {regions} labels",
            reference="Uni-COAL benchmark (unicoal segment export)", license="as the source data",
            converted_by="unicoal",
            unicoal={"samplesheet": str(Path(samplesheet).resolve()), "modality": mod, "splits": list(splits),
                     "regions": regions, "label_map": ({str(k): v for k, v in BRATS_TO_NNUNET.items()} if regions == "brats" else "any label > 0 -> 1"),
                     "lesion_voxels": counts, "subjects": {cid: r.subject for cid, r in cases.items()}},
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


"""The nnU-Net room of the segmentation evaluation: nnU-Net v2 plumbing, export, training, prediction.

Paper, Sec. IV: "we use the Dice Similarity Coefficient (DSC) to measure the segmentation
performance" of "a pretrained segmentation model" applied to the synthesized images (Tables I-III,
VI). We train nnU-Net v2 (Isensee et al., Nature Methods 2021) on the *real* target-modality
images of the training split and apply it to synthesized test volumes; the real test images give
the upper-bound row (method ``Real``). The Dice itself is :mod:`unicoal.evaluate.dice`.

Steps (each file-in/file-out, each a ``unicoal segment`` sub-command):

1. :mod:`.export` -- :func:`export_dataset`: samplesheet -> nnU-Net raw dataset.
2. :mod:`.training` -- :func:`plan_and_preprocess` and :func:`train` (resumes an unfinished run
   from nnU-Net's ``checkpoint_latest.pth``; keeps a finished one).
3. :mod:`.prediction` -- :func:`predict` (label maps on the input grids) and :func:`score_real`.

:mod:`.environment` points nnU-Net at one root folder and runs its pools in-process. No module
of this package imports nnU-Net or torch at import time.
"""
from __future__ import annotations

from unicoal.evaluate.nnunet.environment import NnunetRoot, dataset_folder_name, find_dataset, nnunet_environment
from unicoal.evaluate.nnunet.export import EXPORT_LABELS, export_dataset, labelled_rows
from unicoal.evaluate.nnunet.prediction import PredictConfig, predict, score_real
from unicoal.evaluate.nnunet.training import TrainConfig, TrainResult, plan_and_preprocess, train

__all__ = [
    "EXPORT_LABELS",
    "NnunetRoot",
    "TrainConfig",
    "TrainResult",
    "PredictConfig",
    "nnunet_environment",
    "dataset_folder_name",
    "find_dataset",
    "labelled_rows",
    "export_dataset",
    "plan_and_preprocess",
    "train",
    "predict",
    "score_real",
]

"""nnU-Net v2 trainer used by ``unicoal segment train``: the stock trainer with a settable schedule.

The paper (Sec. IV) scores synthesized images with "a pretrained segmentation model"; we train
nnU-Net v2 (Isensee et al., Nature Methods 2021) on the real target-modality training images.
:class:`nnUNetTrainerUnicoal` is ``nnUNetTrainer`` unchanged except that

* the number of epochs, training iterations per epoch and validation iterations per epoch are set
  with :meth:`nnUNetTrainerUnicoal.set_schedule` (nnU-Net's defaults: 1000 x 250, 50), so a CPU
  smoke run can be 3 epochs of 10 iterations;
* at the end of training it also writes ``weights_final.pth`` next to nnU-Net's
  ``checkpoint_final.pth``: only the network weights, the configuration name and the mirroring
  axes, a file that ``torch.load(..., weights_only=True)`` reads (nnU-Net's own checkpoint pickles
  its init arguments and needs ``weights_only=False``);
* checkpoints are written to a temporary name and renamed into place, so a job killed while
  saving (a time limit) leaves the previous ``checkpoint_latest.pth`` intact for the resume.

The class is instantiated *directly* by :func:`unicoal.evaluate.nnunet.training.train` and rebuilt by
:func:`unicoal.evaluate.nnunet.prediction.predict` through its static ``build_network_architecture``:
nnU-Net's trainer lookup by name (``recursive_find_trainer_class_by_name``, which imports every
module under ``nnunetv2/training/nnUNetTrainer``) is never used. The constructor keeps nnU-Net's
five-argument signature because nnU-Net records ``inspect.signature(self.__init__)`` in checkpoints.

This module imports nnU-Net and torch at import time: import it only after
:func:`unicoal.evaluate.nnunet.environment.nnunet_environment` has set nnU-Net's folders.
"""
from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

__all__ = ["nnUNetTrainerUnicoal", "WEIGHTS_FILE"]

#: weights-only file written next to ``checkpoint_final.pth`` (safe to load with weights_only=True)
WEIGHTS_FILE = "weights_final.pth"


class nnUNetTrainerUnicoal(nnUNetTrainer):  # noqa: N801 (nnU-Net's naming scheme)
    """``nnUNetTrainer`` with a configurable schedule and a weights-only final file.

    Example:
        >>> trainer = nnUNetTrainerUnicoal(plans, "3d_fullres", "all", dataset_json, torch.device("cpu"))
        >>> trainer.set_schedule(epochs=3, iterations_per_epoch=10, val_iterations=2)
        >>> trainer.run_training()
    """

    def set_schedule(self, epochs: int, iterations_per_epoch: int, val_iterations: int) -> None:
        """Set the training length (call before ``run_training``; the poly LR decays over ``epochs``)."""
        for name, value in (("epochs", epochs), ("iterations_per_epoch", iterations_per_epoch),
                            ("val_iterations", val_iterations)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.was_initialized:
            raise RuntimeError("set_schedule must be called before the trainer is initialized")
        self.num_epochs = epochs
        self.num_iterations_per_epoch = iterations_per_epoch
        self.num_val_iterations_per_epoch = val_iterations
        # periodic 'latest' checkpoints: nnU-Net saves every 50 epochs; keep that, or every epoch for short runs
        self.save_every = max(1, min(50, epochs // 5))

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written atomically (temporary file, then rename)."""
        folder, base = os.path.split(filename)
        tmp = os.path.join(folder, f".{base}.tmp")
        super().save_checkpoint(tmp)
        if os.path.isfile(tmp):  # rank 0 with checkpointing enabled wrote it
            os.replace(tmp, filename)

    def on_train_end(self):
        super().on_train_end()
        if self.local_rank == 0 and not self.disable_checkpointing:
            net = self.network.module if self.is_ddp else self.network
            net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
            axes = self.inference_allowed_mirroring_axes
            payload = {
                "network_weights": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "configuration": self.configuration_name,
                "trainer_name": type(self).__name__,
                "inference_allowed_mirroring_axes": None if axes is None else [int(a) for a in axes],
                "num_epochs": int(self.num_epochs),
                "num_iterations_per_epoch": int(self.num_iterations_per_epoch),
            }
            tmp = os.path.join(self.output_folder, f".{WEIGHTS_FILE}.tmp")
            torch.save(payload, tmp)
            os.replace(tmp, os.path.join(self.output_folder, WEIGHTS_FILE))

"""ProvoGAN's volume-level training data and synthesis (:mod:`unicoal.models.baselines.provogan`).

Both run the same cascade (:func:`provo_cascade`): the source volume on the target grid (for SR /
CMSR first resampled along the slice axis with the model's ``interpolation``, as the 3D
baselines do, :func:`unicoal.data3d.preinterpolate`) goes through stage 1 cross-section by
cross-section along axis ``order[0]``; stage ``s`` then reads the source and stage ``s-1``'s
output volume along axis ``order[s]``. Every cross-section is centre-cropped / padded in-plane
to the network's size (:func:`unicoal.data.fit_inplane`) and mapped back; each stage's output is
clamped to [0, 1] (the authors clamp to [-1, 1]).

* :class:`ProvoDataset` (dataset kind ``provogan``): items of the stage being trained at the
  trainer's current step. It needs the trainer (``bind_trainer``, called by ``unicoal train``)
  to know the step and to run the frozen earlier stages over the training volumes when a stage
  starts, so it requires ``run.num_workers: 0`` (the items then follow the step exactly, and
  ``--resume`` recomputes the earlier stages' volumes from the saved weights).
* :class:`ProvoPredictor` (predictor kind ``provogan``): the trained stages over a whole volume.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

from unicoal.data import DataConfig, SliceDataset, fit_inplane, from_network, phase_candidates, restore_inplane, to_network
from unicoal.errors import InputError

__all__ = ["provo_cascade", "ProvoDataset", "ProvoPredictor"]


def provo_cascade(G, volume: np.ndarray, stages: int, *, batch_size: int = 16, device=None, progress: bool = False) -> np.ndarray:
    """Run ProvoGAN stages ``0 .. stages-1`` over ``volume`` [N, A, B] (in [0, 1], on the target
    grid, slice axis first); returns the last stage's volume [N, A, B] in [0, 1] (the input itself
    for ``stages == 0``). The stage networks run in eval mode without gradients."""
    import torch

    cfg = G.cfg
    size = int(cfg.img_resolution)
    device = torch.device(device or next(G.parameters()).device)
    src = np.asarray(volume, dtype=np.float32)
    prev = src
    bar = None
    if progress:
        from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

        bar = tqdm(total=sum(src.shape[cfg.order[s]] for s in range(stages)), desc="provogan", unit="section", file=sys.stderr, dynamic_ncols=True)
    for s in range(stages):
        axis = cfg.order[s]
        xs, ps = np.moveaxis(src, axis, 0), np.moveaxis(prev, axis, 0)
        plane = xs.shape[1:]
        out = np.empty_like(xs)
        net = G.stages[s]
        was = net.training
        net.eval()
        try:
            with torch.no_grad():
                for i in range(0, xs.shape[0], batch_size):
                    sl = slice(i, min(i + batch_size, xs.shape[0]))
                    x = to_network(np.stack([xs[sl], ps[sl]], axis=1))  # [b, 2, A', B']
                    x = torch.from_numpy(fit_inplane(x, size, -1.0)).to(device)
                    y = G.run_stage(s, x).float().clamp(-1.0, 1.0)[:, 0].cpu().numpy()
                    out[sl] = restore_inplane(from_network(y), plane, 0.0)
                    if bar is not None:
                        bar.update(sl.stop - sl.start)
        finally:
            net.train(was)
        prev = np.ascontiguousarray(np.moveaxis(np.clip(out, 0.0, 1.0), 0, axis))
    if bar is not None:
        bar.close()
    return prev


def _source_on_target_grid(lr: np.ndarray, u: np.ndarray, kernel: str) -> np.ndarray:
    """Resample LR slices ``lr`` [M, A, B] at LR-index positions ``u`` [K] (identity when exact)."""
    if lr.shape[0] == len(u) and np.allclose(u, np.arange(len(u)), atol=1e-6):
        return np.asarray(lr, dtype=np.float32)
    from unicoal.data3d import preinterpolate

    return np.clip(preinterpolate(np.asarray(lr, dtype=np.float32), np.asarray(u, dtype=np.float64), kernel), 0.0, 1.0).astype(np.float32)


class ProvoDataset(SliceDataset):
    """Cross-sections of the stage being trained (see the module docstring).

    Index ``i`` fixes a subject and a position ``j`` in ``0 .. L-1`` (``L`` = the subject's
    largest dimension); in stage ``s`` it is the cross-section ``round(j (n - 1) / (L - 1))`` of
    the ``n`` along axis ``order[s]``, so the epoch length is the same in every stage. Items:
    ``x_in`` [2, S, S] (source | previous stage, the source itself in stage 1), ``y`` [1, S, S],
    ``delta`` 0, ``c_in`` / ``c_out``, ``stage``, ``subject``, ``k``.

    ProvoGAN is task-specific: the data section must name one input modality, one output
    modality and one thickness ratio.
    """

    def __init__(self, samplesheet: str | os.PathLike, config: DataConfig, model_cfg, *, seed: int = 0, rows=None, stage: int = 0):
        if len(config.input_modalities) != 1 or len(config.output_modalities) != 1 or len(config.ratios) != 1:
            raise InputError(samplesheet, f"ProvoGAN trains one model per task, got inputs {list(config.input_modalities)}, outputs {list(config.output_modalities)}, ratios {list(config.ratios)}",
                             "set data.task: {input: T1, output: T2, ratio: 1} (one of each)")
        self.model_cfg = model_cfg
        self.fixed_stage = int(stage)
        self._trainer = None
        self._prev: dict[int, np.ndarray] = {}
        self._prev_stage = -1
        self._sources: dict[int, np.ndarray] = {}
        super().__init__(samplesheet, config, seed=seed, rows=rows)

    # --- layout -------------------------------------------------------------------------------
    def _shape(self, subject: int) -> tuple[int, int, int]:
        g = self.subjects[subject].grid
        a, b = g.inplane_shape
        return g.num_slices, a, b

    def _eligible_slices(self, subject: int) -> np.ndarray:
        return np.arange(max(self._shape(subject)), dtype=np.int64)

    # --- the trainer link ---------------------------------------------------------------------
    def bind_trainer(self, trainer) -> None:
        """Called by ``unicoal train``: items follow ``trainer.step``; earlier stages run on ``trainer.G``."""
        self._trainer = trainer

    def current_stage(self) -> int:
        from unicoal.models.baselines.provogan import stage_of

        t = self._trainer
        if t is None:
            return self.fixed_stage
        return stage_of(t.step, t.total_steps, self.model_cfg.stages)

    # --- volumes ------------------------------------------------------------------------------
    def source(self, subject: int) -> np.ndarray:
        """The source volume on the HR (target) grid: thick-slice simulation at the task's ratio,
        resampled back with ``interpolation`` (exact for ratio 1)."""
        vol = self._sources.get(subject)
        if vol is None:
            from unicoal.data import lr_slices
            from unicoal.data3d import lr_layout

            cfg = self.config
            s = self.subjects[subject]
            src = self.volume(subject, cfg.input_modalities[0])
            ratio = float(cfg.ratios[0])
            if ratio == 1.0:
                vol = np.asarray(src, dtype=np.float32)
            else:
                phase = float(phase_candidates(ratio, cfg.profile, cfg.phase_buckets)[0])
                lr_grid, u = lr_layout(s.grid, ratio, phase, cfg.profile)
                lr = lr_slices(src, ratio, phase, cfg.profile, np.arange(lr_grid.num_slices), lr_grid.num_slices)
                vol = _source_on_target_grid(lr, u, self.model_cfg.interpolation)
            self._sources[subject] = vol
        return vol

    def previous(self, subject: int, stage: int) -> np.ndarray:
        """Output of stages ``0 .. stage-1`` for ``subject`` (computed once per stage)."""
        if stage == 0:
            return self.source(subject)
        if self._prev_stage != stage:
            self._prev, self._prev_stage = {}, stage
        vol = self._prev.get(subject)
        if vol is None:
            if self._trainer is None:
                raise RuntimeError("ProvoDataset needs bind_trainer() (or stage=0) to compute the earlier stages")
            vol = provo_cascade(self._trainer.G, self.source(subject), stage, device=self._trainer.device)
            self._prev[subject] = vol
        return vol

    # --- items --------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        cfg = self.config
        subject, j = self.locate(int(index))
        stage = self.current_stage()
        axis = self.model_cfg.order[stage]
        shape = self._shape(subject)
        length, n = max(shape), shape[axis]
        k = int(round(j * (n - 1) / max(1, length - 1)))
        take = lambda v: np.take(v, k, axis=axis)  # noqa: E731
        x = np.stack([take(self.source(subject)), take(self.previous(subject, stage))])
        y = take(self.volume(subject, cfg.output_modalities[0]))[None]
        size = cfg.resolution
        return {
            "x_in": torch.from_numpy(np.ascontiguousarray(fit_inplane(to_network(x.astype(np.float32)), size, -1.0))),
            "y": torch.from_numpy(np.ascontiguousarray(fit_inplane(to_network(np.asarray(y, dtype=np.float32)), size, -1.0))),
            "delta": torch.tensor(0.0),
            "c_in": torch.tensor(cfg.modalities.index(cfg.input_modalities[0]), dtype=torch.int64),
            "c_out": torch.tensor(cfg.modalities.index(cfg.output_modalities[0]), dtype=torch.int64),
            "stage": torch.tensor(stage, dtype=torch.int64),
            "subject": torch.tensor(subject, dtype=torch.int64),
            "k": torch.tensor(k, dtype=torch.int64),
        }

    @classmethod
    def from_train_config(cls, cfg, samplesheet, data_cfg: DataConfig) -> "ProvoDataset":
        """``unicoal.train.loop.build_dataset`` for ``dataset="provogan"``."""
        from unicoal.methods import get_method

        if int(cfg.run.num_workers) != 0:
            raise InputError(None, f"ProvoGAN needs run.num_workers: 0, got {cfg.run.num_workers}", "set run.num_workers: 0 (its items depend on the training step)")
        model_cfg = get_method(cfg.method).model_config(cfg.model)
        return cls(samplesheet, data_cfg, model_cfg, seed=cfg.run.seed)


class ProvoPredictor:
    """ProvoGAN at synthesis time: the trained stages over the source on the target grid."""

    stochastic = False

    def __init__(self, G, *, target: str, modalities: Sequence[str], device: str = "cpu", name: str = "provogan"):
        import torch

        self.G = G.eval().requires_grad_(False)
        self.target = target
        self.modalities = (target,)
        self.known = tuple(modalities)
        self.device = torch.device(device)
        self.name = name
        # stages a run reached (a run stopped early has trained only the first ones)
        self.stages = int(G.stage) + 1

    @classmethod
    def from_checkpoint(cls, spec, ckpt: dict, device: str = "cpu") -> "ProvoPredictor":
        model_cfg = spec.model_config(ckpt["model_config"])
        G, _ = spec.build_models(model_cfg, discriminator=False)
        G.load_state_dict(ckpt["state_dict"])
        G.to(device)
        data = (ckpt.get("train_config") or {}).get("data") or {}
        outputs = data.get("output_modalities") or ckpt["modalities"][-1:]
        return cls(G, target=outputs[0], modalities=ckpt["modalities"], device=device, name=spec.name)

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        if target != self.target:
            raise InputError(None, f"this ProvoGAN model synthesizes {self.target}, not {target}", f"use --to {self.target} or the model of that task")
        u = np.asarray(n, dtype=np.float64) + np.asarray(delta, dtype=np.float64)
        x = _source_on_target_grid(np.clip(volume, 0.0, 1.0), u, self.G.cfg.interpolation)
        return provo_cascade(self.G, x, self.stages, batch_size=batch_size, device=self.device, progress=progress)

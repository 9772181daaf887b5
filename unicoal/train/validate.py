"""Model selection on the validation split (issue #21): ``run.val_every`` steps, the best EMA
generator is kept as ``model_best.pt``.

Every ``run.val_every`` optimiser steps (and at the last step) the current EMA generator
synthesises the target volume of every validation subject (samplesheet rows with
``split == val``) for each validation cell, through the code ``unicoal synthesize`` runs
(:func:`unicoal.infer.synthesize` with the method's predictor built from the in-memory inference
export), and is scored with

    metric = val_psnr_head: PSNR (data range 1, intensities in [0, 1]) over the voxels of the
             target volume above 0.05 (the head), inside the model's in-plane field of view
             (the central ``data.resolution`` x ``data.resolution``), averaged over the subjects
             of each cell, then over the cells.

Validation cells (source, target, thickness ratio): the model's own cell when it trains one
(a task-specific model, ``data.task``); for a model that draws several, one representative cell
per task it trains: CMS = first input modality -> first other output modality at the smallest
ratio, SR = first modality that is both input and output at the largest ratio > 1 (Uni-COAL on
IXI: T1 -> T2 at 1x and T1 -> T1 at 6x). SR/CMSR sources are the validation volumes degraded
with the training slice profile (cached in ``RUN_DIR/val/inputs``).

Writes ``RUN_DIR/val.csv`` (one row per evaluation: step, kimg, the metric, SSIM, one PSNR
column per cell, ``best``), the TensorBoard scalars ``val/psnr_head`` and ``val/ssim_head``, and
``RUN_DIR/model_best.pt`` (inference export of the best EMA generator so far, with a
``selection`` entry). At the end of a run ``train`` copies ``model_best.pt`` to ``model.pt``,
the file synthesis and the pipeline use: the shipped model is the best on validation; the last
weights stay in ``checkpoints/last.pt``. Validation is off when ``run.val_every`` is 0 or the
samplesheet has no ``val`` rows (logged). The test split is never read here (nor by training).

Validation does not disturb training: the global RNG states are saved and restored around it,
so a run with validation takes the same optimiser steps as one without, and ``--resume``
recovers the best score from ``val.csv``.
"""
from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Cell", "validation_cells", "Validator", "HEAD_THRESHOLD", "METRIC"]

HEAD_THRESHOLD = 0.05
METRIC = "val_psnr_head"


@dataclass(frozen=True)
class Cell:
    """One validation cell: source modality, target modality, thickness ratio."""

    source: str
    target: str
    ratio: float

    @property
    def name(self) -> str:
        return f"{self.source}>{self.target}@{self.ratio:g}x"


def validation_cells(data_cfg, tasks) -> list[Cell]:
    """The cells a model trained on ``data_cfg`` is validated on (module doc); ``tasks``: the
    method's capabilities (``MethodSpec.tasks``: a subset of cms, sr, cmsr)."""
    ins, outs, ratios = list(data_cfg.input_modalities), list(data_cfg.output_modalities), sorted(data_cfg.ratios)
    if len(ins) == 1 and len(outs) == 1 and len(ratios) == 1:
        cell = Cell(ins[0], outs[0], ratios[0])
        return [] if cell.source == cell.target and cell.ratio == 1 else [cell]
    cells = []
    other = [(s, t) for s in ins for t in outs if t != s]
    if other and ({"cms", "cmsr"} & set(tasks)):
        s, t = other[0]
        r = ratios[0] if "cms" in tasks or ratios[0] > 1 else next((x for x in ratios if x > 1), None)
        if r is not None:
            cells.append(Cell(s, t, r))
    same = [m for m in ins if m in outs]
    if same and ratios[-1] > 1 and "sr" in tasks:
        cells.append(Cell(same[0], same[0], ratios[-1]))
    return cells


def _central(vol: np.ndarray, size: int, axes=(0, 1)) -> np.ndarray:
    """Crop the in-plane ``axes`` to the central ``size`` (the model's field of view)."""
    out = vol
    for ax in axes:
        n = out.shape[ax]
        if n > size:
            out = np.take(out, np.arange((n - size) // 2, (n - size) // 2 + size), axis=ax)
    return out


class Validator:
    """Validation subjects, cells and the best score of one run (rank 0 evaluates)."""

    def __init__(self, cfg, samplesheet, run_dir, *, enabled: bool = True):
        """Checks only (before the run writes anything); :meth:`begin` opens ``val.csv``."""
        from unicoal.cohort.samplesheet import read_samplesheet, subjects_of
        from unicoal.methods import get_method

        self.cfg = cfg
        self.run = Path(run_dir)
        self.every = int(cfg.run.val_every)
        self.spec = get_method(cfg.method)
        self.cells = validation_cells(cfg.data, self.spec.tasks)
        rows = [r for r in read_samplesheet(samplesheet, check_files=False) if r.split == "val"]
        self.subjects = subjects_of(rows)
        self.reason = None
        if self.every <= 0:
            self.reason = "run.val_every is 0"
        elif not self.subjects:
            self.reason = "the samplesheet has no val rows"
        elif not self.cells:
            self.reason = "no validation cell for this model's training distribution"
        elif not any(c.source in mods and c.target in mods for mods in self.subjects.values() for c in self.cells):
            self.reason = f"no val subject has the modalities of {', '.join(c.name for c in self.cells)}"
        self.active = self.reason is None
        if self.active and cfg.data.split != "train":
            from unicoal.errors import InputError

            raise InputError(samplesheet, f"run.val_every selects on the val split, but data.split is {cfg.data.split!r} "
                                          "(the model would train on the subjects it is selected on)",
                             "train on data.split: train, or set run.val_every: 0")
        self.main = enabled
        self.best: float = -math.inf
        self.best_step: int | None = None
        self.csv = None

    def begin(self, start_step: int = 0) -> None:
        """Open ``val.csv`` (a resumed run keeps its rows up to ``start_step`` and their best)."""
        if self.active and self.main:
            from unicoal.train.logging import CsvLog

            self.csv = CsvLog(self.run / "val.csv", resume_step=start_step if start_step > 0 else None)
            if start_step > 0:
                self._recover()
        if not self.active and self.main and self.every > 0:
            print(f"unicoal train: model selection on validation is off ({self.reason}); model.pt is the last EMA generator", file=sys.stderr)

    # --- bookkeeping ----------------------------------------------------------------------
    def _recover(self) -> None:
        """Best score and step from the ``val.csv`` rows kept on resume."""
        import csv

        path = self.run / "val.csv"
        if not path.exists():
            return
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                score = float(row[METRIC])
                if score > self.best:
                    self.best, self.best_step = score, int(row["step"])

    def due(self, step: int, total: int) -> bool:
        return self.active and (step % self.every == 0 or step == total)

    @property
    def best_path(self) -> Path:
        return self.run / "model_best.pt"

    # --- evaluation -----------------------------------------------------------------------
    def _inputs(self) -> list[tuple[Cell, str, Path, Path]]:
        """(cell, subject, source volume, target volume) of every validation case; SR / CMSR
        sources degraded once to the cell's thickness with the training slice profile."""
        from unicoal.geometry import Grid
        from unicoal.io import load_volume
        from unicoal.preprocess.degrade import degrade_file

        cases = []
        for sid in sorted(self.subjects):
            by_mod = self.subjects[sid]
            for cell in self.cells:
                if cell.source not in by_mod or cell.target not in by_mod:
                    continue
                src = Path(by_mod[cell.source].path)
                if cell.ratio != 1:
                    lr = self.run / "val" / "inputs" / f"{sid}_{cell.source}_{cell.ratio:g}x.nii.gz"
                    if not lr.exists():
                        lr.parent.mkdir(parents=True, exist_ok=True)
                        thickness = Grid.from_image(load_volume(src)[1]).thickness * cell.ratio
                        degrade_file(src, lr, thickness, profile=self.cfg.data.profile)
                    src = lr
                cases.append((cell, sid, src, Path(by_mod[cell.target].path)))
        return cases

    def evaluate(self, trainer) -> dict:
        """Scores of the current EMA generator: ``{METRIC, "ssim_head", cell name: PSNR}``."""
        from unicoal.evaluate.metrics import get_convention, image_metrics
        from unicoal.geometry import Grid
        from unicoal.infer import synthesize
        from unicoal.io import load_volume
        from unicoal.predictors import make_predictor
        from unicoal.train.checkpoint import rng_state, set_rng_state

        conv = get_convention("published")
        export = self.export(trainer)
        state = rng_state()  # building the predictor's network draws from the global RNG
        try:
            loaded = (self.spec, make_predictor(self.spec, export, str(trainer.device)), export)
            tmp = self.run / "val" / "tmp"
            tmp.mkdir(parents=True, exist_ok=True)
            per_cell: dict[str, list[tuple[float, float]]] = {c.name: [] for c in self.cells}
            for cell, sid, src, ref_path in self._inputs():
                out = tmp / f"{sid}_{cell.source}_{cell.target}.nii.gz"
                synthesize([src], out, to=cell.target, source_modalities=[cell.source], like=ref_path, progress=False,
                           device=str(trainer.device), loaded=loaded)
                pred, _ = load_volume(out, allow_empty=True)
                ref, img = load_volume(ref_path)
                axes = tuple(a for a in range(3) if a != Grid.from_image(img).slice_axis)
                size = int(self.cfg.data.resolution)
                ref, pred = _central(ref, size, axes), _central(pred, size, axes)
                m = image_metrics(pred.astype(np.float64), ref.astype(np.float64), conv, mask=ref > HEAD_THRESHOLD)
                per_cell[cell.name].append((m["PSNR"], m["SSIM"]))
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            set_rng_state(state)
        scored = {k: v for k, v in per_cell.items() if v}
        if not scored:
            raise RuntimeError("validation: no subject has the modalities of the validation cells")
        out = {name: float(np.mean([p for p, _ in v])) for name, v in scored.items()}
        out[METRIC] = float(np.mean([out[name] for name in scored]))
        out["ssim_head"] = float(np.mean([np.mean([s for _, s in v]) for v in scored.values()]))
        return out

    def export(self, trainer) -> dict:
        """The inference export (``model.pt`` payload) of the trainer's current EMA generator."""
        from unicoal.train.checkpoint import inference_export

        return inference_export({"config": self.cfg.to_dict(), "model_config": trainer.model_cfg.to_dict(),
                                 "G_ema": trainer.ema.model.state_dict(), "step": trainer.step,
                                 "images_seen": trainer.images_seen})

    def step(self, trainer, tb=None) -> dict | None:
        """Evaluate, log and keep the best (rank 0; other ranks return None)."""
        if not (self.active and self.main):
            return None
        from unicoal.train.checkpoint import save_checkpoint

        scores = self.evaluate(trainer)
        best = scores[METRIC] > self.best
        row = {"step": trainer.step, "kimg": trainer.images_seen / 1000.0, METRIC: scores[METRIC],
               "ssim_head": scores["ssim_head"], **{f"psnr_head {c.name}": scores.get(c.name, math.nan) for c in self.cells},
               "best": int(best)}
        if best:
            self.best, self.best_step = scores[METRIC], trainer.step
            export = self.export(trainer)
            export["selection"] = {"metric": METRIC, "score": self.best, "step": self.best_step, "cells": [c.name for c in self.cells]}
            save_checkpoint(self.best_path, export)
        self.csv.write(row)
        if tb is not None:
            tb.add_scalar("val/psnr_head", scores[METRIC], trainer.step)
            tb.add_scalar("val/ssim_head", scores["ssim_head"], trainer.step)
        return row

    def finish(self) -> str:
        """At the end of a run: ``model.pt`` <- ``model_best.pt``; returns which one ships."""
        if not (self.active and self.main) or not self.best_path.exists():
            return "last"
        from unicoal.io import atomic_path

        with atomic_path(self.run / "model.pt") as tmp:
            shutil.copyfile(self.best_path, tmp)
        return "best"

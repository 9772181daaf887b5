"""Training logs: a CSV of losses per logged step, optional TensorBoard, progress (:mod:`unicoal.progress`).

On ``--resume`` the CSV keeps the rows up to the resumed step and continues from there, so a
run that was killed and resumed has one row per logged step.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

__all__ = ["CsvLog", "TrainLogger"]


class CsvLog:
    """Append-only CSV with a fixed header (new keys after the first row are ignored)."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists() and resume_step is not None:
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                self.fields = list(rows[0].keys())
            keep = [r for r in rows if int(float(r.get("step", 0))) <= resume_step]
            tmp = self.path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as fh:
                if self.fields:
                    w = csv.DictWriter(fh, self.fields)
                    w.writeheader()
                    w.writerows(keep)
            os.replace(tmp, self.path)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row.keys())
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in self.fields})


class TrainLogger:
    """CSV (always), TensorBoard (when installed and enabled) and a progress bar, rank 0 only."""

    def __init__(self, run_dir: str | os.PathLike, *, total: int, start: int, enabled: bool = True, tensorboard: bool = True, progress: bool = True):
        self.enabled = enabled
        self.csv = CsvLog(Path(run_dir) / "log.csv", resume_step=start if start > 0 else None) if enabled else None
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # an environment without the tensorboard package: CSV only
                print("unicoal train: tensorboard not installed; logging to log.csv only", file=sys.stderr)
            else:
                # Steps are logged 1-based (after the update): a run resumed from step `start`
                # logs start + 1 next, so events from start + 1 on (written after the checkpoint
                # by the killed run) are the ones to drop.
                self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start + 1 if start else None)
        self.bar = None
        if enabled and progress:
            from unicoal.progress import progress as bar  # a tqdm bar on a terminal, plain lines in batch logs

            self.bar = bar(total=total, initial=start, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self.csv.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])

    def tick(self, postfix: dict | None = None) -> None:
        if self.bar is not None:
            if postfix:  # before the update, which draws the bar (or writes the plain line)
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()

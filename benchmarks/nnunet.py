"""Benchmark: nnU-Net v2 on the embedded phantom cohort (``unicoal segment`` end to end) on this machine.

Prints seconds for plan + preprocess (integrity check, fingerprint, planning, preprocessing),
training (per epoch and total) and prediction per volume, and the Dice reached on the real test
images (the ``Real`` upper-bound row of the DSC tables).

The phantom T1 volumes carry skull and scalp; the pipeline trains nnU-Net on skull-stripped,
registered images, so this script multiplies each T1 by its ground-truth brain mask first (what
`unicoal skullstrip` produces, without its cost) and predicts the masked test T1s.

    .venv/bin/python benchmarks/nnunet.py --subjects 8 --epochs 24 --iterations 25 --threads 1   # ~20 min here
    .venv/bin/python benchmarks/nnunet.py --device cuda --epochs 50 --iterations 250 --base-features 0
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def skullstripped_sheet(cohort: Path, out: Path) -> Path:
    """T1 x brain mask for every subject; a samplesheet with the same splits and labels."""
    from unicoal.cohort.samplesheet import SampleRow, read_samplesheet, write_samplesheet
    from unicoal.io import load_volume, save_volume

    rows = []
    for r in read_samplesheet(cohort / "samplesheet.csv"):
        if r.modality != "T1":
            continue
        data, img = load_volume(r.path)
        mask, _ = load_volume(r.path.with_name(f"{r.subject}_brainmask.nii.gz"))
        dst = out / f"{r.subject}_T1_brain.nii.gz"
        save_volume(dst, np.where(mask > 0.5, data, 0.0), img.affine)
        save_volume(out / f"{r.subject}_brainmask.nii.gz", (mask > 0.5).astype(np.uint8), img.affine, dtype=np.uint8)
        rows.append(SampleRow(r.subject, "T1", dst, r.label, r.split))
    return write_samplesheet(out / "samplesheet.csv", rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=8, help="phantom subjects (tiny preset; splits 50/25/25)")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--iterations", type=int, default=25, help="training iterations per epoch")
    ap.add_argument("--val-iterations", type=int, default=2)
    ap.add_argument("--base-features", type=int, default=8, help="0 = nnU-Net's planned features (32 ... 320)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--mirroring", action="store_true", help="nnU-Net's mirroring test-time augmentation (8x predict cost)")
    ap.add_argument("--splits", nargs="+", default=["train", "val"], help="splits used for training (default: train val)")
    ap.add_argument("--work", default=None, help="work folder (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON here")
    args = ap.parse_args(argv)

    import torch

    from unicoal.cohort.phantom import generate_cohort
    from unicoal.cohort.samplesheet import read_samplesheet
    from unicoal.evaluate.dice import dice_files
    from unicoal.evaluate.nnunet import PredictConfig, TrainConfig, export_dataset, predict, train

    work = Path(args.work or tempfile.mkdtemp(prefix="unicoal_nnunet_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sheet = generate_cohort(work / "phantom", subjects=args.subjects, preset="tiny", seed=0)
    t_cohort = time.perf_counter() - t0
    (work / "stripped").mkdir(exist_ok=True)
    sheet = skullstripped_sheet(work / "phantom", work / "stripped")
    rows = read_samplesheet(sheet)
    test = [r for r in rows if r.split == "test"]
    n_train = sum(r.split in args.splits for r in rows)

    root = work / "nnunet"
    t0 = time.perf_counter()
    export_dataset(sheet, root, modality="T1", splits=args.splits, dataset_id=990, name="PhantomBench")
    t_export = time.perf_counter() - t0
    cfg = TrainConfig(epochs=args.epochs, iterations_per_epoch=args.iterations, val_iterations=args.val_iterations,
                      device=args.device, threads=args.threads, base_features=args.base_features or None)
    res = train(root, 990, cfg)
    pcfg = PredictConfig(device=args.device, threads=args.threads, use_mirroring=args.mirroring)
    t0 = time.perf_counter()
    preds = predict(root, 990, [r.path for r in test], work / "pred",
                    masks=[r.path.with_name(f"{r.subject}_brainmask.nii.gz") for r in test], config=pcfg)
    t_pred = (time.perf_counter() - t0) / max(1, len(test))
    dices = {r.subject: dice_files(p, r.label)["DSC"].value for r, p in zip(test, preds)}

    plan = sum(v for k, v in res.seconds.items() if k != "train")
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, "
                   f"device {args.device}, threads {args.threads}",
        "cohort": f"phantom tiny, {args.subjects} subjects, train on {n_train} ({'+'.join(args.splits)}), test {len(test)}",
        "schedule": f"{args.epochs} epochs x {args.iterations} iterations (+{args.val_iterations} val), "
                    f"features {'nnU-Net plan' if not args.base_features else f'base {args.base_features}'}",
        "seconds": {"cohort": round(t_cohort, 2), "export": round(t_export, 2),
                    **{k: round(v, 2) for k, v in res.seconds.items()}, "plan_and_preprocess": round(plan, 2),
                    "train_total": round(res.seconds.get("train", float("nan")), 2),
                    "train_per_epoch_mean": round(float(np.mean(res.epoch_seconds)), 2) if res.epoch_seconds else None,
                    "predict_per_volume": round(t_pred, 2)},
        "epoch_seconds": [round(s, 2) for s in res.epoch_seconds],
        "pseudo_dice_per_epoch": [round(d, 4) for d in res.pseudo_dice],
        "dice_real_test": {k: round(v, 4) for k, v in dices.items()},
        "dice_real_test_mean": round(float(np.mean(list(dices.values()))), 4) if dices else None,
        "work": str(work),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

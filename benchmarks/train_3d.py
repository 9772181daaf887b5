#!/usr/bin/env python
"""The 3D baselines after a short CPU budget: held-out 4x SR PSNR on the embedded phantom cohort.

Each of DCSRN, DeepResolve, SynthSR, SC-GAN, ArSSR (tiny presets) and Uni-COAL (tiny config, T2 4x SR task)
trains on the phantom cohort for the same budget of process CPU seconds (``--cpu-seconds``).
Training runs in chunks through ``unicoal.train.loop.train`` and ``--resume``. The trained
model then synthesises the held-out volumes through ``unicoal synthesize --like HR``. The
script prints the PSNR (data range 1, whole volume), mean +- std over the test subjects, beside
linear, cubic and Lanczos interpolation of the same thick-slice inputs.

Data: ``unicoal.cohort.phantom.simulate_subject`` (preset ``tiny``), T2 volumes (axial,
3.28 x 3.28 x 4.2 mm, 58 x 64 x 46), normalised to [0, 1] (``normalize_array``). Subjects 1-3
train and 4-5 test. The 4x inputs are ``unicoal degrade --factor 4`` (``rect`` profile). T2
only, so no registration is needed.

    python benchmarks/train_3d.py --work /tmp/bench3d --cpu-seconds 180
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

METHODS = {
    "deepresolve": "deepresolve_tiny",
    "dcsrn": "dcsrn_tiny",
    "synthsr": "synthsr_tiny",
    "scgan": "scgan_tiny",
    "arssr": "arssr_tiny",
    "unicoal": "tiny",
}
TASK = {"model": {"modalities": ["T2"]}, "data": {"input_modalities": ["T2"], "output_modalities": ["T2"], "ratios": [4]}}


def cohort(work: Path, subjects: int = 5, test: int = 2) -> tuple[Path, list[tuple[Path, Path]]]:
    """Write (or reuse) the normalised T2 cohort; returns the samplesheet and (HR, 4x LR) test pairs."""
    from unicoal.cohort.phantom import simulate_subject
    from unicoal.cohort.samplesheet import SampleRow, write_samplesheet
    from unicoal.io import load_volume, save_volume
    from unicoal.preprocess.degrade import degrade_file
    from unicoal.preprocess.normalize import normalize_array

    rows, pairs = [], []
    for i in range(1, subjects + 1):
        split = "test" if i > subjects - test else "train"
        hr = work / "prep" / f"s{i}_T2.nii.gz"
        if not hr.exists():
            paths = simulate_subject(work / "raw", i, preset="tiny", seed=0)
            data, img = load_volume(paths["T2"])
            save_volume(hr, normalize_array(data)[0], img.affine)
        rows.append(SampleRow(f"s{i}", "T2", hr, None, split))
        if split == "test":
            lr = work / "prep" / f"s{i}_T2_4x.nii.gz"
            if not lr.exists():
                degrade_file(hr, lr, factor=4.0)
            pairs.append((hr, lr))
    return write_samplesheet(work / "samplesheet.csv", rows), pairs


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(pred, 0, 1) - ref) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def evaluate(pairs, out_dir: Path, **synth) -> list[float]:
    import nibabel as nib

    from unicoal.infer import synthesize

    scores = []
    for hr, lr in pairs:
        out = out_dir / f"{hr.name.split('_')[0]}.nii.gz"
        synthesize([lr], out, to="T2", like=hr, source_modalities=["T2"], progress=False, **synth)
        scores.append(psnr(np.asarray(nib.load(str(out)).dataobj, dtype=np.float32), np.asarray(nib.load(str(hr)).dataobj, dtype=np.float32)))
    return scores


def train_for(method: str, sheet: Path, run: Path, cpu_seconds: float, chunk: int, horizon: int) -> dict:
    """Train in chunks of ``chunk`` steps until the process CPU time spent here passes the budget."""
    from unicoal.train.config import deep_merge, load_config
    from unicoal.train.loop import train

    cfg = load_config(METHODS[method], deep_merge(TASK, {"optim": {"total_steps": horizon}, "run": {"checkpoint_every": chunk, "log_every": chunk, "tensorboard": False}}))
    spent, steps = 0.0, 0
    resume = (run / "checkpoints" / "last.pt").exists()
    while spent < cpu_seconds and steps < horizon:
        t = time.process_time()
        res = train(cfg, sheet, run, resume=resume, progress=False, stop_after=chunk)
        spent += time.process_time() - t
        steps, resume = res["step"], True
    return {"steps": steps, "cpu_seconds": round(spent, 1), "batch": cfg.optim.batch_size}


def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--cpu-seconds", type=float, default=180.0, help="training budget per method (process CPU seconds)")
    p.add_argument("--chunk", type=int, default=20, help="steps between budget checks (and checkpoints)")
    p.add_argument("--horizon", type=int, default=3000, help="lr schedule horizon (steps)")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    sheet, pairs = cohort(args.work)
    results = {}
    for kernel in ("linear", "cubic", "lanczos"):
        d = args.work / "out" / kernel
        d.mkdir(parents=True, exist_ok=True)
        results[kernel] = {"psnr": evaluate(pairs, d, method=kernel)}
        print(json.dumps({kernel: results[kernel]}), flush=True)
    for method in args.methods:
        run = args.work / "runs" / method
        info = train_for(method, sheet, run, args.cpu_seconds, args.chunk, args.horizon)
        d = args.work / "out" / method
        d.mkdir(parents=True, exist_ok=True)
        info["psnr"] = evaluate(pairs, d, checkpoint=run / "model.pt")
        results[method] = info
        print(json.dumps({method: info}), flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n4x SR of T2 on {len(pairs)} held-out phantom volumes, PSNR (dB, data range 1, whole volume); budget {args.cpu_seconds:.0f} CPU s per method, {args.threads} thread(s)")
    print("| method | steps (batch) | CPU s | PSNR |")
    print("|---|---|---|---|")
    for name, r in results.items():
        ps = np.asarray(r["psnr"])
        steps = f"{r['steps']} ({r['batch']})" if "steps" in r else "-"
        print(f"| {name} | {steps} | {r.get('cpu_seconds', '-')} | {ps.mean():.2f} +- {ps.std():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

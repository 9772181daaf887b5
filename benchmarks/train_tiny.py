"""Short CPU training of the tiny Uni-COAL config on the embedded phantom cohort.

Reports, on held-out (test-split) subjects:

* the L1 error (intensities in [0, 1]) of the EMA generator on a fixed set of unified-task slices
  (random input/target modality among T1/T2/PD, thickness ratio 1/2/4/6, random grid phase)
  before and after training;
* the 4x super-resolution PSNR (whole volume and inside the head, data range 1) of the trained
  model against linear interpolation, both run through ``unicoal synthesize`` on the HR grid.

Pipeline: ``unicoal.cohort.phantom.generate_cohort`` (raw, unregistered volumes) ->
``unicoal.preprocess.register`` (QuickRigid to the axial T2) -> ``normalize`` -> ``unicoal train``.
The preprocessed cohort is cached in ``--work``.

Usage::

    python benchmarks/train_tiny.py --work /tmp/bench_tiny --steps 300
    python benchmarks/train_tiny.py --model micro --steps 300   # 32 x 32 model, about 10x faster
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MODALITIES = ("T1", "T2", "PD")


def prepare_cohort(work: Path, subjects: int, seed: int) -> Path:
    """Phantoms -> rigid registration to T2 -> [0, 1] normalisation; returns the samplesheet."""
    from unicoal.cohort.phantom import generate_cohort
    from unicoal.cohort.samplesheet import SampleRow, read_samplesheet, subjects_of, write_samplesheet
    from unicoal.preprocess.normalize import normalize_volume
    from unicoal.preprocess.register import RegistrationConfig, register

    sheet = work / "preprocessed" / "samplesheet.csv"
    if sheet.exists():
        return sheet
    raw = generate_cohort(work / "raw", subjects=subjects, preset="tiny", seed=seed)
    rows = []
    for sid, by_mod in subjects_of(read_samplesheet(raw)).items():
        reg = register(by_mod["T2"].path, [by_mod["T1"].path, by_mod["PD"].path], work / "registered" / sid, config=RegistrationConfig(transform="QuickRigid"))
        for mod, path in zip(("T2", "T1", "PD"), (reg.reference, *reg.moving)):
            out = work / "preprocessed" / sid / f"{sid}_{mod}.nii.gz"
            normalize_volume(path, out)
            rows.append(SampleRow(sid, mod, out, None, by_mod[mod].split))
    return write_samplesheet(sheet, rows)


def heldout_l1(G, sheet: Path, cfg, n_items: int = 96, split: str = "test") -> dict:
    """Mean |G(x) - y| in [0, 1] units over fixed unified-task items of ``split``: overall and
    per task (CMS: t = 1, modality changes; SR: same modality; CMSR: both change).
    ``G=None``: the linear-interpolation reference ``(1 - delta) x^n + delta x^(n+1)`` of the
    input slices (m = 4) instead of the network."""
    import torch

    from unicoal.train.loop import build_dataset

    ds = build_dataset(cfg, sheet, split=split)
    ds.seed = 12345  # fixed held-out tasks, independent of the training seed
    idx = np.linspace(0, len(ds) - 1, n_items).round().astype(int)
    errs, tasks = [], []
    if G is not None:
        G.eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s in range(0, len(idx), 16):
            batch = torch.utils.data.default_collate([ds[int(i)] for i in idx[s:s + 16]])
            if G is None:
                d = batch["delta"].view(-1, 1, 1, 1)
                y = (1 - d) * batch["x_in"][:, 1:2] + d * batch["x_in"][:, 2:3]
            else:
                z = torch.randn(len(batch["delta"]), G.cfg.z_dim, generator=gen)
                y = G(batch["x_in"], batch["delta"], batch["c_out"], z)
            errs.append(((y.clamp(-1, 1) - batch["y"]).abs().mean(dim=(1, 2, 3)) / 2).numpy())
            same = (batch["c_in"] == batch["c_out"]).numpy()
            one = (batch["ratio"] == 1).numpy()
            tasks += ["sr" if sm else "cms" if o else "cmsr" for sm, o in zip(same, one)]
    err = np.concatenate(errs)
    tasks = np.array(tasks)
    out = {"all": float(err.mean())}
    for t in ("cms", "sr", "cmsr"):
        if (tasks == t).any():
            out[t] = float(err[tasks == t].mean())
    return out


def _central(vol: np.ndarray, size: int) -> np.ndarray:
    """Crop the in-plane axes (0, 1) to the model's central ``size x size`` field of view."""
    out = vol
    for ax in (0, 1):
        n = out.shape[ax]
        if n > size:
            out = np.take(out, np.arange((n - size) // 2, (n - size) // 2 + size), axis=ax)
    return out


def sr_psnr(model: Path, sheet: Path, work: Path, size: int, ratio: float = 4.0) -> dict:
    """4x SR of every test volume with the model and with linear interpolation, compared on
    the model's in-plane field of view (the whole slice for the tiny config)."""
    from unicoal.cohort.samplesheet import read_samplesheet
    from unicoal.evaluate.metrics import get_convention, image_metrics
    from unicoal.geometry import Grid
    from unicoal.infer import synthesize
    from unicoal.io import load_volume
    from unicoal.preprocess.degrade import degrade_file

    conv = get_convention("published")
    res: dict[str, list] = {"unicoal": [], "linear": [], "unicoal_head": [], "linear_head": []}
    for row in read_samplesheet(sheet):
        if row.split != "test" or row.modality not in MODALITIES:
            continue
        hr, img = load_volume(row.path)
        lr_path = work / "sr" / f"{row.subject}_{row.modality}_lr.nii.gz"
        degrade_file(row.path, lr_path, Grid.from_image(img).thickness * ratio)
        for method in ("unicoal", "linear"):
            out = work / "sr" / f"{row.subject}_{row.modality}_{method}.nii.gz"
            kw = {"checkpoint": model} if method == "unicoal" else {"method": "linear"}
            synthesize([lr_path], out, to=row.modality, source_modalities=[row.modality], like=row.path, progress=False, **kw)
            pred = _central(load_volume(out, allow_empty=True)[0], size)
            ref = _central(hr, size)
            head = ref > 0.05
            res[method].append(image_metrics(pred, ref, conv)["PSNR"])
            res[f"{method}_head"].append(image_metrics(pred, ref, conv, mask=head)["PSNR"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in res.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/unicoal_bench_tiny")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--model", choices=("tiny", "micro"), default="tiny", help="tiny: the tiny config (64 x 64); micro: 32 x 32, 4 layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from unicoal.methods import get_method
    from unicoal.train.config import load_config
    from unicoal.train.loop import train
    from unicoal.train.synthetic import micro_overrides

    work = Path(args.work)
    t0 = time.perf_counter()
    sheet = prepare_cohort(work, args.subjects, args.seed)
    t_prep = time.perf_counter() - t0
    over = micro_overrides(args.batch_size) if args.model == "micro" else {"optim": {"batch_size": args.batch_size}}
    over = {**over, "optim": {**over.get("optim", {}), "total_steps": args.steps}, "run": {**over.get("run", {}), "seed": args.seed, "log_every": 10, "checkpoint_every": 100, "tensorboard": False}}
    cfg = load_config("tiny", over)
    spec = get_method("unicoal")
    torch.manual_seed(args.seed)
    G0, _ = spec.build_models(spec.model_config(cfg.model), discriminator=False)
    l1_before = heldout_l1(G0, sheet, cfg)
    run = work / f"run_{args.model}_{args.steps}"
    if (run / "checkpoints" / "last.pt").exists():
        summary = train(cfg, sheet, run, resume=True, device="cpu")
    else:
        summary = train(cfg, sheet, run, device="cpu")
    trainer = summary["trainer"]
    l1_after = heldout_l1(trainer.ema.model, sheet, cfg)
    l1_linear = heldout_l1(None, sheet, cfg) if cfg.data.num_inputs == 4 else {}
    sr = sr_psnr(run / "model.pt", sheet, work, cfg.data.resolution)
    result = {
        "model": args.model,
        "steps": summary["step"],
        "batch_size": args.batch_size,
        "train_seconds": round(summary["seconds"], 1),
        "seconds_per_step": round(summary["seconds"] / max(1, summary["step"]), 2),
        "prep_seconds": round(t_prep, 1),
        "heldout_l1_before": {k: round(v, 4) for k, v in l1_before.items()},
        "heldout_l1_after": {k: round(v, 4) for k, v in l1_after.items()},
        "heldout_l1_linear_copy": {k: round(v, 4) for k, v in l1_linear.items()},
        "sr4x_psnr_unicoal": [round(v, 2) for v in sr["unicoal"][:2]],
        "sr4x_psnr_linear": [round(v, 2) for v in sr["linear"][:2]],
        "sr4x_psnr_unicoal_head": [round(v, 2) for v in sr["unicoal_head"][:2]],
        "sr4x_psnr_linear_head": [round(v, 2) for v in sr["linear_head"][:2]],
        "sr_volumes": sr["linear"][2],
    }
    (work / f"result_{args.model}_{args.steps}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

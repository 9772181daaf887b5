#!/usr/bin/env python
"""Training throughput of any method: seconds per optimiser step, images per second, peak memory.

One step = the generator phase (L_G: adversarial + L1 + SAM), the discriminator phase
(non-saturating loss + R1) and the EMA update, exactly as ``unicoal train`` runs it
(:class:`unicoal.train.loop.Trainer`), on random slices of the config's resolution, or, with
``--samplesheet``, on batches of the method's own training dataset (any method: the slice-wise
ones, the 3D patch networks, ProvoGAN, ArSSR; ``benchmarks/gpu.sh`` uses a synthetic cohort).

    python benchmarks/train_speed.py --config tiny --batch 8 --steps 5              # CPU
    python benchmarks/train_speed.py --config paper --batch 16 --device cuda        # GPU, fp32 (config)
    python benchmarks/train_speed.py --config paper --device cuda --set run.amp=bf16
    python benchmarks/train_speed.py --config scgan --device cuda --samplesheet cohort/samplesheet.csv --steps 1

Prints one line per step and a final JSON summary (also written to ``--json``). The first step is
a warm-up; the median of the others is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from unicoal.commands.train import parse_overrides
from unicoal.io import write_json
from unicoal.train.config import deep_merge, load_config
from unicoal.train.distributed import DistInfo
from unicoal.train.loop import Trainer


def _dataset_batches(cfg, trainer, samplesheet: Path, batch_size: int):
    """Endless batches of the method's training dataset (``unicoal.train.loop.build_dataset``)."""
    from unicoal.train.loop import build_dataset

    dataset = build_dataset(cfg, str(samplesheet))
    bind = getattr(dataset, "bind_trainer", None)
    if bind is not None:  # ProvoGAN: items follow the trainer's stage
        bind(trainer)
    if len(dataset) < batch_size:
        raise SystemExit(f"{samplesheet}: {len(dataset)} training items for a batch of {batch_size}; use a larger cohort")
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(epoch))
        yield from loader
        epoch += 1


def measure(config: str, args) -> dict:
    """Time ``args.steps`` steps (after one warm-up) of ``config``; returns the summary dict."""
    overrides = parse_overrides(args.set)
    if args.batch:
        overrides = deep_merge(overrides, {"optim": {"batch_size": args.batch}})
    cfg = load_config(config, overrides)
    torch.manual_seed(cfg.run.seed)
    trainer = Trainer(cfg, steps_per_epoch=1000, info=DistInfo(device=args.device))
    mc = trainer.model_cfg
    b, r, m = cfg.optim.batch_size, mc.img_resolution, mc.num_inputs
    dev = trainer.device
    gen = torch.Generator().manual_seed(0)
    if args.samplesheet is not None:
        batches = _dataset_batches(cfg, trainer, args.samplesheet, b)
    else:
        random_batch = {
            "x_in": torch.rand(b, m, r, r, generator=gen) * 2 - 1,
            "y": torch.rand(b, 1, r, r, generator=gen) * 2 - 1,
            "delta": torch.rand(b, generator=gen),
            "c_out": torch.randint(0, len(mc.modalities), (b,), generator=gen),
        }
        batches = iter(lambda: random_batch, None)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    n_g = sum(q.numel() for q in trainer.G.parameters())
    n_d = sum(q.numel() for q in trainer.D.parameters()) if trainer.D is not None else 0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    print(f"{config}: G {n_g / 1e6:.2f} M, D {n_d / 1e6:.2f} M parameters; batch {b} x {m} x {r} x {r} on {dev} "
          f"(amp {cfg.run.amp if dev.type == 'cuda' else 'none'}, SAM weight {cfg.loss.sam_weight:g}, "
          f"R1 every {cfg.loss.r1_interval} step(s))", file=sys.stderr)
    times = []
    for i in range(args.steps + 1):
        sync()
        t = time.perf_counter()
        stats = trainer.train_step(next(batches))
        sync()
        times.append(time.perf_counter() - t)
        print(f"  step {i}{' (warm-up)' if i == 0 else ''}: {times[-1]:.3f} s, {b / times[-1]:.2f} img/s, "
              f"G_loss {stats.get('G_loss', float('nan')):.3f}", file=sys.stderr)
    timed = sorted(times[1:])
    med = timed[len(timed) // 2]
    info = {"config": config, "method": cfg.method, "data": "dataset" if args.samplesheet else "random", "device": str(dev),
            "batch": b, "resolution": r, "params_G": n_g, "params_D": n_d,
            "amp": cfg.run.amp if dev.type == "cuda" else "none", "sam_weight": cfg.loss.sam_weight,
            "threads": torch.get_num_threads(), "cores": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
            "s_per_step_median": med, "s_per_step_best": timed[0], "images_per_s": b / med,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}
    if dev.type == "cuda":
        info["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        info["gpu"] = torch.cuda.get_device_name()
    print(f"{config}: seconds per step: {med:.3f} (best {timed[0]:.3f}); images per second: {info['images_per_s']:.2f}")
    print(f"{config}: peak RSS memory: {info['peak_rss_mib']:.0f} MiB"
          + (f"; peak GPU memory: {info['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in info else ""))
    del trainer, batches
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", nargs="+", default=["tiny"],
                   help="packaged config name(s) or YAML path(s); several are measured one after the other in this process")
    p.add_argument("--batch", type=int, default=None, help="global batch (default: the config's)")
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (every config)")
    p.add_argument("--samplesheet", type=Path, default=None,
                   help="draw batches from the method's training dataset on this cohort (default: random slices)")
    p.add_argument("--keep-going", action="store_true", help="a config that fails is reported (error) and the next one runs")
    p.add_argument("--json", type=Path, default=None, help="the summary (a list with several configs)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = []
    for config in args.config:
        try:
            out.append(measure(config, args))
        except Exception as err:  # noqa: BLE001 - --keep-going: one method's failure is a result, not the end
            if not args.keep_going:
                raise
            print(f"{config}: FAILED ({type(err).__name__}: {err})", file=sys.stderr)
            out.append({"config": config, "device": args.device, "error": f"{type(err).__name__}: {str(err)[:300]}"})
        if args.json:  # after every config: a run stopped by a time limit keeps what it measured
            write_json(args.json, out[0] if len(args.config) == 1 else out)
    print(json.dumps(out[0] if len(args.config) == 1 else out))
    return 1 if any("error" in o for o in out) else 0  # --keep-going: every config ran, some failed


if __name__ == "__main__":
    raise SystemExit(main())

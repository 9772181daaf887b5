#!/usr/bin/env python
"""Uni-COAL generator speed: seconds per output slice, peak memory, parameter count.

CPU (the issue's target: <= 4.5 s per 256 x 256 slice on the project's 2-core machine, paper
config, batch 4, fp32, inference mode):

    python benchmarks/generator_speed.py                      # paper config, batch 4, all cores
    python benchmarks/generator_speed.py --threads 1 --config tiny
    python benchmarks/generator_speed.py --allocator default   # glibc default: freed memory unmapped (slower)

GPU: also seconds per 256 x 256 x 150 volume (150 slices in batches), in fp32 (the default, as
the authors run the network) or under bf16 autocast (``benchmarks/gpu.sh`` runs both):

    python benchmarks/generator_speed.py --device cuda --dtype fp32 --batch 16 --volume 150
    python benchmarks/generator_speed.py --device cuda --dtype bf16 --batch 16 --volume 150

Prints one line per measurement and a final JSON summary (also written to ``--json``).
The machine may be shared: the first repeat is a warm-up, the minimum of the rest is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from unicoal.io import write_json
from unicoal.models.config import UniCoalConfig
from unicoal.models.generator import Generator
from unicoal.nn.allocator import keep_freed_memory
from unicoal.nn.layers import AliasFreeLayer, VanillaLayer


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=["paper", "tiny"], default="paper")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes (the first is a warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--modconv", choices=["batched", "grouped"], default="batched")
    p.add_argument("--volume", type=int, default=0, help="also time a volume of this many slices")
    p.add_argument("--allocator", choices=["tuned", "default"], default="tuned",
                   help="tuned: keep freed memory in the process (unicoal.nn.allocator, as synthesize and "
                        "train do); default: the C library's behaviour")
    p.add_argument("--flops", action="store_true", help="count FLOPs of one forward (slow on CPU)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        p.error("--batch and --repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = keep_freed_memory() if args.allocator == "tuned" else False
    device = torch.device(args.device)
    cfg = UniCoalConfig.paper() if args.config == "paper" else UniCoalConfig.tiny()
    torch.manual_seed(0)
    G = Generator(cfg).eval().to(device)
    for m in G.modules():
        if isinstance(m, (AliasFreeLayer, VanillaLayer)):
            m.modconv_mode = args.modconv
    n_params = sum(p.numel() for p in G.parameters())
    r, b = cfg.img_resolution, args.batch
    x = torch.rand(b, cfg.num_inputs, r, r, device=device) * 2 - 1
    delta = torch.rand(b, device=device)
    c = torch.arange(b, device=device) % cfg.num_modalities
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    info = {"config": args.config, "device": str(device), "dtype": args.dtype, "batch": b,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "params_G": n_params,
            "modconv": args.modconv, "allocator_tuned": allocator, "torch": torch.__version__}
    print(f"G parameters: {n_params / 1e6:.2f} M; {b} x {cfg.num_inputs} x {r} x {r} on {device} "
          f"({args.dtype}, {info['threads']} threads, 1-min load {info['load_avg_1min']:.1f})", file=sys.stderr)
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode
        with torch.inference_mode(), autocast, FlopCounterMode(display=False) as fc:
            G(x, delta, c)
        info["gflop_per_slice"] = fc.get_total_flops() / 1e9 / b
    times, cpu_times = [], []
    with torch.inference_mode(), autocast:
        for i in range(args.repeats + 1):
            sync()
            t, c0 = time.perf_counter(), time.process_time()
            G(x, delta, c)
            sync()
            times.append(time.perf_counter() - t)
            cpu_times.append(time.process_time() - c0)
            print(f"  pass {i}{' (warm-up)' if i == 0 else ''}: {times[-1]:.2f} s = {times[-1] / b:.3f} s/slice "
                  f"(CPU time {cpu_times[-1] / b:.3f} s/slice)", file=sys.stderr)
        best = min(times[1:])
        info["s_per_slice"] = best / b
        info["s_per_slice_median"] = sorted(times[1:])[len(times[1:]) // 2] / b
        # Process CPU time is insensitive to other processes sharing the cores (wall time is not);
        # with --threads 1, CPU time / cores estimates the wall time of an otherwise idle machine.
        info["cpu_s_per_slice"] = min(cpu_times[1:]) / b
        if "gflop_per_slice" in info:
            info["gflop_per_s"] = info["gflop_per_slice"] / info["s_per_slice"]
        if args.volume:
            sync()
            t = time.perf_counter()
            done = 0
            while done < args.volume:
                k = min(b, args.volume - done)
                G(x[:k], delta[:k], c[:k])
                done += k
            sync()
            info["volume_slices"] = args.volume
            info["s_per_volume"] = time.perf_counter() - t
    info["peak_rss_mib"] = _peak_rss_mib()
    if device.type == "cuda":
        info["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        info["gpu"] = torch.cuda.get_device_name()
    print(f"seconds per output slice: {info['s_per_slice']:.3f}  (median {info['s_per_slice_median']:.3f})")
    print(f"CPU time per output slice: {info['cpu_s_per_slice']:.3f} s ({info['threads']} threads; "
          f"/ {os.cpu_count()} cores = {info['cpu_s_per_slice'] / os.cpu_count():.3f} s if the cores were idle"
          f"{' and scaling were perfect' if info['threads'] == 1 else ''})")
    print(f"peak RSS memory: {info['peak_rss_mib']:.0f} MiB")
    print(f"parameters (G): {n_params / 1e6:.2f} M")
    if "s_per_volume" in info:
        print(f"seconds per {args.volume}-slice volume: {info['s_per_volume']:.2f}")
    print(json.dumps(info))
    if args.json:
        write_json(args.json, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

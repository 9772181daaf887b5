"""``unicoal train``: train Uni-COAL (or a learned baseline) from a YAML config."""
from __future__ import annotations

HELP = "train a synthesis model (Uni-COAL or a learned baseline) from a YAML config and a preprocessed samplesheet"


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="training config: a YAML path or a packaged name (paper, tiny, task_cms, task_sr, task_cmsr, task_one)")
    p.add_argument("--samplesheet", help="preprocessed samplesheet CSV (subject,modality,path[,label][,split]; all modalities of a subject on one grid, intensities in [0, 1])")
    p.add_argument("--out", help="run directory (config.json, log.csv, checkpoints/last.pt, model.pt)")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/checkpoints/last.pt (also after SIGUSR2/SIGTERM: those save it after the current "
                        "step and exit 140/143)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default); fp32 on CUDA (run.amp: bf16 for bf16 autocast)")
    p.add_argument("--max-steps", type=int, default=None, help="total optimiser steps (overrides optim.total_steps; the lr schedule uses this horizon)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides run.seed)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. --set optim.batch_size=8 --set data.task.input=T2 (YAML values; repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items, *, max_steps=None, seed=None) -> dict:
    """``["a.b=1", ...]`` -> nested dict (values parsed as YAML)."""
    import yaml

    from unicoal.errors import InputError

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise InputError(None, f"--set {item!r} is not KEY=VALUE", "e.g. --set optim.batch_size=8")
        key, value = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        if not parts:
            raise InputError(None, f"--set {item!r} has an empty key", "e.g. --set optim.batch_size=8")
        node = out
        for k in parts[:-1]:
            node = node.setdefault(k, {})
        node[parts[-1]] = yaml.safe_load(value)
    if max_steps is not None:
        if max_steps < 1:
            raise InputError(None, f"--max-steps must be >= 1, got {max_steps}", "pass a positive number of steps")
        out.setdefault("optim", {})["total_steps"] = max_steps
    if seed is not None:
        out.setdefault("run", {})["seed"] = seed
    return out


def run(args) -> int:
    import json
    import sys

    from unicoal.errors import InputError
    from unicoal.train.config import load_config

    cfg = load_config(args.config, parse_overrides(args.set, max_steps=args.max_steps, seed=args.seed))
    if args.dry_run:
        from unicoal.train.schedule import describe_lr

        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        o = cfg.optim
        print(f"unicoal train: {describe_lr(o.lr_g, o.lr_d, o.decay_start, o.epochs)}", file=sys.stderr)
        return 0
    if not args.samplesheet or not args.out:
        raise InputError(None, "--samplesheet and --out are required to train", "pass both (or --dry-run to only print the config)")
    from unicoal.train.loop import train

    import os

    summary = train(cfg, args.samplesheet, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
    if summary.get("signal"):  # SIGUSR2 / SIGTERM (a time limit): saved and logged, exit 128 + signum
        from unicoal.train.signals import exit_code

        return exit_code(summary["signal"])
    if os.environ.get("RANK", "0") != "0":  # torchrun: one summary line, from rank 0
        return 0
    print(f"{args.out}: trained to step {summary['step']}/{summary['total_steps']} ({summary['images_seen']} images, {summary['seconds']:.1f} s); model: {args.out}/model.pt", file=sys.stderr)
    return 0

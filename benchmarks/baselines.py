#!/usr/bin/env python
"""Baseline networks: parameters, CPU seconds per training step and per synthesized volume.

For every row of :data:`ROWS` (one per method; add yours there):

* parameters of G and D at the published size, and how they compare with the figure the
  original paper (or its authors' code) states, when one exists;
* CPU seconds per optimiser step (G phase, D phase, EMA: ``Trainer.train_step`` exactly as
  ``unicoal train`` runs it) at the tiny and the published size, batch 1, on random slices;
* CPU seconds to synthesize one 256 x 256 x 150 volume at the published size through the
  method's predictor (``unicoal.predictors``; batch of 8 slices; randomly initialised weights:
  speed does not depend on them).

    python benchmarks/baselines.py                                   # every row
    python benchmarks/baselines.py --methods pix2pix pgan --steps 2 --json /tmp/baselines.json
    python benchmarks/baselines.py --skip-paper-train --skip-inference  # quick: sizes and tiny steps

The first training step is a warm-up; the median of the ``--steps`` others is reported. Prints a
Markdown table (for docs) and one JSON object per method.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Row:
    """One method of the benchmark.

    Attributes:
        method: registry name (``unicoal methods``).
        tiny / paper: packaged configs of the tiny and the published size.
        stated: parameter counts ``{"G": n, "D": n}`` stated by the original paper or its code
            (``None``: nothing stated to compare with).
        stated_by: where ``stated`` comes from, and what differs (e.g. RGB instead of grey channels).
        stated_delta: ``{"G": n, "D": n}`` parameters the stated configuration has on top of ours
            (the channel difference), so ``ours + delta == stated`` is the check.
        overrides: config overrides for the benchmark (e.g. a smaller volume for a 3D method).
        batch: ``(model config, torch.Generator) -> training batch`` for methods whose items are
            not single slices (3D patches; default: one slice item, :func:`slice_batch`).
        volume_scale: thickness ratio of the synthesized volume (the source has
            ``floor(150 / scale)`` slices; 1: a same-grid volume).
        skip_paper_train: why no published-size training step runs here (then none is timed).
        volume_fraction: synthesize only this fraction of the 150 target slices and divide the
            time by it (an estimate, printed as such), for predictors too slow for a whole
            256 x 256 x 150 volume on a shared CPU.
        skip_inference: why no published-size volume is synthesized here (then none is timed).
        prepare: ``(G) -> None`` applied to the fresh generator before the volume is synthesized
            (e.g. ResViT: transformer branches on; ProvoGAN: all three stages marked trained).
    """

    method: str
    tiny: str
    paper: str
    stated: dict | None = None
    stated_by: str = "the paper states no parameter count"
    stated_delta: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    batch: Callable | None = None
    volume_scale: float = 1.0
    skip_paper_train: str | None = None
    volume_fraction: float = 1.0
    skip_inference: str | None = None
    prepare: Callable | None = None


def slice_batch(mc, gen) -> dict:
    """One slice item of a slice-wise model config (``img_resolution``, ``num_inputs``)."""
    r, m = mc.img_resolution, mc.num_inputs
    return {"x_in": torch.rand(1, m, r, r, generator=gen) * 2 - 1, "y": torch.rand(1, 1, r, r, generator=gen) * 2 - 1,
            "delta": torch.zeros(1), "c_out": torch.zeros(1, dtype=torch.long)}


def patch3d_batch(mc, gen) -> dict:
    """One 3D patch item on the target grid (``patch_size``; SC-GAN and the patch3d methods)."""
    d, h, w = mc.patch_size
    return {"x_in": torch.rand(1, 1, d, h, w, generator=gen) * 2 - 1, "y": torch.rand(1, 1, d, h, w, generator=gen) * 2 - 1,
            "delta": torch.zeros(1, d), "c_out": torch.zeros(1, dtype=torch.long), "mask": torch.ones(1, 1, d, h, w)}


def capped_patch3d_batch(limit: int) -> Callable:
    """:func:`patch3d_batch` with every patch side capped at ``limit`` (a fully convolutional 3D
    network whose published patch is too large for a shared CPU, e.g. SynthSR's 160^3)."""
    from types import SimpleNamespace

    return lambda mc, gen: patch3d_batch(SimpleNamespace(patch_size=tuple(min(int(p), limit) for p in mc.patch_size)), gen)


def implicit_batch(mc, gen) -> dict:
    """One ArSSR item: an ``L x S x S`` LR patch and ``K`` random HR query voxels inside it."""
    k, L, s = mc.query_voxels, mc.lr_slices, mc.img_resolution
    coords = torch.rand(1, k, 3, generator=gen) * torch.tensor([L - 1.0, s - 1.0, s - 1.0])
    return {"x_in": torch.rand(1, 1, L, s, s, generator=gen) * 2 - 1, "y": torch.rand(1, 1, k, generator=gen) * 2 - 1,
            "delta": coords, "c_out": torch.zeros(1, dtype=torch.long)}


def provogan_batch(mc, gen) -> dict:
    """One ProvoGAN cross-section item: ``x_in = [source | previous stage]`` (2 channels)."""
    r = mc.img_resolution
    return {"x_in": torch.rand(1, 2, r, r, generator=gen) * 2 - 1, "y": torch.rand(1, 1, r, r, generator=gen) * 2 - 1,
            "delta": torch.zeros(1), "c_out": torch.zeros(1, dtype=torch.long)}


def _resvit_on(G) -> None:
    G.transformer_on.fill_(1)  # the fine-tuned network (CNN + transformer branches)


def _provogan_all_stages(G) -> None:
    G.stage.fill_(G.cfg.stages - 1)  # synthesis runs every trained stage: all three


ROWS: list[Row] = [
    # 3D methods on the target grid (unicoal/models/baselines/{dcsrn,deepresolve,synthsr}.py): batch = one
    # patch (tiny 8 x 16 x 16; published DeepResolve 32^3, DCSRN 64^3, SynthSR 64^3 instead of its 160^3);
    # volume at 4x: the predictor's pre-interpolation + sliding windows (DeepResolve, SynthSR: whole volume), estimated
    # from a 256 x 256 x 38 slab (x 150 / 38; DeepResolve: 15 slices, x 10)
    Row("deepresolve", "deepresolve_tiny", "deepresolve", batch=patch3d_batch, volume_scale=4.0, volume_fraction=0.1, stated={"G": 1_995_329},
        stated_by="the paper states none; the Uni-COAL authors' DeepResolve(n_feats=64, n_blocks=18) (zhiyuns/UniCOAL models/networks/deepresolve.py)"),
    Row("dcsrn", "dcsrn_tiny", "dcsrn", batch=patch3d_batch, volume_scale=4.0, volume_fraction=0.25,
        stated_by="no count checked against the paper (k = 24, 4 units; counted here: 219,985)"),
    Row("synthsr", "synthsr_tiny", "synthsr", batch=capped_patch3d_batch(64), volume_scale=4.0, volume_fraction=0.25, stated={"G": 13_239_841},
        stated_by="the authors' unet (BBillot/SynthSR ext/neuron/models.py, batch_norm=-1 in SynthSR/training.py): "
                  "13,239,841 trainable (5 levels, 24 features, batch norm after every level)"),
    Row("pix2pix", "pix2pix_tiny", "pix2pix", stated={"G": 54_414_019, "D": 2_768_705},
        stated_by="the paper states none; the authors' code prints 54.414 M (unet_256) and 2.769 M (basic PatchGAN) for RGB (3 -> 3 channels)",
        stated_delta={"G": 6_146, "D": 4_096}),
    Row("pgan", "pgan_tiny", "pgan", stated={"G": 11_378_179},
        stated_by="the paper states none; the pix2pix code base prints 11.378 M for resnet_9blocks on RGB (3 -> 3 channels)",
        stated_delta={"G": 6_274}, volume_fraction=0.2),
    Row("autogan", "autogan_tiny", "autogan", volume_fraction=0.2,
        stated_by="the paper states no count we could check; the G count depends on the searched cell sequence, which is not "
                  "released (ours: model.arch pfpfpfpfpfpf; + 160 parameters for the k-space input channel)"),
    # ArSSR: batch = one 10 x 40 x 40 LR patch (tiny 6 x 16 x 16) with 8000 (512) HR query voxels; volume at 4x
    Row("arssr", "arssr_tiny", "arssr", batch=implicit_batch, volume_scale=4.0, stated={"G": 6_283_460},
        stated_by="the paper states none; the authors' code (iwuqing/ArSSR encoder.py RDN, feature_dim 128; decoder.py MLP 8 x 256) builds the same layers",
        skip_inference="a 256 x 256 x 150 volume at 4x is about 69 TFLOP (7 windows of 10 x 256 x 256 LR slices, 7.8 TFLOP each, "
                       "plus 14 TFLOP of decoding; torch FlopCounterMode): tens of minutes on one CPU thread"),
    # SC-GAN: batch = one 3D patch (published 256^3: the authors' whole volumes; tiny 8 x 16 x 16); volume at 1x (CMS)
    Row("scgan", "scgan_tiny", "scgan", batch=patch3d_batch, stated={"G": 132_851_848, "D": 21_667_715}, stated_delta={"D": 2},
        stated_by="the authors' layer table (Haoyulance/SC-GAN src/utils/generator.py, discriminator.py; no biases, batch norm); "
                  "their D ends with a batch norm (2 parameters) that ours leaves out",
        skip_paper_train="a 256^3 step is about 18.4 TFLOP (torch FlopCounterMode) and needs tens of GB: not run on a shared 2-core CPU"),
    # ResViT: steps timed in the fine-tuning phase (transformer branches on from step 0: the costlier phase)
    Row("resvit", "resvit_tiny", "resvit", overrides={"model": {"pretrain_steps": 0}}, prepare=_resvit_on,
        stated={"G": 123_447_809, "D": 2_766_657}, stated_delta={"G": -3_136, "D": -1_024},
        stated_by="the paper states none; the authors' code (icon-lab/ResViT residual_transformers.ResViT, Res-ViT-B_16, 256 px; "
                  "NLayerDiscriminator --norm batch) for resvit_many (3 masked input channels): ours reads 1 source + 3 target "
                  "planes (one 7 x 7 x 64 filter set more in G, one 4 x 4 x 64 more in D); with one input channel "
                  "(resvit_one) theirs and ours (condition: false) are both 123,441,537 / 2,764,609"),
    # ProvoGAN: one stage-1 cross-section per step; the volume runs all three stages (CMS, 1x)
    Row("provogan", "provogan_tiny", "provogan", batch=provogan_batch, prepare=_provogan_all_stages, stated={"G": 4_811_235, "D": 1_175_595},
        stated_by="the paper states none; the authors' code (icon-lab/ProvoGAN models/networks.py: resnet_9blocks + basic PatchGAN, "
                  "--norm batch, ngf = ndf = 24 from options/base_options.py) for one source contrast (input_nc 1 / 2 / 2): "
                  "4,811,235 / 1,175,595 over the three stages (sample_run.sh's two sources: 4,814,763 / 1,176,747)"),
]


def _trainer(config: str, overrides: dict):
    from unicoal.train.config import deep_merge, load_config
    from unicoal.train.distributed import DistInfo
    from unicoal.train.loop import Trainer

    cfg = load_config(config, deep_merge({"optim": {"batch_size": 1}, "run": {"tensorboard": False}}, overrides))
    torch.manual_seed(cfg.run.seed)
    return cfg, Trainer(cfg, steps_per_epoch=1000, info=DistInfo(device="cpu"))


def _params(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def step_seconds(config: str, steps: int, overrides: dict, batch_fn: Callable | None = None) -> tuple[float, dict]:
    """Median seconds per ``train_step`` (batch 1) after one warm-up step; also the parameter counts."""
    cfg, trainer = _trainer(config, overrides)
    mc = trainer.model_cfg
    r, m = mc.img_resolution, mc.num_inputs
    gen = torch.Generator().manual_seed(0)
    batch = (batch_fn or slice_batch)(mc, gen)
    times, cpu = [], []
    for _ in range(steps + 1):
        t, c = time.perf_counter(), time.process_time()
        trainer.train_step(batch)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    timed = sorted(times[1:])
    counts = {"G": _params(trainer.G), "D": _params(trainer.D), "resolution": r, "num_inputs": m,
              "cpu_s_per_step": sorted(cpu[1:])[len(cpu[1:]) // 2],  # this process's CPU time: robust to a loaded machine
              "perceptual": getattr(trainer.perceptual, "source", None) if getattr(trainer, "perceptual", None) is not None else None}
    return timed[len(timed) // 2], counts


def params_only(config: str, overrides: dict) -> dict:
    from unicoal.methods import get_method
    from unicoal.train.config import load_config

    cfg = load_config(config, overrides)
    spec = get_method(cfg.method)
    G, D = spec.build_models(spec.model_config(cfg.model), discriminator=cfg.loss.adversarial)
    return {"G": _params(G), "D": _params(D)}


VOLUME_CPU_SECONDS: list[float] = []  # process CPU seconds of each volume_seconds call


def volume_seconds(config: str, overrides: dict, shape=(150, 256, 256), batch_size: int = 8, scale: float = 1.0, prepare: Callable | None = None) -> float:
    """Seconds for the published-size predictor to synthesize one volume of ``shape`` (slices first)
    from a source with ``scale`` times thicker slices (``floor(slices / scale)`` of them)."""
    from unicoal.methods import get_method
    from unicoal.predictors import make_predictor
    from unicoal.train.checkpoint import inference_export
    from unicoal.train.config import load_config

    cfg = load_config(config, overrides)
    spec = get_method(cfg.method)
    model_cfg = spec.model_config(cfg.model)
    torch.manual_seed(0)
    G, _ = spec.build_models(model_cfg, discriminator=False)
    if prepare is not None:
        prepare(G)
    ckpt = inference_export({"config": cfg.to_dict(), "model_config": model_cfg.to_dict(), "G_ema": G.state_dict(), "step": 0, "images_seen": 0})
    pred = make_predictor(spec, ckpt, "cpu")
    count = max(1, int(shape[0] // scale))
    vol = np.random.default_rng(0).random((count, *shape[1:]), dtype=np.float32)
    u = (np.arange(shape[0]) + 0.5) / scale - 0.5  # target slice centres in source index units
    n = np.floor(u).astype(np.int64)
    delta = u - n
    target = list(cfg.data.output_modalities)[0]
    t, c = time.perf_counter(), time.process_time()
    out = pred.predict(vol, n, delta, target, batch_size=batch_size)
    elapsed = time.perf_counter() - t
    VOLUME_CPU_SECONDS.append(time.process_time() - c)  # this process's CPU time (robust to a loaded machine)
    assert out.shape == shape, out.shape
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="*", default=None, help="rows to run (default: all)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps after one warm-up")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-paper-train", action="store_true", help="no published-size training step")
    p.add_argument("--skip-inference", action="store_true", help="no 256 x 256 x 150 synthesis")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from unicoal.nn.allocator import keep_freed_memory

    keep_freed_memory()
    rows = [r for r in ROWS if args.methods is None or r.method in args.methods]
    unknown = set(args.methods or ()) - {r.method for r in ROWS}
    if unknown:
        p.error(f"no benchmark row for {sorted(unknown)}; rows: {', '.join(r.method for r in ROWS)}")
    results = []
    for row in rows:
        res = {"method": row.method, "threads": args.threads, "cores": os.cpu_count(), "load_avg_1min_start": os.getloadavg()[0]}
        res["tiny_s_per_step"], tiny = step_seconds(row.tiny, args.steps, row.overrides, row.batch)
        res["tiny_params"] = {"G": tiny["G"], "D": tiny["D"]}
        res["tiny_cpu_s_per_step"] = tiny["cpu_s_per_step"]
        if row.skip_paper_train:
            res["paper_train_skipped"] = row.skip_paper_train
        if args.skip_paper_train or row.skip_paper_train:
            res["paper_params"] = params_only(row.paper, row.overrides)
        else:
            res["paper_s_per_step"], paper = step_seconds(row.paper, args.steps, row.overrides, row.batch)
            res["paper_params"] = {"G": paper["G"], "D": paper["D"]}
            res["perceptual"] = paper["perceptual"]
            res["paper_cpu_s_per_step"] = paper["cpu_s_per_step"]
        if row.stated:
            res["stated"] = row.stated
            res["matches_stated"] = all(res["paper_params"][k] + row.stated_delta.get(k, 0) == v for k, v in row.stated.items())
        res["stated_by"] = row.stated_by
        if row.skip_inference:
            res["inference_skipped"] = row.skip_inference
        if not args.skip_inference and not row.skip_inference:
            slices = max(1, int(round(150 * row.volume_fraction)))
            sec = volume_seconds(row.paper, row.overrides, shape=(slices, 256, 256), scale=row.volume_scale, prepare=row.prepare)
            res["s_per_volume_256x256x150"] = sec * 150 / slices
            res["cpu_s_per_volume_256x256x150"] = VOLUME_CPU_SECONDS[-1] * 150 / slices
            if slices != 150:
                res["volume_estimated_from"] = f"256 x 256 x {slices} slab: {sec:.1f} s x 150 / {slices}"
        import resource

        # peak resident memory of this process so far (run one --methods row per process for a per-method peak)
        res["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        res["load_avg_1min_end"] = os.getloadavg()[0]
        results.append(res)
        print(json.dumps(res), flush=True)
    print("\n(wall seconds; process CPU seconds in brackets, which a loaded machine inflates less)")
    print("\n| method | G / D params (published) | matches stated | s/step tiny (b=1) | s/step published (b=1) | s / 256x256x150 volume |")
    print("|---|---|---|---|---|---|")
    for r in results:
        pp = r["paper_params"]
        match = "n/a" if "matches_stated" not in r else ("yes" if r["matches_stated"] else "NO")
        fmt = lambda k, c: (f"{r[k]:.2f}" + (f" ({r[c]:.2f})" if c in r else "")) if k in r else "-"  # noqa: E731
        print(f"| {r['method']} | {pp['G']:,} / {pp['D']:,} | {match} | {fmt('tiny_s_per_step', 'tiny_cpu_s_per_step')} | "
              f"{fmt('paper_s_per_step', 'paper_cpu_s_per_step')} | {fmt('s_per_volume_256x256x150', 'cpu_s_per_volume_256x256x150')} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r.get("matches_stated", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The training loop (paper Sec. III-G, IV-B): ``unicoal train`` calls :func:`train`.

One optimiser step = a generator phase (``L_G`` of eq. 7, Adam on G) followed by a
discriminator phase (non-saturating loss + R1 of eq. 8, Adam on D), then the lr schedule,
the EMA of G and the counters. ``optim.update_order`` puts D first where the method's authors
do (:data:`unicoal.train.config.UPDATE_ORDERS`: the pix2pix code base updates D, then G, from
one forward of G), and a generator with ``optim_phases`` splits the run into phases that each
restart Adam (:mod:`unicoal.train.schedule`). Batches are slices drawn by :class:`unicoal.data.SliceDataset`
in a per-epoch permutation (``DistributedSampler`` semantics), so a step's data depend only on
(seed, step): a resumed run reads exactly the batches an uninterrupted run would.

Networks plug in through :mod:`unicoal.methods` (``model_config``, ``build_models``) and the
call convention ``G(x_in, delta, c_out, z) -> [B, 1, S, S]`` and ``D(x_in, y, delta, c_out)
-> [B]`` (see docs/training.md).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from unicoal.errors import InputError
from unicoal.io import write_json
from unicoal.train.checkpoint import TRAIN_FORMAT, inference_export, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from unicoal.train.config import TrainConfig
from unicoal.train.distributed import DistInfo, barrier, cleanup, init_distributed, wrap_ddp
from unicoal.train.losses import UniCoalLoss, blur_sigma_at

__all__ = ["Trainer", "train", "StepSampler", "build_dataset", "DATASETS", "seed_everything"]


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class StepSampler:
    """Indices of one epoch for one rank (a ``DistributedSampler`` permutation) from ``start``.

    Every rank sees ``num_batches * per_rank`` indices; ``start`` skips batches already used
    (resume in the middle of an epoch).
    """

    def __init__(self, length: int, *, seed: int, epoch: int, rank: int, world: int, per_rank: int, start_batch: int = 0):
        from torch.utils.data import DistributedSampler

        self.inner = DistributedSampler(range(length), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.inner.set_epoch(epoch)
        self.per_rank = per_rank
        self.num_batches = len(self.inner) // per_rank
        self.start = start_batch * per_rank

    def __iter__(self):
        stop = self.num_batches * self.per_rank
        return itertools.islice(iter(self.inner), self.start, stop)

    def __len__(self) -> int:
        return max(0, self.num_batches * self.per_rank - self.start)


#: dataset kind (``MethodSpec.dataset``) -> ``"module:factory"``, called as
#: ``factory(cfg, samplesheet, data_cfg)`` (imported lazily; docs/training.md)
DATASETS: dict[str, str] = {
    "slice": "unicoal.data:SliceDataset",
    "patch3d": "unicoal.data3d:PatchDataset3D.from_train_config",
    "implicit": "unicoal.predictors.implicit:ImplicitPatchDataset.from_train_config",  # ArSSR: LR window + HR query slices
    "provogan": "unicoal.predictors.provogan:ProvoDataset.from_train_config",  # cross-sections of the stage being trained
}


def build_dataset(cfg: TrainConfig, samplesheet, split: str | None = None):
    """The training dataset of ``cfg``'s method: its ``MethodSpec.dataset`` kind looked up in
    :data:`DATASETS` (``slice``: :class:`unicoal.data.SliceDataset`; ``patch3d``:
    :class:`unicoal.data3d.PatchDataset3D`)."""
    import importlib
    from dataclasses import replace

    from unicoal.methods import get_method

    data_cfg = cfg.data if split is None else replace(cfg.data, split=split)
    kind = getattr(get_method(cfg.method), "dataset", "slice")
    if kind not in DATASETS:
        raise ValueError(f"method {cfg.method}: unknown dataset kind {kind!r}; expected one of {', '.join(DATASETS)}")
    if kind == "slice":
        from unicoal.data import SliceDataset

        return SliceDataset(samplesheet, data_cfg, seed=cfg.run.seed)
    module, _, attr = DATASETS[kind].partition(":")
    factory: Any = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory(cfg, samplesheet, data_cfg)


class Trainer:
    """Networks, optimisers, schedules and the step function of one training run.

    Args:
        cfg: resolved :class:`TrainConfig`.
        steps_per_epoch: optimiser steps per epoch (for the lr horizon).
        info: distributed info (rank, world size, device).
        sam: optional SAM loss module (``None``: built from the config when its weight > 0).
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, info: DistInfo | None = None, sam=None):
        import torch

        from unicoal.methods import get_method
        from unicoal.train.ema import Ema
        from unicoal.train.schedule import check_phases, make_scheduler

        self.cfg = cfg
        self.info = info or DistInfo()
        self.device = torch.device(self.info.device)
        if self.device.type == "cpu":
            from unicoal.nn.allocator import keep_freed_memory

            keep_freed_memory()  # reuse freed activation memory instead of page-faulting it again
        spec = get_method(cfg.method)
        self.model_cfg = spec.model_config(cfg.model)
        G, D = spec.build_models(self.model_cfg, discriminator=cfg.loss.adversarial)
        self.G = G.to(self.device).train()
        self.D = D.to(self.device).train() if D is not None else None
        # The training passes go through DistributedDataParallel when several processes train
        # (which also copies rank 0's weights to every rank); self.G / self.D stay the bare
        # networks for the EMA, the checkpoints and the other phase's frozen pass.
        self.G_train = wrap_ddp(self.G, self.info)
        self.D_train = wrap_ddp(self.D, self.info)
        o = cfg.optim
        self.total_steps = int(o.total_steps or max(1, math.ceil(o.epochs * steps_per_epoch)))
        self.steps_per_epoch = int(steps_per_epoch)
        # training phases of methods trained in several runs by their authors (ResViT, ProvoGAN):
        # each phase has its own schedule, and Adam restarts when it begins (restart_phase)
        phases_of = getattr(self.G, "optim_phases", None)
        self.phases = check_phases(phases_of(self.total_steps), self.total_steps) if phases_of is not None else None
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=o.betas, eps=o.eps)
        self.sched_G = make_scheduler(self.opt_G, self.total_steps, o.decay_start, self.phases)
        self.opt_D = self.sched_D = None
        if self.D is not None:
            self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=o.betas, eps=o.eps)
            self.sched_D = make_scheduler(self.opt_D, self.total_steps, o.decay_start, self.phases)
        # the schedules as this config builds them (a resumed run keeps them, see load_state_dict)
        self._lr_lambdas = [dict(s.lr_lambdas[0].__dict__) if s is not None else None for s in (self.sched_G, self.sched_D)]
        self.ema = Ema(self.G, o.ema_halflife_kimg, o.batch_size, o.ema_rampup)
        if sam is None and cfg.loss.sam_weight > 0:
            from unicoal.models.sam import SamFeatureLoss

            sam = SamFeatureLoss(encoder=cfg.loss.sam_encoder, checkpoint=cfg.loss.sam_checkpoint)
        self.sam = sam.to(self.device) if sam is not None and hasattr(sam, "to") else sam
        use_amp = self.device.type == "cuda" and cfg.run.amp == "bf16"
        self.autocast: Callable = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
        self.perceptual = None
        if cfg.loss.perceptual_weight > 0:
            from unicoal.nn.perceptual import PerceptualLoss

            self.perceptual = PerceptualLoss(cfg.loss.perceptual_network, cfg.loss.perceptual_checkpoint).to(self.device)
        self.style = None
        if cfg.loss.style_weight > 0:
            from unicoal.nn.perceptual import StyleLoss

            self.style = StyleLoss(cfg.loss.perceptual_network, cfg.loss.perceptual_checkpoint).to(self.device)
        self.loss = UniCoalLoss(self.G_train, self.D_train, cfg.loss, self.sam, self.autocast, perceptual=self.perceptual, style=self.style)
        self.z_dim = int(getattr(self.model_cfg, "z_dim", 0) or 0)
        self.step = 0
        self.images_seen = 0

    # --- one step ---------------------------------------------------------------------------
    def to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if hasattr(v, "to") else v) for k, v in batch.items()}

    def draw_z(self, batch: dict):
        import torch

        if not self.z_dim:
            return None
        return torch.randn(batch["x_in"].shape[0], self.z_dim, device=self.device)

    def generator_phase(self, batch: dict, sigma: float, fake=None) -> dict:
        """Zero G's grads, backward ``L_G`` (DDP averages the grads over ranks); no optimiser step.
        ``fake``: G's output already computed this step (``update_order: d_then_g``)."""
        self.G.requires_grad_(True)
        if self.D is not None:
            self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        loss, stats = self.loss.generator_loss(batch, self.draw_z(batch) if fake is None else None, sigma, fake=fake)
        loss.backward()
        return stats

    def discriminator_phase(self, batch: dict, sigma: float, fake=None) -> dict:
        """Zero D's grads, backward the D loss (+ R1 on schedule); DDP averages the grads over ranks.
        ``fake``: G's (detached) output already computed this step."""
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        do_r1 = self.step % self.cfg.loss.r1_interval == 0
        loss, stats = self.loss.discriminator_loss(batch, self.draw_z(batch) if fake is None else None, sigma, do_r1, fake=fake)
        loss.backward()
        self.G.requires_grad_(True)
        return stats

    def restart_phase(self, phase) -> None:
        """A training phase begins (``optim_phases`` of the generator): Adam restarts for G and D
        (empty moments and step counts: what a new ``torch.optim.Adam`` holds), and D is
        re-initialised where the authors build a new discriminator for the phase."""
        import logging

        for opt in (self.opt_G, self.opt_D):
            if opt is not None:
                opt.state.clear()
        fresh = ""
        if phase.fresh_discriminator and self.D is not None:
            reset = getattr(self.D, "reset_parameters", None)
            if reset is None:
                raise TypeError(f"{type(self.D).__name__} has no reset_parameters(): it cannot start a phase with a fresh discriminator")
            reset()
            if self.info.enabled:  # ranks draw different random numbers: every rank takes rank 0's new D
                import torch.distributed as dist

                for t in list(self.D.parameters()) + list(self.D.buffers()):
                    dist.broadcast(t.data, 0)
            fresh = ", discriminator re-initialised"
        lr = self.opt_G.param_groups[0]["lr"] if phase.lr is None else phase.lr
        logging.getLogger(__name__).warning("training phase %s starts at step %d: Adam restarted (lr %g)%s", phase.name or "?", self.step, lr, fresh)

    def train_step(self, batch: dict) -> dict:
        for net in (self.G, self.D):  # method schedules, e.g. ResViT's CNN pre-training -> transformer fine-tuning
            hook = getattr(net, "set_train_step", None)
            if hook is not None:
                hook(self.step, self.total_steps)
        for phase in (self.phases or [])[1:]:
            if phase.start == self.step:
                self.restart_phase(phase)
        batch = self.to_device(batch)
        sigma = blur_sigma_at(self.images_seen, self.cfg.loss.blur_sigma, self.cfg.loss.blur_fade_kimg)
        order = self.cfg.optim.update_order
        if self.D is None or order == "g_then_d":
            stats = self.generator_phase(batch, sigma)
            self.opt_G.step()
            if self.D is not None:
                stats.update(self.discriminator_phase(batch, sigma))
                self.opt_D.step()
        else:
            fake = None
            if order == "d_then_g":  # one forward of G feeds both updates (the pix2pix code base)
                self.G.requires_grad_(True)
                fake = self.loss.generate(batch, self.draw_z(batch))
            stats = self.discriminator_phase(batch, sigma, fake=None if fake is None else fake.detach())
            self.opt_D.step()
            stats.update(self.generator_phase(batch, sigma, fake=fake))
            self.opt_G.step()
        self.sched_G.step()
        if self.sched_D is not None:
            self.sched_D.step()
        self.images_seen += self.cfg.optim.batch_size
        self.step += 1
        beta = self.ema.update(self.G, self.images_seen)
        if self.info.enabled:  # log the mean over ranks (same keys, same steps on every rank)
            import torch
            import torch.distributed as dist

            keys = sorted(stats)
            vec = torch.stack([stats[k].detach().float().reshape(()) for k in keys])
            dist.all_reduce(vec)
            stats = dict(zip(keys, vec / self.info.world_size))
        out = {k: float(v) for k, v in stats.items()}
        out.update(blur_sigma=sigma, ema_beta=beta)
        return out

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": TRAIN_FORMAT,
            "step": self.step,
            "images_seen": self.images_seen,
            "epoch": self.step // max(1, self.steps_per_epoch),
            "G": self.G.state_dict(),
            "D": self.D.state_dict() if self.D is not None else {},
            "G_ema": self.ema.model.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict() if self.opt_D is not None else {},
            "sched_G": self.sched_G.state_dict(),
            "sched_D": self.sched_D.state_dict() if self.sched_D is not None else {},
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "model_config": self.model_cfg.to_dict(),
            "fallback_weights": self.fallback_weights,
        }

    @property
    def fallback_weights(self) -> dict[str, str]:
        """Pretrained weights this run trains without (:func:`unicoal.pretrained.fallback_weights`)."""
        from unicoal.train.config import fallback_weights

        return fallback_weights(self.cfg.to_dict())

    def load_state_dict(self, ckpt: dict) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.ema.model.load_state_dict(ckpt["G_ema"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        self.sched_G.load_state_dict(ckpt["sched_G"])
        if self.D is not None:
            self.D.load_state_dict(ckpt["D"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
            self.sched_D.load_state_dict(ckpt["sched_D"])
        # the schedule horizon (and phase starts) follow the current config (e.g. a larger --max-steps)
        for sched, fresh in zip((self.sched_G, self.sched_D), self._lr_lambdas):
            if sched is not None:
                sched.lr_lambdas[0].__dict__.update(fresh)
        self.step = int(ckpt["step"])
        self.images_seen = int(ckpt["images_seen"])
        set_rng_state(ckpt["rng"])


def _comparable(d: dict) -> dict:
    """A config as compared on ``--resume``: defaults filled in (so a field that a newer unicoal
    added, stored at its default, is no difference) and the horizon dropped."""
    d = json.loads(json.dumps(d))
    try:
        d = json.loads(json.dumps(TrainConfig.from_dict(d).to_dict()))
    except (InputError, ValueError, TypeError, KeyError):
        pass  # a config this version cannot read: compare it as stored
    d.get("optim", {}).pop("total_steps", None)
    return d


def train(
    cfg: TrainConfig,
    samplesheet: str,
    out_dir: str,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
    sam=None,
) -> dict:
    """Train ``cfg`` on ``samplesheet`` into ``out_dir``; returns a summary dict.

    Writes ``config.json`` first, ``log.csv`` while training, ``checkpoints/last.pt`` every
    ``run.checkpoint_every`` steps and at the end, and the inference export ``model.pt``. With
    ``run.val_every`` and ``val`` rows, also ``val.csv`` and ``model_best.pt``, and at the end
    ``model.pt`` is the best EMA generator on validation (:mod:`unicoal.train.validate`).
    ``stop_after`` ends the process after that many steps of this invocation (tests use it to
    simulate a kill right after a checkpoint).
    """
    import torch

    run = Path(out_dir)
    ckpt_path = run / "checkpoints" / "last.pt"
    info = init_distributed(device)
    try:
        dataset = build_dataset(cfg, samplesheet)  # bad input fails before anything is written
        from unicoal.train.validate import Validator  # model selection on the val split (run.val_every)

        validator = Validator(cfg, samplesheet, run, enabled=info.is_main)
        cfg_json = run / "config.json"
        if resume:  # checked on every rank, so all ranks fail together
            if not ckpt_path.exists():
                raise InputError(ckpt_path, "no checkpoint to resume from", "run without --resume to start a new run")
            if cfg_json.exists() and _comparable(json.loads(cfg_json.read_text())) != _comparable(cfg.to_dict()):
                raise InputError(cfg_json, "the given config differs from the run's config.json", "resume with the same --config (only --max-steps may change) or use a new --out")
        elif ckpt_path.exists():
            raise InputError(ckpt_path, "run directory already has a checkpoint", "pass --resume to continue it, or choose a new --out")
        barrier(info)
        if info.is_main:
            run.mkdir(parents=True, exist_ok=True)
            write_json(cfg_json, cfg.to_dict())
        barrier(info)
        seed_everything(cfg.run.seed * max(1, info.world_size) + info.rank)
        bs = cfg.optim.batch_size
        if bs % info.world_size:
            raise InputError(None, f"optim.batch_size {bs} is not divisible by the {info.world_size} processes", "choose a batch size that is a multiple of the process count")
        per_rank = bs // info.world_size
        steps_per_epoch = len(dataset) // bs
        if steps_per_epoch < 1:
            raise InputError(samplesheet, f"only {len(dataset)} training slices for a batch of {bs}", "lower optim.batch_size or add subjects")
        trainer = Trainer(cfg, steps_per_epoch, info, sam=sam)
        bind = getattr(dataset, "bind_trainer", None)
        if bind is not None:  # volume-level methods (ProvoGAN): items follow the step, earlier stages run on G
            bind(trainer)
        if resume:
            trainer.load_state_dict(load_checkpoint(ckpt_path, expect="train", map_location=str(trainer.device)))
        from unicoal.train.logging import TrainLogger

        log = TrainLogger(run, total=trainer.total_steps, start=trainer.step, enabled=info.is_main, tensorboard=cfg.run.tensorboard, progress=progress)
        validator.begin(trainer.step)

        def save() -> None:
            if info.is_main:
                state = trainer.state_dict()
                save_checkpoint(ckpt_path, state)
                save_checkpoint(run / "model.pt", inference_export(state))
            barrier(info)

        loader_kw = dict(batch_size=per_rank, num_workers=cfg.run.num_workers, drop_last=False, pin_memory=trainer.device.type == "cuda")
        started = trainer.step
        t0 = time.perf_counter()
        killed = False
        from unicoal.train.signals import StopOnSignal  # SIGUSR2 / SIGTERM: save after this step and stop

        stopper = StopOnSignal(info, trainer.device)
        while trainer.step < trainer.total_steps and not killed:
            epoch, start_batch = divmod(trainer.step, steps_per_epoch)
            dataset.set_epoch(epoch)
            sampler = StepSampler(len(dataset), seed=cfg.run.seed, epoch=epoch, rank=info.rank, world=info.world_size, per_rank=per_rank, start_batch=start_batch)
            # own generator: creating a loader must not consume the global torch RNG (resume)
            gen = torch.Generator().manual_seed(cfg.run.seed * 100003 + epoch)
            loader = torch.utils.data.DataLoader(dataset, sampler=sampler, generator=gen, **loader_kw)
            for batch in loader:
                stats = trainer.train_step(batch)
                step = trainer.step
                log.tick({k: stats[k] for k in ("G_loss", "G_l1", "D_loss") if k in stats})
                if step % cfg.run.log_every == 0 or step == trainer.total_steps:
                    now = time.perf_counter()
                    row = {"step": step, "epoch": epoch, "kimg": trainer.images_seen / 1000.0, "lr_G": trainer.opt_G.param_groups[0]["lr"]}
                    if trainer.opt_D is not None:
                        row["lr_D"] = trainer.opt_D.param_groups[0]["lr"]
                    row.update(stats)
                    row["sec_per_step"] = (now - t0) / max(1, step - started)
                    log.log(row)
                if validator.due(step, trainer.total_steps):  # before save(): a checkpoint never precedes its val.csv row
                    validator.step(trainer, log.tb if info.is_main else None)
                    barrier(info)
                if step % cfg.run.checkpoint_every == 0 or step == trainer.total_steps:
                    save()
                if step < trainer.total_steps and stopper.requested(step):  # all ranks agree (all-reduce)
                    stopper.stop(step, run, save if step % cfg.run.checkpoint_every else None)  # save, log
                    killed = True
                    break
                if stop_after is not None and step - started >= stop_after:
                    killed = True
                    break
                if step >= trainer.total_steps:
                    break
        log.close()
        shipped = validator.finish() if trainer.step >= trainer.total_steps else "last"  # model.pt <- model_best.pt
        elapsed = time.perf_counter() - t0
        return {"step": trainer.step, "images_seen": trainer.images_seen, "total_steps": trainer.total_steps, "seconds": elapsed, "run_dir": str(run), "trainer": trainer,
                "model": shipped, "signal": stopper.signum}
    finally:
        from unicoal.train.signals import restore_signal_handlers

        restore_signal_handlers()
        cleanup(info)

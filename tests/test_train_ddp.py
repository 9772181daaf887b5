"""Two CPU processes (gloo) compute the same gradients as one process on the same data.

Each rank gets half of a batch of 4 slices (as ``DistributedSampler`` shards it); after the
backward passes through ``DistributedDataParallel``
every rank must hold the mean of the per-shard gradients, which one process computes
by running the two shards in turn (the discriminator's minibatch-std groups stay within a
shard in both cases, so the comparison is exact up to float summation order).
"""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from unicoal.train.config import load_config
from unicoal.train.distributed import DistInfo
from unicoal.train.loop import Trainer, build_dataset
from unicoal.train.synthetic import make_synthetic_cohort, micro_overrides


def _cfg():
    return load_config("tiny", micro_overrides(optim={"total_steps": 10}))


def _batch(sheet):
    ds = build_dataset(_cfg(), sheet)
    return torch.utils.data.default_collate([ds[i] for i in (0, 9, 17, 30)])


def _shard(batch, r):
    return {k: v[2 * r: 2 * r + 2] for k, v in batch.items()}


def _grads(module):
    return torch.cat([p.grad.flatten() for p in module.parameters()]).clone()


def _phases(trainer, batch, r):
    torch.manual_seed(100 + r)
    trainer.generator_phase(_shard(batch, r), 1.0)
    g = _grads(trainer.G)
    torch.manual_seed(200 + r)
    trainer.discriminator_phase(_shard(batch, r), 1.0)
    return g, _grads(trainer.D)


def _worker(rank, world, port, sheet, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(1234 + rank)  # different local init: the trainer must broadcast rank 0's
        trainer = Trainer(_cfg(), steps_per_epoch=10, info=DistInfo(rank, world, rank, "cpu"))
        g, d = _phases(trainer, _batch(sheet), rank)
        params = torch.cat([p.detach().flatten() for p in trainer.G.parameters()])
        torch.save({"G": g, "D": d, "params": params}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gradients_equal_single_process(tmp_path):
    sheet = make_synthetic_cohort(tmp_path / "cohort", subjects=1, shape=(36, 36, 32), splits=["train"])
    mp.spawn(_worker, args=(2, _free_port(), str(sheet), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # both ranks hold identical (broadcast) parameters and identical averaged gradients
    assert torch.equal(r0["params"], r1["params"])
    assert torch.equal(r0["G"], r1["G"]) and torch.equal(r0["D"], r1["D"])

    torch.set_num_threads(1)
    torch.manual_seed(1234)  # rank 0's initialisation
    ref = Trainer(_cfg(), steps_per_epoch=10)
    assert torch.equal(torch.cat([p.detach().flatten() for p in ref.G.parameters()]), r0["params"])
    batch = _batch(sheet)
    shards = [_phases(ref, batch, r) for r in (0, 1)]
    g_ref = (shards[0][0] + shards[1][0]) / 2
    d_ref = (shards[0][1] + shards[1][1]) / 2
    for name, got, want in (("G", r0["G"], g_ref), ("D", r0["D"], d_ref)):
        err = float((got - want).abs().max() / want.abs().max())
        assert err < 1e-5, (name, err)
        assert float(want.abs().max()) > 0
    # and the mean differs from either shard alone (the all-reduce did something)
    assert float((r0["G"] - shards[0][0]).abs().max()) > 1e-3 * float(g_ref.abs().max())


def test_torchrun_trains_through_ddp(tmp_path):
    """``torchrun --nproc_per_node 2 -m unicoal train`` (gloo): steps with R1 and checkpoints."""
    import csv
    import subprocess
    import sys

    from unicoal.train.checkpoint import load_checkpoint

    sheet = make_synthetic_cohort(tmp_path / "cohort", subjects=1, shape=(36, 36, 32), splits=["train"])
    sets = ["model.img_resolution=32", "model.num_layers=4", "model.margin_size=4", "optim.batch_size=4",
            "run.log_every=1", "run.tensorboard=false", "run.checkpoint_every=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "unicoal", "train", "--config", "tiny", "--samplesheet", str(sheet), "--out", str(tmp_path / "run"),
           "--device", "cpu", "--max-steps", "3", "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]  # one log (rank 0), R1 on every step
    assert all(float(r["D_r1"]) >= 0 for r in rows)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", expect="train")
    assert ckpt["step"] == 3 and ckpt["images_seen"] == 12
    assert not any(k.startswith("module.") for k in ckpt["G"])  # bare networks in the checkpoint

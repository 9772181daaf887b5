"""unicoal train: a run killed after a checkpoint and resumed equals an uninterrupted run."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from unicoal.errors import InputError
from unicoal.train.config import load_config
from unicoal.train.loop import train
from unicoal.train.synthetic import make_synthetic_cohort, micro_overrides

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=2, shape=(36, 36, 20), splits=["train", "train"])


def _cfg(steps=4, **extra):
    return load_config("tiny", micro_overrides(optim={"total_steps": steps}, run={"checkpoint_every": 2}, **extra))


def _losses(run_dir):
    with open(run_dir / "log.csv") as fh:
        return {int(r["step"]): (float(r["G_loss"]), float(r["D_loss"]), float(r["G_l1"])) for r in csv.DictReader(fh)}


def test_resume_matches_uninterrupted_run(tmp_path, sheet):
    cfg = _cfg()
    straight = tmp_path / "straight"
    a = train(cfg, sheet, straight, progress=False)
    assert a["step"] == 4 and a["images_seen"] == 16

    resumed = tmp_path / "resumed"
    b1 = train(cfg, sheet, resumed, progress=False, stop_after=2)  # "killed" after the step-2 checkpoint
    assert b1["step"] == 2
    ck = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and ck["images_seen"] == 8
    b2 = train(cfg, sheet, resumed, resume=True, progress=False)
    assert b2["step"] == 4

    la, lb = _losses(straight), _losses(resumed)
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]  # the resumed CSV has one row per step
    for step in (1, 2, 3, 4):
        assert lb[step] == pytest.approx(la[step], rel=1e-6, abs=1e-7), step
    ta, tb = a["trainer"], b2["trainer"]
    for name, mods in (("G", (ta.G, tb.G)), ("D", (ta.D, tb.D)), ("G_ema", (ta.ema.model, tb.ema.model))):
        for (k, pa), (_, pb) in zip(mods[0].state_dict().items(), mods[1].state_dict().items()):
            assert torch.allclose(pa, pb, atol=1e-7, rtol=0), (name, k, float((pa - pb).abs().max()))
    # G moved away from the initialisation and the lr ended at 0 (linear decay over 4 steps)
    assert ta.opt_G.param_groups[0]["lr"] == 0.0 and ta.opt_D.param_groups[0]["lr"] == 0.0


def test_checkpoint_contents_load_weights_only(tmp_path, sheet):
    run = tmp_path / "run"
    train(_cfg(steps=2), sheet, run, progress=False)
    cfg_json = json.loads((run / "config.json").read_text())
    assert cfg_json["optim"]["total_steps"] == 2 and cfg_json["model"]["img_resolution"] == 32
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "sched_G", "sched_D", "rng", "step", "config", "model_config"} <= set(ck)
    assert isinstance(ck["rng"]["torch"], torch.Tensor) and len(ck["rng"]["python"][1]) == 625
    model = torch.load(run / "model.pt", weights_only=True)
    assert model["format"] == "unicoal-model/3" and model["modalities"] == ["T1", "T2", "PD"]
    assert model["num_inputs"] == 4 and model["resolution"] == 32
    for k, v in model["state_dict"].items():
        assert torch.equal(v, ck["G_ema"][k])


def test_resume_refuses_a_different_config_and_overwrite(tmp_path, sheet):
    run = tmp_path / "run"
    train(_cfg(steps=1), sheet, run, progress=False)
    with pytest.raises(InputError, match="already has a checkpoint"):
        train(_cfg(steps=1), sheet, run, progress=False)
    other = load_config("tiny", micro_overrides(optim={"total_steps": 2, "lr_g": 0.001}, run={"checkpoint_every": 2}))
    with pytest.raises(InputError, match="differs from the run's config.json"):
        train(other, sheet, run, resume=True, progress=False)
    with pytest.raises(InputError, match="no checkpoint to resume"):
        train(_cfg(steps=1), sheet, tmp_path / "fresh", resume=True, progress=False)


@pytest.mark.slow
def test_sigkill_then_resume_via_cli(tmp_path, sheet):
    """A real ``kill -9`` of ``unicoal train`` at an arbitrary moment, then ``--resume``: the
    final EMA generator equals the one of an uninterrupted run (checkpoints are atomic and
    hold the full state, whenever the kill lands)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["--config", "tiny", "--samplesheet", str(sheet), "--max-steps", "5", "--device", "cpu", "--no-progress",
            "--set", "model.img_resolution=32", "--set", "model.num_layers=4", "--set", "model.margin_size=4",
            "--set", "optim.batch_size=4", "--set", "run.checkpoint_every=1", "--set", "run.tensorboard=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "unicoal", "train"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cmd + args + ["--out", str(straight)], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd + args + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(last, weights_only=True)["step"]
    assert 1 <= step_at_kill <= 5
    subprocess.run(cmd + args + ["--out", str(killed), "--resume"], check=True, env=env, capture_output=True)
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(killed / "model.pt", weights_only=True)
    assert a["step"] == b["step"] == 5
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], atol=1e-7, rtol=0), k


def test_tensorboard_events_match_the_csv_log_and_resume_continues_them(tmp_path, sheet):
    """``run.tensorboard: true`` writes the CSV's scalars as TensorBoard events; a resumed run drops
    the events logged after the checkpoint it resumes from and appends its own."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config("tiny", micro_overrides(optim={"total_steps": 4}, run={"checkpoint_every": 2, "tensorboard": True}))
    # killed after step 3, checkpoint at step 2: the resumed run logs step 3 again
    train(cfg, str(sheet), str(tmp_path / "run"), progress=False, stop_after=3)
    train(cfg, str(sheet), str(tmp_path / "run"), resume=True, progress=False)
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert {"G_loss", "D_loss", "G_l1", "lr_G"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("G_loss")
    assert [e.step for e in events] == [1, 2, 3, 4]
    csv_loss = {s: v[0] for s, v in _losses(tmp_path / "run").items()}
    assert all(abs(e.value - csv_loss[e.step]) < 1e-5 * max(1.0, abs(e.value)) for e in events)


def test_resume_accepts_a_stored_config_that_lacks_a_newer_field_at_its_default():
    """A run started before unicoal gained a config field (stored without it) still resumes;
    a real difference is still a difference."""
    import json

    from unicoal.train.config import load_config
    from unicoal.train.loop import _comparable

    stored = json.loads(json.dumps(load_config("tiny").to_dict()))
    stored["loss"].pop("adversarial_weight")  # written by an older version
    assert _comparable(stored) == _comparable(load_config("tiny").to_dict())
    stored["loss"]["l1_weight"] = 1.0
    assert _comparable(stored) != _comparable(load_config("tiny").to_dict())

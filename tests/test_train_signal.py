"""unicoal train on SIGUSR2 / SIGTERM (a job's time limit): finish the step, save, exit 128 + signum,
and ``--resume`` continues from exactly that step (real subprocesses of the tiny config on CPU)."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from unicoal.train.checkpoint import load_checkpoint
from unicoal.train.synthetic import make_synthetic_cohort

SETS = ["model.img_resolution=32", "model.num_layers=4", "model.margin_size=4", "optim.batch_size=4",
        "run.log_every=1", "run.tensorboard=false", "run.checkpoint_every=100"]
STEPS = 8


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=1, shape=(36, 36, 24), splits=["train"])


def _cmd(sheet, run, *extra):
    cmd = [sys.executable, "-m", "unicoal", "train", "--config", "tiny", "--samplesheet", str(sheet), "--out", str(run),
           "--device", "cpu", "--max-steps", str(STEPS), *extra]
    for s in SETS:
        cmd += ["--set", s]
    return cmd


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNICOAL_TEST_SIGNAL")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _log(run):
    with open(run / "log.csv") as fh:
        return {int(r["step"]): (float(r["G_loss"]), float(r["D_loss"]), float(r["G_l1"])) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def straight(sheet, tmp_path_factory):
    """An uninterrupted run: the reference log."""
    run = tmp_path_factory.mktemp("straight") / "run"
    proc = subprocess.run(_cmd(sheet, run), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _log(run)


def _resume_and_compare(sheet, run, stopped_at, straight, env):
    proc = subprocess.run(_cmd(sheet, run, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(run / "checkpoints" / "last.pt", expect="train")["step"] == STEPS
    log = _log(run)
    assert sorted(log) == list(range(1, STEPS + 1))  # one row per step: the stopped run's, then the resumed one's
    for step in log:  # same losses as the uninterrupted run: resumed from exactly the saved step
        assert log[step] == pytest.approx(straight[step], rel=1e-6, abs=1e-7), (step, stopped_at)


def test_sigusr2_from_outside_saves_exits_140_and_resumes(sheet, tmp_path, straight):
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(sheet, run, "--no-progress"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    try:  # signal once the first steps are logged, as SLURM does some minutes before the time limit
        while proc.poll() is None and time.monotonic() < deadline:
            if (run / "log.csv").is_file() and len((run / "log.csv").read_text().splitlines()) >= 3:  # header + 2 steps
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR2)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 140, err[-3000:]
    step = load_checkpoint(run / "checkpoints" / "last.pt", expect="train")["step"]
    assert 2 <= step < STEPS  # saved at the step it stopped on (checkpoint_every 100 never fired)
    lines = [line for line in err.splitlines() if "SIGUSR2 received" in line]
    assert lines == [f"unicoal train: SIGUSR2 received: stopped after step {step}, saved {run}/checkpoints/last.pt and "
                     f"{run}/model.pt; exit 140 (rerun with --resume to continue from step {step})"]
    assert (run / "model.pt").is_file() and max(_log(run)) == step
    _resume_and_compare(sheet, run, step, straight, _env())


def test_self_signal_hook_sigterm_exits_143_at_that_step_and_retry_runs_through(sheet, tmp_path, straight):
    run = tmp_path / "run"
    env = _env(UNICOAL_TEST_SIGNAL_AFTER="3", UNICOAL_TEST_SIGNAL="TERM")
    proc = subprocess.run(_cmd(sheet, run), env=env, capture_output=True, timeout=600)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert b"\r" not in proc.stderr and b"train: 3/8 step (38%)" in proc.stderr  # a pipe: plain progress lines, no bar
    proc.stderr = proc.stderr.decode()
    assert load_checkpoint(run / "checkpoints" / "last.pt", expect="train")["step"] == 3
    assert "unicoal train: SIGTERM received: stopped after step 3" in proc.stderr
    # the retry keeps the same environment (as a Nextflow retry does): it is past step 3, so it runs to the end
    _resume_and_compare(sheet, run, 3, straight, env)


@pytest.mark.slow
def test_torchrun_ranks_stop_at_the_same_step(sheet, tmp_path):
    """Two gloo ranks; only rank 0 is signalled (test hook): the all-reduce stops both after step 2."""
    run = tmp_path / "run"
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    cmd = [sys.executable, *launcher, *_cmd(sheet, run, "--no-progress")[1:]]
    proc = subprocess.run(cmd, env=_env(UNICOAL_TEST_SIGNAL_AFTER="2"), capture_output=True, text=True, timeout=600)
    # one stop line (rank 0, logged before any rank may exit); the workers exit 140 (torchrun may end
    # the slower one with SIGTERM once the first has exited) and torchrun reports them with status 1
    assert proc.stderr.count("unicoal train: SIGUSR2 received: stopped after step 2") == 1, proc.stderr[-3000:]
    assert proc.returncode == 1 and "exitcode  : 140" in proc.stderr, proc.stderr[-3000:]
    assert load_checkpoint(run / "checkpoints" / "last.pt", expect="train")["step"] == 2
    assert max(_log(run)) == 2


def test_handler_records_the_first_signal_and_is_restored():
    from unicoal.train.distributed import DistInfo
    from unicoal.train.signals import StopOnSignal, exit_code, restore_signal_handlers

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR2)
    stopper = StopOnSignal(DistInfo(), environ={})
    try:
        assert not stopper.requested(1)
        os.kill(os.getpid(), signal.SIGTERM)  # would end pytest without the handler
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.01)
        assert stopper.requested(2) and stopper.signum == signal.SIGTERM and exit_code(stopper.signum) == 143
    finally:
        restore_signal_handlers()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR2)) == before
    with pytest.raises(ValueError, match="UNICOAL_TEST_SIGNAL must be USR2 or TERM"):
        StopOnSignal(DistInfo(), environ={"UNICOAL_TEST_SIGNAL_AFTER": "3", "UNICOAL_TEST_SIGNAL": "KILL"})
    restore_signal_handlers()

"""Real Nextflow runs of main.nf (slow): the full graph with -stub-run, -profile test end to end,
-resume re-running nothing, -profile test,slurm through a one-node SLURM cluster, and a corrupt
input stopping the run with the step's error while other subjects' work is kept for -resume.

Nextflow comes from scripts/install_nextflow.sh (.venv/bin/nextflow); SLURM from Debian's
slurm-wlm and munge (scripts/slurm_cluster.sh starts and stops the cluster by process id).
Each test prints its wall time (seconds) to stderr.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _nextflow() -> str:
    nf = VENV_BIN / "nextflow"
    if not nf.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "install_nextflow.sh"), str(VENV_BIN.parent)], check=True)
    return str(nf)


def run_nf(cwd: Path, *args: str, env: dict | None = None, timeout: int = 1500) -> tuple[subprocess.CompletedProcess, float]:
    """``nextflow run main.nf ARGS`` in ``cwd``; returns the process and its wall time."""
    cwd.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NXF_ANSI_LOG": "false", **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run([_nextflow(), "run", str(ROOT / "main.nf"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    print(f"\n[nextflow {' '.join(args)}] exit {proc.returncode} in {wall:.0f} s", file=sys.stderr)
    return proc, wall


def trace(outdir: Path) -> list[dict]:
    with open(outdir / "pipeline_info" / "execution_trace.txt", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def processes(rows: list[dict], status: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if status is None or r["status"] == status:
            name = r["process"].split(":")[-1]
            counts[name] = counts.get(name, 0) + 1
    return counts


def _fail(proc: subprocess.CompletedProcess, cwd: Path) -> str:
    log = (cwd / ".nextflow.log").read_text()[-6000:] if (cwd / ".nextflow.log").exists() else ""
    return f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-2000:]}\nlog:\n{log}"


# --- the full graph, wired with stubs -------------------------------------------------------


def test_stub_run_of_every_experiment(tmp_path):
    # stub tasks only touch files: let many run at once
    (tmp_path / "stub.config").write_text(
        "executor { $local { cpus = 16; memory = 64.GB } }\nprocess { resourceLimits = [cpus: 1, memory: 1.GB, time: 1.h] }\n"
    )
    out = tmp_path / "results"
    proc, wall = run_nf(tmp_path, "-stub-run", "-profile", "test", "-c", str(tmp_path / "stub.config"), "--experiment", "all",
                        "--plan_profile", "full", "--dice", "true", "--phantom_subjects", "3", "--outdir", str(out))
    assert proc.returncode == 0, _fail(proc, tmp_path)
    with open(out / "plan" / "jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    n_train = sum(j["kind"] == "train" for j in jobs)
    n_synth = sum(j["kind"] == "synthesize" for j in jobs)
    tables = {t for j in jobs for t in j["table"].split(";")}
    assert tables == {"table1", "table2", "table3", "table4", "table6"}
    assert n_train > 100 and n_synth > 150  # every method of every table, registered or not
    done = processes(trace(out), "COMPLETED")
    assert done["TRAIN"] == n_train
    assert done["SYNTHESIZE"] == done["EVALUATE"] == n_synth
    dice_jobs = sum(j["kind"] == "synthesize" and j["dice"] == "true" for j in jobs)
    assert dice_jobs > 0 and done["SEGMENT_PREDICT"] == done["SEGMENT_DICE"] == dice_jobs
    assert done["SEGMENT_TRAIN"] == len({j["target"] for j in jobs if j["dice"] == "true"})
    for name in ("STATS", "TABLES", "FIGURES", "REPORT"):
        assert done[name] == 1
    assert (out / "report.html").is_file() and (out / "pipeline_info" / "software_versions.yml").is_file()
    print(f"stub-run: {len(trace(out))} tasks in {wall:.0f} s", file=sys.stderr)


# --- -profile test, then -resume ---------------------------------------------------------------


@pytest.fixture(scope="module")
def test_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nf_test")
    out = cwd / "results"
    proc, wall = run_nf(cwd, "-profile", "test", "--outdir", str(out))
    return cwd, out, proc, wall


def test_profile_test_publishes_tables_figures_and_report(test_run):
    cwd, out, proc, wall = test_run
    assert proc.returncode == 0, _fail(proc, cwd)
    assert wall < 20 * 60
    rows = trace(out)
    done = processes(rows, "COMPLETED")
    assert done["REGISTER"] == done["SKULLSTRIP"] == 4 and done["NORMALIZE"] == 16
    assert done["TRAIN"] == 1 and done["SYNTHESIZE"] == done["EVALUATE"] == 3
    # per-subject metrics: the tiny model after 150 steps is rough, but the numbers are real
    metric_rows = []
    for f in sorted((out / "metrics" / "rows").glob("*.csv")):
        with open(f, newline="") as fh:
            metric_rows += list(csv.DictReader(fh))
    psnr = [float(r["value"]) for r in metric_rows if r.get("metric", "").upper() == "PSNR"]
    assert len(psnr) >= 3 and all(0 < v < 100 for v in psnr)
    assert max(psnr) > 12.0, psnr  # untrained (EMA at init) gives about 4-6 dB; 150 steps about 19 dB at 2x SR
    assert list((out / "tables").glob("table4.*")), sorted(p.name for p in (out / "tables").iterdir())
    assert list((out / "figures").glob("*.png"))
    html = (out / "report.html").read_text()
    assert "<html" in html.lower() and "Uni-COAL" in html
    assert (out / "preprocessed" / "phantom001" / "phantom001_T1.nii.gz").is_file()
    assert list((out / "models").glob("*/checkpoints/last.pt"))
    versions = (out / "pipeline_info" / "software_versions.yml").read_text()
    assert "torch:" in versions and "antspyx:" in versions
    print(f"-profile test: {len(rows)} tasks in {wall:.0f} s", file=sys.stderr)


def test_profile_test_with_dice_trains_and_applies_nnunet(tmp_path):
    """Table I's test subset with --dice true: nnU-Net v2 is trained on the real T2 images and
    their lesion labels (a CPU-sized run from conf/test.config), applied to the synthesized T2 and
    scored; the DSC cells of Table I are filled."""
    out = tmp_path / "results"
    proc, wall = run_nf(tmp_path / "run", "-profile", "test", "--experiment", "table1", "--dice", "true", "--outdir", str(out))
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    done = processes(trace(out), "COMPLETED")
    assert done["TRAIN"] == 2 and done["SEGMENT_TRAIN"] == 1
    assert done["SEGMENT_PREDICT"] == done["SEGMENT_DICE"] == 2
    dsc = []
    for f in sorted((out / "metrics" / "rows").glob("*_dice.csv")):
        with open(f, newline="") as fh:
            dsc += [float(r["value"]) for r in csv.DictReader(fh) if r["metric"] == "DSC"]
    assert len(dsc) == 2 and all(0.0 <= v <= 1.0 for v in dsc), dsc
    table = (out / "tables" / "table1.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Uni-COAL_one"))
    assert row.split("|")[4].strip() != "-", row  # the T1-T2 DSC cell
    assert list((out / "segmentation" / "models").iterdir())
    print(f"-profile test --experiment table1 --dice true: {wall:.0f} s", file=sys.stderr)


def test_resume_reruns_nothing(test_run):
    cwd, out, first, _ = test_run
    assert first.returncode == 0, _fail(first, cwd)
    proc, wall = run_nf(cwd, "-profile", "test", "--outdir", str(out), "-resume")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(out)
    assert rows and {r["status"] for r in rows} == {"CACHED"}, processes(rows)
    assert len(rows) == len([line for line in first.stdout.splitlines() if "Submitted process" in line])
    assert "Submitted process" not in proc.stdout
    print(f"-resume: {len(rows)} cached tasks in {wall:.0f} s", file=sys.stderr)


# --- SLURM ---------------------------------------------------------------------------------


@pytest.fixture
def slurm_cluster(tmp_path):
    script = ROOT / "scripts" / "slurm_cluster.sh"
    if os.geteuid() != 0:
        pytest.fail("the SLURM test cluster needs root (slurmd)")
    state = tmp_path / "slurm"
    env = {**os.environ, "SLURM_TEST_CTLD_PORT": "16917", "SLURM_TEST_SLURMD_PORT": "16918"}
    subprocess.run(["bash", str(script), "start", str(state)], check=True, env=env, timeout=120)
    try:
        yield state
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], env=env, timeout=120)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            assert not (state / pidfile).exists()


def test_profile_test_slurm_runs_tasks_as_slurm_jobs(tmp_path, slurm_cluster):
    out = tmp_path / "results"
    env = {"SLURM_CONF": str(slurm_cluster / "slurm.conf")}
    proc, wall = run_nf(tmp_path / "run", "-profile", "test,slurm", "--slurm_gpus", "0", "--outdir", str(out), env=env)
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    rows = trace(out)
    job_ids = {r["native_id"] for r in rows}
    assert all(i.isdigit() for i in job_ids)                      # SLURM job ids, not local pids
    done = processes(rows, "COMPLETED")
    assert done["TRAIN"] == 1 and done["REPORT"] == 1
    completed = (slurm_cluster / "jobcomp.log").read_text()     # what `sacct -c` reads
    for job in job_ids:
        assert f"JobId={job} " in completed
    assert completed.count("JobState=COMPLETED") >= len(job_ids)
    assert (out / "report.html").is_file()
    print(f"-profile test,slurm: {len(job_ids)} SLURM jobs in {wall:.0f} s", file=sys.stderr)


# --- a corrupt input -----------------------------------------------------------------------


def test_corrupt_input_stops_with_the_steps_error_and_keeps_other_work(tmp_path):
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    cohort = tmp_path / "cohort"
    subprocess.run([str(VENV_BIN / "unicoal"), "cohort", "phantom", "--out", str(cohort), "--subjects", "3", "--preset", "tiny"],
                   check=True, env=env, capture_output=True)
    with open(cohort / "samplesheet.csv", newline="") as fh:
        sheet = list(csv.DictReader(fh))
    bad = sheet[-1]  # the last volume of the last subject: the others are processed first
    bad_path = Path(bad["path"]) if Path(bad["path"]).is_absolute() else cohort / bad["path"]
    bad_path.write_bytes(b"\x1f\x8b not a nifti file")
    args = ("-profile", "test", "--input", str(cohort / "samplesheet.csv"), "--register", "false", "--skullstrip", "none",
            "--outdir", str(tmp_path / "results"))
    proc, _ = run_nf(tmp_path / "run", *args)
    assert proc.returncode != 0
    log = (tmp_path / "run" / ".nextflow.log").read_text()
    errors = [line.strip() for line in log.splitlines() if line.strip().startswith("unicoal: error:")]
    assert errors and bad_path.name in errors[0] and "not a readable NIfTI" in errors[0], log[-3000:]
    first = trace(tmp_path / "results")
    kept = [r for r in first if r["status"] == "COMPLETED" and r["process"].endswith("NORMALIZE")]
    assert kept, "other subjects' volumes were normalised before the run stopped"
    assert any(r["status"] == "FAILED" and bad["subject"] in r["tag"] for r in first)
    # -resume keeps the finished work: those tasks are not run again
    proc2, _ = run_nf(tmp_path / "run", *args, "-resume")
    assert proc2.returncode != 0
    cached = {r["tag"] for r in trace(tmp_path / "results") if r["status"] == "CACHED"}
    assert {r["tag"] for r in kept} <= cached

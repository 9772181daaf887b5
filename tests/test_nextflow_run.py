"""Real Nextflow runs of main.nf (slow): the full graph with -stub-run at 300 subjects (CPU work
batched), -profile test end to end, -resume re-running nothing, keeping training and synthesis
with another --outdir and --convention, and re-running them after a code change;
--help and a bad --input stopping before any task; -profile test,slurm through a one-node SLURM
cluster (GPUs booked only for GPU work, checked on the generated job scripts); a corrupt input
(given as a relative path) stopping the run with the step's error while other subjects' work is
kept for -resume.

Nextflow comes from scripts/install_nextflow.sh (.venv/bin/nextflow); SLURM from Debian's
slurm-wlm and munge (scripts/slurm_cluster.sh starts and stops the cluster by process id).
Each test prints its wall time (seconds) to stderr.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
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


def run_nf(cwd: Path, *args: str, env: dict | None = None, timeout: int = 1500, main: Path = ROOT / "main.nf") -> tuple[subprocess.CompletedProcess, float]:
    """``nextflow run main.nf ARGS`` in ``cwd``; returns the process and its wall time."""
    cwd.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NXF_ANSI_LOG": "false", **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run([_nextflow(), "run", str(main), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    print(f"\n[nextflow {' '.join(args)}] exit {proc.returncode} in {wall:.0f} s", file=sys.stderr)
    return proc, wall


def trace(outdir: Path) -> list[dict]:
    """Rows of the newest run's trace (every run keeps its own execution_trace_<time>.txt)."""
    traces = sorted((outdir / "pipeline_info").glob("execution_trace_*.txt"))
    assert traces, f"no trace in {outdir / 'pipeline_info'}"
    with open(traces[-1], newline="") as fh:
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


# --- the full graph, wired with stubs, at 300 subjects --------------------------------------

#: per-item CPU steps of the pipeline before batching (one job per subject, per volume, per
#: degraded input and per synthesized volume): REGISTER, SKULLSTRIP, NORMALIZE, DEGRADE, SYNTHESIZE, EVALUATE
CPU_STEPS = 6


def test_stub_run_of_every_experiment_at_300_subjects_batches_cpu_work(tmp_path):
    # stub tasks only touch files: let many run at once
    (tmp_path / "stub.config").write_text(
        "executor { $local { cpus = 16; memory = 64.GB } }\nprocess { resourceLimits = [cpus: 1, memory: 1.GB, time: 1.h] }\n"
    )
    out = tmp_path / "results"
    subjects = 300
    proc, wall = run_nf(tmp_path, "-stub-run", "-profile", "test", "-c", str(tmp_path / "stub.config"), "--experiment", "all",
                        "--plan_profile", "full", "--dice", "false", "--phantom_subjects", str(subjects),
                        "--max_test_subjects", "1000", "--methods", "unicoal,linear", "--outdir", str(out), timeout=2400)
    assert proc.returncode == 0, _fail(proc, tmp_path)
    with open(out / "plan" / "jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    with open(out / "plan" / "samplesheet.csv", newline="") as fh:
        sheet = list(csv.DictReader(fh))
    modalities = len({r["modality"] for r in sheet})
    synth = [j for j in jobs if j["kind"] == "synthesize"]
    n_train = sum(j["kind"] == "train" for j in jobs)
    tables = {t for j in jobs for t in j["table"].split(";")}
    assert tables == {"table1", "table2", "table3", "table4", "table6"}
    assert len({j["subject"] for j in synth}) == subjects // 5  # every test subject (the stub cohort's 20 %)
    rows = trace(out)
    done = processes(rows, "COMPLETED")
    # Uni-COAL and linear interpolation in every table (each TRAIN stages the 1200 train/val
    # volumes: with every method the stub run would spend most of its time staging trainings)
    assert done["TRAIN"] == n_train and n_train >= 5
    assert {j["method"] for j in synth} == {"unicoal", "linear"}
    # every synthesize job was synthesized and evaluated: one result row each
    assert len(list((out / "metrics" / "rows").glob("*.csv"))) == len(synth)
    assert len(list((out / "synthesized").glob("*/*/*.nii.gz"))) == len(synth)
    # one task per subject and preprocessing step, per test subject for DEGRADE, per model for synthesis
    assert done["REGISTER"] == done["SKULLSTRIP"] == done["NORMALIZE"] == subjects
    assert done["DEGRADE"] == len({j["subject"] for j in synth if j["scale"] != "1"})
    batches = {j["train_id"] or f"{j['table']}-{j['method']}" for j in synth}
    assert done["SYNTHESIZE"] == done["EVALUATE"] == len(batches)
    # before: one job per item of each CPU step
    before = (2 * subjects + len(sheet) + len({(j["subject"], j["source"], j["scale"]) for j in synth if j["scale"] != "1"})
              + 2 * len(synth))
    cpu_after = sum(n for name, n in done.items() if name not in ("TRAIN", "SEGMENT_TRAIN"))
    bound = subjects * modalities * CPU_STEPS
    print(f"stub-run at {subjects} subjects x {modalities} modalities: {len(synth)} synthesize jobs; CPU jobs before "
          f"batching {before}, after {cpu_after} (bound {bound}); {len(rows)} tasks in {wall:.0f} s", file=sys.stderr)
    assert cpu_after < bound and 5 * cpu_after < before
    assert (out / "report.html").is_file() and (out / "pipeline_info" / "software_versions.yml").is_file()
    assert list((out / "pipeline_info").glob("pipeline_dag_*.html")) and list((out / "pipeline_info").glob("params_*.json"))


def test_help_and_a_bad_input_stop_before_any_task(tmp_path):
    proc, _ = run_nf(tmp_path / "help", "--help")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("--input", "--checkpoint_dir", "--slurm_gpu_queue", "--max_time"):
        assert name in proc.stdout
    assert "Submitted process" not in proc.stdout
    proc, _ = run_nf(tmp_path / "bad", "-profile", "test", "--input", "sheets/nope.csv", "--outdir", "results")
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "unicoal: error:" in line]
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert ("--input file not found: sheets/nope.csv (looked for " + str(tmp_path / "bad" / "sheets" / "nope.csv")) in errors[0]
    assert "(fix: see `nextflow run main.nf --help`" in errors[0]
    assert "Submitted process" not in proc.stdout
    assert not list((tmp_path / "bad").glob("work/??/*")), "no task ran"


# --- -profile test, then -resume ---------------------------------------------------------------

#: one learned model and one interpolation: both kinds of synthesis batch, one training (CI time);
#: Table IV only (the test profile runs every table)
TEST_METHODS = ("--experiment", "table4", "--dice", "false", "--methods", "Uni-COAL,Linear")


def _project_copy(dest: Path) -> Path:
    """The pipeline and package copied into ``dest`` (with the venv linked), so that a test can
    change code under unicoal/ without touching the checkout."""
    skip = shutil.ignore_patterns(".venv", ".git", ".nextflow*", ".nxf", "work", "results", "out", "tmp", "__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(ROOT, dest, ignore=skip, symlinks=True)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())
    return dest


def _stamp(project: Path) -> str:
    return re.search(r"^UNICOAL_CODE_HASH=([0-9a-f]+)$", (project / "bin" / "unicoal").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def test_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("nf_test")
    project = _project_copy(base / "project")
    cwd = base / "run"
    out = cwd / "results"
    proc, wall = run_nf(cwd, "-profile", "test", *TEST_METHODS, "--outdir", "results", main=project / "main.nf")
    return cwd, out, proc, wall, project


def test_profile_test_publishes_tables_figures_and_report(test_run):
    cwd, out, proc, wall, project = test_run
    assert proc.returncode == 0, _fail(proc, cwd)
    assert wall < 20 * 60
    rows = trace(out)
    done = processes(rows, "COMPLETED")
    assert done["REGISTER"] == done["SKULLSTRIP"] == done["NORMALIZE"] == 4  # one task per subject and step
    # one model; Uni-COAL's 3 jobs (SR, CMS, CMSR of the test subject) in one synthesis task, Linear's SR in another
    assert done["TRAIN"] == 1 and done["SYNTHESIZE"] == done["EVALUATE"] == 2 and done["DEGRADE"] == 1
    # per-subject metrics: the tiny model after 150 steps is rough, but the numbers are real
    metric_rows = []
    for f in sorted((out / "metrics" / "rows").glob("*.csv")):
        with open(f, newline="") as fh:
            metric_rows += list(csv.DictReader(fh))
    assert {r["method"] for r in metric_rows} == {"Uni-COAL", "Linear"}
    psnr = [float(r["value"]) for r in metric_rows if r.get("metric", "").upper() == "PSNR" and r["method"] == "Uni-COAL" and r.get("convention", "published") == "published"]
    assert len(psnr) == 3 and all(0 < v < 100 for v in psnr)
    assert max(psnr) > 12.0, psnr  # untrained (EMA at init) gives about 4-6 dB; 150 steps about 19 dB at 2x SR
    assert list((out / "tables").glob("table4.*")), sorted(p.name for p in (out / "tables").iterdir())
    assert list((out / "figures").glob("*.png"))
    assert len(list((out / "synthesized" / "table4" / "Uni-COAL").glob("*.nii.gz"))) == 3
    html = (out / "report.html").read_text()
    assert "<html" in html.lower() and "Uni-COAL" in html
    assert (out / "preprocessed" / "phantom001" / "phantom001_T1.nii.gz").is_file()
    assert list((out / "models").glob("*/checkpoints/last.pt"))
    # the training ran in <work>/checkpoints/<id>-<hash of config and data>, where a killed task resumes
    runs = list((cwd / "work" / "checkpoints").glob("table4-uni-coal-*-*/checkpoints/last.pt"))
    assert len(runs) == 1, runs
    versions = (out / "pipeline_info" / "software_versions.yml").read_text()
    assert "torch:" in versions and "antspyx:" in versions and "nextflow: 24.10.0" in versions
    assert re.search(r"revision: ([0-9a-f]{40}|unknown)", versions)
    # main.nf computes the code hash the way scripts/code_hash.sh does (else each run would re-stamp)
    code = subprocess.run(["bash", str(project / "scripts" / "code_hash.sh")], capture_output=True, text=True, check=True).stdout.strip()
    assert _stamp(project) == code and f"code_hash: {code}" in versions
    print(f"-profile test: {len(rows)} tasks in {wall:.0f} s", file=sys.stderr)


def test_profile_test_with_dice_trains_and_applies_nnunet(tmp_path):
    """Table I's test subset with --dice true: nnU-Net v2 is trained on the real T2 images and
    their lesion labels (a CPU-sized run from conf/test.config), applied to the synthesized T2 and
    scored; the DSC cells of Table I are filled."""
    out = tmp_path / "results"
    proc, wall = run_nf(tmp_path / "run", "-profile", "test", "--experiment", "table1", "--methods", "unicoal", "--dice", "true",
                        "--outdir", str(out))
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    done = processes(trace(out), "COMPLETED")
    assert done["TRAIN"] == 2 and done["SEGMENT_TRAIN"] == 1
    assert done["SEGMENT"] == 2  # one per model (synthesis batch) and target modality
    assert done["SEGMENT_REAL"] == 1  # the real T2 test image: the upper bound
    dsc: dict[str, list[float]] = {}
    for f in sorted((out / "metrics" / "rows").glob("*_dice.csv")):
        with open(f, newline="") as fh:
            for r in csv.DictReader(fh):
                if r["metric"] == "DSC":
                    dsc.setdefault(r["method"], []).append(float(r["value"]))
    assert sum(len(v) for k, v in dsc.items() if k != "Real") == 2 and len(dsc["Real"]) == 1, dsc
    assert all(0.0 <= v <= 1.0 for vs in dsc.values() for v in vs), dsc
    table = (out / "tables" / "table1.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Uni-COAL_one"))
    assert row.split("|")[4].strip() != "-", row  # the T1-T2 DSC cell
    real = next(line for line in table.splitlines() if line.startswith("| Real"))
    assert real.split("|")[4].strip() not in ("-", "n.r."), real
    # the figure cuts through the test subject's lesion
    figures = json.loads((out / "figures" / "figures.json").read_text())["figures"]
    assert figures and all(f["centre"] == "label" for f in figures), [f["centre"] for f in figures]
    html = (out / "report.html").read_text()
    assert "nnunet_epochs" in html  # the pipeline parameters reached the report (provenance, nnU-Net budget)
    assert list((out / "segmentation" / "models").iterdir())
    print(f"-profile test --experiment table1 --dice true: {wall:.0f} s", file=sys.stderr)


def test_resume_reruns_nothing(test_run):
    cwd, out, first, _, project = test_run
    assert first.returncode == 0, _fail(first, cwd)
    proc, wall = run_nf(cwd, "-profile", "test", *TEST_METHODS, "--outdir", "results", "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(out)
    assert rows and {r["status"] for r in rows} == {"CACHED"}, processes(rows)
    assert len(rows) == len([line for line in first.stdout.splitlines() if "Submitted process" in line])
    assert "Submitted process" not in proc.stdout
    # every run keeps its own trace: the first run's real runtimes are still there
    assert len(list((out / "pipeline_info").glob("execution_trace_*.txt"))) == 2
    print(f"-resume: {len(rows)} cached tasks in {wall:.0f} s", file=sys.stderr)


def test_resume_with_another_outdir_and_convention_keeps_training_and_synthesis(test_run):
    cwd, out, first, _, project = test_run
    assert first.returncode == 0, _fail(first, cwd)
    other = cwd / "other"
    proc, wall = run_nf(cwd, "-profile", "test", *TEST_METHODS, "--outdir", "other", "--convention", "brainmask",
                        "--queue_size", "7", "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(other)
    cached, ran = processes(rows, "CACHED"), processes(rows, "COMPLETED")
    assert cached["TRAIN"] == 1 and cached["SYNTHESIZE"] == 2, (cached, ran)
    assert cached["PLAN"] == 1 and cached["NORMALIZE"] == 4 and "TRAIN" not in ran and "SYNTHESIZE" not in ran
    assert ran["EVALUATE"] == 2  # the convention changes the metrics, so only they (and what reads them) re-run
    conventions = set()
    for f in (other / "metrics" / "rows").glob("*.csv"):
        with open(f, newline="") as fh:
            conventions |= {r["convention"] for r in csv.DictReader(fh)}
    # --convention brainmask, plus the gain-sensitive targetscale that `unicoal evaluate --also auto` writes beside it
    assert conventions == {"brainmask", "targetscale"}
    print(f"-resume --outdir other --convention brainmask: {len(ran)} processes re-ran in {wall:.0f} s", file=sys.stderr)


def test_a_code_change_reruns_training_and_synthesis(test_run):
    cwd, out, first, _, project = test_run
    assert first.returncode == 0, _fail(first, cwd)
    before = _stamp(project)
    with open(project / "unicoal" / "plan.py", "a") as fh:  # the copy's package: a "bug fix"
        fh.write("\n# a bug fix\n")
    proc, wall = run_nf(cwd, "-profile", "test", *TEST_METHODS, "--outdir", "fixed", "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    assert _stamp(project) != before
    assert f"the package changed since bin/unicoal was stamped ({before} -> {_stamp(project)})" in proc.stdout
    rows = trace(cwd / "fixed")
    ran = processes(rows, "COMPLETED")
    assert ran["TRAIN"] == 1 and ran["SYNTHESIZE"] == 2 and not processes(rows, "CACHED"), processes(rows)
    print(f"-resume after a code change: {len(rows)} tasks re-ran in {wall:.0f} s", file=sys.stderr)


# --- SLURM ---------------------------------------------------------------------------------


@pytest.fixture
def slurm_cluster(tmp_path):
    script = ROOT / "scripts" / "slurm_cluster.sh"
    if os.geteuid() != 0:
        pytest.fail("the SLURM test cluster needs root (slurmd)")
    state = tmp_path / "slurm"
    # two GPUs without devices: jobs that book --gres=gpu:K are scheduled, none gets a real GPU
    env = {**os.environ, "SLURM_TEST_CTLD_PORT": "16917", "SLURM_TEST_SLURMD_PORT": "16918", "SLURM_TEST_GPUS": "2"}
    subprocess.run(["bash", str(script), "start", str(state)], check=True, env=env, timeout=120)
    try:
        yield state
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], env=env, timeout=120)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            assert not (state / pidfile).exists()


def _job_scripts(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    """[(tag, process, .command.run, .command.sh)] of every task of a trace (tags repeat across
    processes: TRAIN, SYNTHESIZE and EVALUATE of one model share theirs)."""
    return [(r["tag"], r["process"].split(":")[-1], (Path(r["workdir"]) / ".command.run").read_text(),
             (Path(r["workdir"]) / ".command.sh").read_text()) for r in rows]


def test_profile_test_slurm_runs_tasks_as_slurm_jobs(tmp_path, slurm_cluster):
    out = tmp_path / "results"
    env = {"SLURM_CONF": str(slurm_cluster / "slurm.conf")}
    # the defaults (--slurm_gpus 1) with --device cpu (the test profile's): no job books a GPU
    proc, wall = run_nf(tmp_path / "run", "-profile", "test,slurm", *TEST_METHODS, "--outdir", str(out), env=env)
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    rows = trace(out)
    for tag, name, run, sh in _job_scripts(rows):
        assert "#SBATCH" in run and "--gres" not in run, f"{name} ({tag}) books a GPU on a CPU run"
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

    # --device cuda: the GPU tasks (training, synthesis with a learned model) book --slurm_gpus GPUs
    # in the GPU partition and train with torchrun; interpolation and every CPU step book none
    gpu_out = tmp_path / "results_gpu"
    proc, wall = run_nf(tmp_path / "run", "-stub-run", "-profile", "test,slurm", *TEST_METHODS, "--device", "cuda",
                        "--slurm_gpus", "2", "--slurm_queue", "debug", "--slurm_gpu_queue", "gpu", "--outdir", str(gpu_out), env=env)
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    gpu_tasks = set()
    for tag, name, run, sh in _job_scripts(trace(gpu_out)):
        if "--gres" in run:
            gpu_tasks.add(name)
            assert "#SBATCH --gres=gpu:2" in run and "#SBATCH -p gpu\n" in run, run
        else:
            assert "#SBATCH -p debug\n" in run
        if name == "TRAIN":
            assert "--gres=gpu:2" in run and "UNICOAL_NPROC=2" in sh
        if name == "SYNTHESIZE":
            assert ("--gres=gpu:2" in run) == ("linear" not in tag), tag
    assert gpu_tasks == {"TRAIN", "SYNTHESIZE"}
    print(f"-stub-run -profile test,slurm --device cuda: GPU jobs of {sorted(gpu_tasks)} in {wall:.0f} s", file=sys.stderr)


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
    # --input relative to the launch folder, as users type it
    args = ("-profile", "test", "--experiment", "table4", "--dice", "false", "--input", "../cohort/samplesheet.csv", "--register", "false", "--skullstrip", "none",
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

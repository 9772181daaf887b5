"""Real Nextflow runs of main.nf (slow): the full graph with -stub-run at 300 subjects with Dice
(one preprocessing job per subject, no file name collisions), -profile test end to end, -resume
re-running nothing, keeping training and synthesis with another --outdir and --convention; per-step
code hashes (a report edit re-runs REPORT only, another --checkpoint_dir re-runs nothing, a network
edit re-trains only that method); the profiles as `nextflow config` resolves them; -profile
apptainer without an image and --help and a bad --input stopping before any task; the #SBATCH
header of every process through a dry-run sbatch (GPU booking); a training stopped by the
time-limit signal inside a Nextflow retry resuming from its checkpoint; -profile test,slurm through
a one-node SLURM cluster; a corrupt input (given as a relative path) stopping the run with the
step's error while other subjects' work is kept for -resume.

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

#: stub tasks only touch files: let many run at once
STUB_CONFIG = "executor { $local { cpus = 16; memory = 64.GB } }\nprocess { resourceLimits = [cpus: 1, memory: 1.GB, time: 1.h] }\n"


def test_stub_run_of_every_experiment_at_300_subjects_with_dice(tmp_path):
    (tmp_path / "stub.config").write_text(STUB_CONFIG)
    out = tmp_path / "results"
    subjects = 300
    # Dice on: 60 test subjects' masks and labels staged side by side in SEGMENT (each named after
    # its subject); T1 is a DSC target of two datasets (BraTS, CSDH): SEGMENT_REAL's files differ
    proc, wall = run_nf(tmp_path, "-stub-run", "-profile", "test", "-c", str(tmp_path / "stub.config"), "--experiment", "all",
                        "--plan_profile", "full", "--dice", "true", "--phantom_subjects", str(subjects),
                        "--max_test_subjects", "1000", "--methods", "unicoal,linear", "--outdir", str(out), timeout=2400)
    assert proc.returncode == 0, _fail(proc, tmp_path)
    assert "collision" not in proc.stdout + proc.stderr
    with open(out / "plan" / "jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    synth = [j for j in jobs if j["kind"] == "synthesize"]
    n_train = sum(j["kind"] == "train" for j in jobs)
    tables = {t for j in jobs for t in j["table"].split(";")}
    assert tables == {"table1", "table2", "table3", "table4", "table6"}
    assert len({j["subject"] for j in synth}) == subjects // 5  # every test subject (the stub cohort's 20 %)
    rows = trace(out)
    done = processes(rows, "COMPLETED")
    assert done["TRAIN"] == n_train and n_train >= 5
    assert {j["method"] for j in synth} == {"unicoal", "linear"}
    # one preprocessing job per subject (register, skull strip, normalise fused)
    assert done["PREPROCESS"] == subjects and not {"REGISTER", "SKULLSTRIP", "NORMALIZE"} & set(done)
    assert done["DEGRADE"] == len({j["subject"] for j in synth if j["scale"] != "1"})
    batches = {j["train_id"] or f"{j['table']}-{j['method']}" for j in synth}
    assert done["SYNTHESIZE"] == done["EVALUATE"] == len(batches)
    # every synthesize job was synthesized and evaluated (one rows file each), every DSC cell scored
    dice_jobs = [j for j in synth if j["dice"] == "true"]
    assert dice_jobs and done["SEGMENT_TRAIN"] == len({j["target"] for j in dice_jobs})
    real = {(j["target"], j["dataset"]) for j in dice_jobs}
    assert done["SEGMENT_REAL"] == len(real) and len(real) > len({m for m, d in real})  # T1 of BraTS and CSDH
    rows_dir = out / "metrics" / "rows"
    assert {p.name for p in rows_dir.glob("*_real_dice.csv")} == {f"{d}_{m}_real_dice.csv" for m, d in real}
    assert len([p for p in rows_dir.glob("*.csv") if not p.name.endswith("_dice.csv")]) == len(synth)
    assert len(list((out / "synthesized").glob("*/*/*.nii.gz"))) == len(synth)
    assert (out / "report.html").is_file() and (out / "pipeline_info" / "software_versions.yml").is_file()
    assert list((out / "pipeline_info").glob("pipeline_dag_*.html")) and list((out / "pipeline_info").glob("params_*.json"))
    print(f"stub-run at {subjects} subjects with Dice: {len(rows)} tasks in {wall:.0f} s: {dict(sorted(done.items()))}", file=sys.stderr)


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
    assert done["PREPROCESS"] == 4  # one task per subject: register, skull strip, normalise
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
    # TRAIN publishes the exported model, its config and log; the checkpoints stay in the runs folder
    assert list((out / "models").glob("*/model.pt")) and list((out / "models").glob("*/config.json"))
    assert not list((out / "models").glob("*/checkpoints"))
    # the training ran in <work>/checkpoints/<id>-<hash of config and data>, where a killed task resumes
    runs = list((cwd / "work" / "checkpoints").glob("table4-uni-coal-*-*/checkpoints/last.pt"))
    assert len(runs) == 1, runs
    versions = (out / "pipeline_info" / "software_versions.yml").read_text()
    assert "torch:" in versions and "antspyx:" in versions and "nextflow: 24.10.0" in versions
    assert re.search(r"revision: ([0-9a-f]{40}|unknown)", versions)
    # main.nf computes the package's code hash the way scripts/code_hash.sh does
    code = subprocess.run(["bash", str(project / "scripts" / "code_hash.sh")], capture_output=True, text=True, check=True).stdout.strip()
    assert f"code_hash: {code}" in versions
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
    assert cached["PLAN"] == 1 and cached["PREPROCESS"] == 4 and "TRAIN" not in ran and "SYNTHESIZE" not in ran
    assert ran["EVALUATE"] == 2  # the convention changes the metrics, so only they (and what reads them) re-run
    conventions = set()
    for f in (other / "metrics" / "rows").glob("*.csv"):
        with open(f, newline="") as fh:
            conventions |= {r["convention"] for r in csv.DictReader(fh)}
    # --convention brainmask, plus the gain-sensitive targetscale that `unicoal evaluate --also auto` writes beside it
    assert conventions == {"brainmask", "targetscale"}
    print(f"-resume --outdir other --convention brainmask: {len(ran)} processes re-ran in {wall:.0f} s", file=sys.stderr)


# --- code edits and settings that change no model: -resume re-runs only what they touch ---------

#: Table IV's test subset with two learned methods (one Uni-COAL model, SC-GAN's per task and
#: scale) and an interpolation, wired with stubs (what re-runs does not depend on the work done)
EDIT_METHODS = ("-stub-run", "-profile", "test", "--experiment", "table4", "--dice", "false", "--methods", "Uni-COAL,SC-GAN,Linear")


def test_code_edits_rerun_only_the_steps_whose_code_changed(tmp_path):
    project = _project_copy(tmp_path / "project")
    cwd = tmp_path / "run"
    (tmp_path / "stub.config").write_text(STUB_CONFIG)
    args = (*EDIT_METHODS, "-c", str(tmp_path / "stub.config"))
    proc, _ = run_nf(cwd, *args, "--outdir", "first", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    trains = {r["tag"]: r["hash"] for r in trace(cwd / "first") if r["process"].endswith("TRAIN") and "SEGMENT" not in r["process"]}
    assert len(trains) >= 3 and any("sc-gan" in tag for tag in trains) and any("uni-coal" in tag for tag in trains), trains

    # a comment in the report's code: REPORT re-runs, nothing else
    with open(project / "unicoal" / "report" / "html.py", "a") as fh:
        fh.write("\n# a comment\n")
    proc, _ = run_nf(cwd, *args, "--outdir", "first", "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(cwd / "first")
    assert processes(rows, "COMPLETED") == {"REPORT": 1}, processes(rows, "COMPLETED")

    # another --checkpoint_dir (and GPU count): no model changes, every TRAIN stays cached
    proc, _ = run_nf(cwd, *args, "--outdir", "first", "--checkpoint_dir", str(tmp_path / "elsewhere"), "--slurm_gpus", "4",
                     "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(cwd / "first")
    assert {r["tag"] for r in rows if r["process"].endswith(":TRAIN") and r["status"] == "CACHED"} == set(trains)
    assert not {"TRAIN", "SYNTHESIZE", "PREPROCESS", "EVALUATE"} & set(processes(rows, "COMPLETED")), processes(rows, "COMPLETED")

    # an edit in one network (SC-GAN's): its trainings and what follows re-run, Uni-COAL's training is kept
    with open(project / "unicoal" / "models" / "baselines" / "scgan.py", "a") as fh:
        fh.write("\n# a bug fix\n")
    proc, _ = run_nf(cwd, *args, "--outdir", "first", "-resume", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(cwd / "first")
    ran = {r["tag"] for r in rows if r["process"].endswith(":TRAIN") and r["status"] == "COMPLETED"}
    kept = {r["tag"] for r in rows if r["process"].endswith(":TRAIN") and r["status"] == "CACHED"}
    assert ran == {tag for tag in trains if "sc-gan" in tag}, (ran, kept)
    assert kept == set(trains) - ran
    done = processes(rows, "COMPLETED")
    assert "PREPROCESS" not in done and "PLAN" not in done and done["SYNTHESIZE"] >= 1
    synth_ran = {r["tag"] for r in rows if r["process"].endswith(":SYNTHESIZE") and r["status"] == "COMPLETED"}
    assert synth_ran and all("sc-gan" in tag for tag in synth_ran), synth_ran


# --- profiles as Nextflow resolves them ---------------------------------------------------------


def nf_config(*profiles: str) -> str:
    """``nextflow config -profile P`` of the checkout (what a run with those profiles gets)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NXF_ANSI_LOG": "false"}
    proc = subprocess.run([_nextflow(), "config", str(ROOT), "-profile", ",".join(profiles)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def scope(config: str, name: str) -> str:
    """The text of a top-level scope (``docker { ... }``) or a process selector (``withName:TRAIN { ... }``)."""
    m = re.search(rf"^([ \t]*){re.escape(name)} \{{\n(.*?)^\1\}}", config, re.M | re.S)
    return m.group(2) if m else ""


#: each engine alone, with gpu, and under slurm (each `nextflow config` starts a JVM: a few seconds)
PROFILES = (("docker",), ("podman", "gpu"), ("slurm", "apptainer", "gpu"), ("slurm", "singularity"), ("docker", "gpu"), ("slurm", "podman"))


@pytest.mark.parametrize("profiles", PROFILES, ids=",".join)
def test_profiles_switch_the_engine_on_and_keep_each_process_settings(profiles):
    engines = ("docker", "podman", "apptainer", "singularity")
    engine = next(p for p in profiles if p in engines)
    config = nf_config(*profiles)
    assert "enabled = true" in scope(config, engine), (profiles, scope(config, engine))
    for other in engines:
        if other != engine:
            assert "enabled = true" not in scope(config, other), (profiles, other)
    # SLURM's GPU binding reaches the task (apptainer starts with a clean environment)
    assert "'CUDA_VISIBLE_DEVICES'" in scope(config, engine)
    # the profiles replace none of conf/modules.config's process settings (TRAIN's signal
    # forwarding, publishing) nor conf/base.config's (the trainings' retries)
    assert "trap unicoal_on_stop USR2 TERM" in scope(config, "withName:TRAIN"), scope(config, "withName:TRAIN")
    assert "[140, 143, Integer.MAX_VALUE]" in scope(config, "withLabel:process_gpu")
    if "gpu" in profiles:
        option = {"docker": "--gpus all", "podman": "--device nvidia.com/gpu=all", "apptainer": "--nv", "singularity": "--nv"}[engine]
        assert re.search(rf"runOptions = '[^'\n]*{re.escape(option)}", scope(config, engine)), scope(config, engine)
        assert "device = 'cuda'" in scope(config, "params")
    else:
        assert "gpu" not in scope(config, engine) and "--nv" not in scope(config, engine)
    if "slurm" in profiles:
        assert "executor = 'slurm'" in config and "--signal=B:USR2@300" in config
        assert "maxForks = 20" in scope(config, "withName:'TRAIN|SEGMENT_TRAIN'")
    if engine in ("docker", "podman"):
        assert "container = 'unicoal:0.1.0'" in config  # the stable tag (scripts/build_images.sh tags it too)
    assert re.search(r"UNICOAL_CODE_HASH = '[0-9a-f]{16}'", scope(config, "env"))  # what bin/unicoal checks an image against


def test_apptainer_without_an_image_stops_before_any_task(tmp_path):
    proc, _ = run_nf(tmp_path, "-profile", "test,apptainer", "--experiment", "table4", "--outdir", "results")
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "unicoal: error:" in line]
    assert len(errors) == 1 and "-profile apptainer needs the image: --apptainer_image is not set" in errors[0], proc.stdout + proc.stderr
    assert "Submitted process" not in proc.stdout and not list(tmp_path.glob("work/??/*"))


def test_container_profiles_bind_the_checkpoint_folder(tmp_path):
    """The engine's run options (not a TRAIN selector, which would replace modules.config's) bind
    --checkpoint_dir; the job script shows it whether or not the engine can start."""
    runs = tmp_path / "runs"
    fakes = tmp_path / "fakes"  # engines that refuse to start: only the job script is looked at
    fakes.mkdir()
    (tmp_path / "fake.sif").write_bytes(b"")
    for name in ("podman", "apptainer"):
        (fakes / name).write_text("#!/bin/sh\necho 'fake engine' >&2\nexit 125\n")
        (fakes / name).chmod(0o755)
    for engine, bind in (("podman", f"-v {runs}:{runs}"), ("apptainer", f"--bind {runs}")):
        cwd = tmp_path / engine
        extra = ("--apptainer_image", str(tmp_path / "fake.sif")) if engine == "apptainer" else ()
        run_nf(cwd, "-profile", f"test,{engine}", "--experiment", "table4", "--methods", "Linear", "--dice", "false",
               "--checkpoint_dir", str(runs), "--outdir", "results", *extra, env={"PATH": f"{fakes}:{VENV_BIN}:/usr/bin:/bin"}, timeout=600)
        scripts = list(cwd.glob("work/??/*/.command.run"))
        assert scripts, f"{engine}: no task was started"
        text = scripts[0].read_text()
        assert f"{engine} " in text and bind in text, text[-3000:]


# --- SLURM job headers: a dry-run sbatch ----------------------------------------------------------

DRY_SBATCH = """#!/bin/bash
# dry-run sbatch: keep the job script, run it here, print a job id (Nextflow then reads .exitcode)
script="${@: -1}"
n=$(( $(cat "$SBATCH_DRY_COUNTER" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$SBATCH_DRY_COUNTER"
bash "$script" > /dev/null 2>&1 || true
echo "Submitted batch job $n"
"""


def test_slurm_job_headers_book_gpus_only_where_they_work(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(DRY_SBATCH)
    (bindir / "squeue").write_text("#!/bin/bash\nexit 0\n")
    (bindir / "scancel").write_text("#!/bin/bash\nexit 0\n")
    for f in bindir.iterdir():
        f.chmod(0o755)
    out = tmp_path / "results"
    env = {"PATH": f"{bindir}:{VENV_BIN}:{os.environ.get('PATH', '')}", "SBATCH_DRY_COUNTER": str(tmp_path / "jobs.txt")}
    (tmp_path / "fast.config").write_text("executor { $slurm { queueStatInterval = '1 sec'; pollInterval = '1 sec'; submitRateLimit = '100/1s' } }\n")
    # options that start with -- travel in a params file (on the command line Nextflow reads them as its own)
    (tmp_path / "params.json").write_text(json.dumps({"slurm_options": "--account=lab", "slurm_gpu_options": "--qos=gpu"}))
    proc, wall = run_nf(tmp_path / "run", "-stub-run", "-profile", "test,slurm", "-c", str(tmp_path / "fast.config"), "--experiment", "table1",
                        "--methods", "Uni-COAL,Linear", "--device", "cuda", "--slurm_gpus", "2", "--slurm_queue", "cpu",
                        "--slurm_gpu_queue", "gpu", "-params-file", str(tmp_path / "params.json"),
                        "--outdir", str(out), env=env)
    assert proc.returncode == 0, _fail(proc, tmp_path / "run")
    seen = set()
    for tag, name, run, sh in _job_scripts(trace(out)):
        header = "\n".join(line for line in run.splitlines() if line.startswith("#SBATCH"))
        seen.add(name)
        assert "--account=lab" in header, header  # --slurm_options: every job (clusterOptions: one #SBATCH line)
        gpu = name in ("TRAIN", "SEGMENT_TRAIN", "SEGMENT", "SEGMENT_REAL") or (name == "SYNTHESIZE" and "linear" not in tag)
        if name == "TRAIN":  # only training books --slurm_gpus GPUs, and gets five minutes' warning
            assert "--gres=gpu:2" in header and "--signal=B:USR2@300" in header and "--signal B:USR2@30" not in header, header
        elif gpu:
            assert "--gres=gpu:1" in header and "--signal=B:USR2@300" not in header, (name, tag, header)
        else:
            assert "--gres" not in header and "--qos=gpu" not in header and "#SBATCH -p cpu" in header, (name, tag, header)
        if gpu:
            assert "--qos=gpu" in header and "#SBATCH -p gpu" in header, (name, header)
    assert {"TRAIN", "SYNTHESIZE", "SEGMENT_TRAIN", "SEGMENT", "SEGMENT_REAL", "PREPROCESS", "EVALUATE"} <= seen, seen
    print(f"dry-run sbatch: {len(seen)} processes' headers in {wall:.0f} s", file=sys.stderr)


# --- a training stopped at the time limit, retried by Nextflow, resumes ------------------------------


def _command_run_pid(workdir: Path) -> int | None:
    """The process running ``workdir``'s .command.run (the job's shell, which SLURM's --signal B: reaches)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if any(c.endswith(b".command.run") for c in cmd) and cwd == str(workdir):
            return int(proc.name)
    return None


def test_training_stopped_by_the_time_limit_signal_resumes_in_the_retry(tmp_path):
    """A real (tiny, CPU) training: once it has logged steps, its job shell gets SIGUSR2 as from
    SLURM's --signal B:USR2@300; the trainer saves checkpoints/last.pt, the task exits 140, Nextflow
    retries it, and the retry continues from the saved step instead of step 0."""
    import signal as sig
    import threading

    runs = tmp_path / "runs"
    cwd = tmp_path / "run"
    sent: dict = {}

    def watch():
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline and "pid" not in sent:
            for log in runs.glob("*/log.csv"):
                if len(log.read_text().splitlines()) >= 4:  # header + 3 steps logged: the handler is in place
                    for sh in cwd.glob("work/??/*/.command.sh"):
                        if "unicoal train" in sh.read_text():
                            pid = _command_run_pid(sh.parent)
                            if pid:
                                os.kill(pid, sig.SIGUSR2)
                                sent.update(pid=pid, workdir=sh.parent)
                                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc, wall = run_nf(cwd, "-profile", "test", "--experiment", "table4", "--methods", "Uni-COAL", "--dice", "false",
                        "--max_steps", "60", "--checkpoint_dir", str(runs), "--outdir", "results")
    watcher.join(timeout=5)
    assert proc.returncode == 0, _fail(proc, cwd)
    assert "pid" in sent, "the training ended before it could be signalled"
    train = [r for r in trace(cwd / "results") if r["process"].endswith(":TRAIN")]
    assert [(r["attempt"], r["status"], r["exit"]) for r in train] == [("1", "FAILED", "140"), ("2", "COMPLETED", "0")], train
    first = (Path(train[0]["workdir"]) / ".command.err").read_text()
    m = re.search(r"SIGUSR2 received: stopped after step (\d+)", first)
    assert m, first[-2000:]
    stopped = int(m.group(1))
    assert 0 < stopped < 60
    # the retry resumed (--resume on the run's last.pt) and trained steps stopped+1 .. 60 only
    (run_dir,) = list(runs.glob("table4-uni-coal-*"))
    with open(run_dir / "log.csv", newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == sorted(set(steps)) and steps[-1] == 60, steps  # no step trained twice: the retry started at the checkpoint
    retry_log = (Path(train[1]["workdir"]) / ".command.err").read_text()
    assert "no checkpoint" not in retry_log and "trained to step 60/60" in retry_log, retry_log[-2000:]
    print(f"time-limit signal at step {stopped}, retry resumed: {wall:.0f} s", file=sys.stderr)


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

    # which jobs book GPUs: test_slurm_job_headers_book_gpus_only_where_they_work (dry-run sbatch)


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
    # the failing subject's task names the volume as staged from the sheet (not unicoal
    # preprocess's modality link out/src/<MOD>.nii.gz); the task's tag names the subject
    assert errors and "not a readable NIfTI" in errors[0], log[-3000:]
    assert bad_path.name in errors[0] and "out/src/" not in errors[0], errors[0]
    first = trace(tmp_path / "results")
    kept = [r for r in first if r["status"] == "COMPLETED" and r["process"].endswith("PREPROCESS")]
    assert kept, "other subjects were preprocessed before the run stopped"
    assert any(r["status"] == "FAILED" and bad["subject"] in r["tag"] for r in first)
    # -resume keeps the finished work: those tasks are not run again
    proc2, _ = run_nf(tmp_path / "run", *args, "-resume")
    assert proc2.returncode != 0
    cached = {r["tag"] for r in trace(tmp_path / "results") if r["status"] == "CACHED"}
    assert {r["tag"] for r in kept} <= cached

"""-profile bench (issue #21): each table's representative cell, >= 6 held-out test subjects and
one training budget per table (unicoal/experiments/*.yaml `bench:`, conf/bench.config,
docs/benchmark.md). The fast tests plan the bench on the bench cohort's real split; the slow one
runs the whole bench graph with Nextflow's stubs."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unicoal.cohort.phantom import subject_id
from unicoal.cohort.samplesheet import SampleRow, assign_splits, write_samplesheet
from unicoal.errors import InputError
from unicoal.plan import _parse_experiment, build_plan, load_experiment, load_experiments, replicate_of

ROOT = Path(__file__).resolve().parents[1]
BENCH_CONFIG = ROOT / "conf" / "bench.config"
VENV_BIN = Path(sys.executable).parent

TABLE1 = {"pix2pix", "AutoGAN", "ResViT", "Uni-COAL_one", "pGAN", "SC-GAN", "ProvoGAN", "Uni-COAL_multi"}
#: table -> (the learned methods, the references, the cells source->target x scale)
CELLS = {
    "table1": (TABLE1, {"Copy"}, {("T1", "T2", 1.0)}),
    "table2": ({"DCSRN", "DeepResolve", "SynthSR", "Uni-COAL_sr"}, {"Linear", "Cubic", "Lanczos"}, {("T1", "T1", 5.0)}),
    "table3": ({"SC-GAN", "SynthSR", "ProvoGAN", "Uni-COAL_cmsr"}, {"Copy"}, {("FLAIR", "T1", 5.0)}),
    "table4": ({"ArSSR", "SC-GAN", "ProvoGAN", "SynthSR", "Uni-COAL"}, {"Linear", "Cubic", "Lanczos", "Copy"},
               {(s, t, k) for s, t in (("T1", "T1"), ("T1", "T2")) for k in (2.0, 4.0)}),
    "table6": ({"Uni-COAL_ablation_baseline", "Uni-COAL_ablation_afdecoder", "Uni-COAL_ablation_afencoder",
                "Uni-COAL_ablation_projection", "Uni-COAL_cmsr"}, {"Copy"}, {("FLAIR", "T1", 8.0)}),
}


def bench_param(name: str) -> str:
    """One `params` value of conf/bench.config, as written (``24``, ``'bench'``, ``null``)."""
    m = re.search(rf"^\s*{name}\s*=\s*('[^']*'|\S+)", BENCH_CONFIG.read_text(), re.M)
    assert m, f"conf/bench.config sets no params.{name}"
    return m.group(1).strip("'\"")


def bench_rows(tmp_path: Path) -> list[SampleRow]:
    """The bench cohort's samplesheet: conf/bench.config's phantom count, the phantom cohort's own
    split (unicoal.cohort.phantom.generate_cohort), empty files for the volumes."""
    n = int(bench_param("phantom_subjects"))
    ids = [subject_id(i) for i in range(1, n + 1)]
    splits = assign_splits(ids, (0.5, 0.25, 0.25), 0)
    rows = []
    for sid in ids:
        label = tmp_path / f"{sid}_lesion.nii.gz"
        label.touch()
        for mod in ("T1", "T2", "PD", "FLAIR"):
            (tmp_path / f"{sid}_{mod}.nii.gz").touch()
            rows.append(SampleRow(sid, mod, tmp_path / f"{sid}_{mod}.nii.gz", label, splits[sid]))
    return rows


@pytest.fixture(scope="module")
def bench_plan(tmp_path_factory):
    rows = bench_rows(tmp_path_factory.mktemp("bench_cohort"))
    return build_plan(load_experiments("all"), rows, profile=bench_param("plan_profile")), rows


def test_bench_config_selects_the_bench_plan_with_every_test_subject():
    assert bench_param("plan_profile") == "bench"
    assert bench_param("experiment") == "all"
    # no pipeline-wide --max-steps: it would override the tables' budgets
    assert bench_param("max_steps") == "null" and bench_param("max_test_subjects") == "null"


def test_bench_plans_each_tables_representative_cell(bench_plan):
    plan, rows = bench_plan
    for table, (learned, refs, cells) in CELLS.items():
        trains = [j for j in plan.train if table in j.tables and not replicate_of(j.method_id)]
        synth = [s for s in plan.synthesize if s.table == table and not replicate_of(s.method_id)]
        assert {j.method_id for j in trains} == learned, table
        assert {s.method_id for s in synth} == learned | refs, table
        assert {(s.cell.source, s.cell.target, s.cell.scale) for s in synth} == cells, table
        assert all(j.config.get("base") != "paper" for j in trains), f"{table}: bench trains the tiny models"
        # model selection on the val split, several times per run
        assert all(0 < j.config["run"]["val_every"] < j.max_steps for j in trains), table
    # Table VI: only the last rung trains with the SAM loss (the tiny config has it off)
    sam = {j.method_id: j.config.get("loss", {}).get("sam_weight", 0) for j in plan.train if "table6" in j.tables}
    assert sam.pop("Uni-COAL_cmsr") == 100 and set(sam.values()) == {0}
    # Table IV: one unified Uni-COAL model for all four 2x/4x cells
    (uni,) = [j for j in plan.train if "table4" in j.tables and j.method_id == "Uni-COAL"]
    assert {(c.source, c.target, c.scale) for c in uni.cells} == CELLS["table4"][2]


def test_bench_trains_seed_replicates_of_uni_coal_and_one_baseline(bench_plan, tmp_path):
    plan, _ = bench_plan
    reps = {j.method_id: j for j in plan.train if replicate_of(j.method_id)}
    assert set(reps) == {"Uni-COAL_one@seed1", "pix2pix@seed1"}
    for mid, job in reps.items():
        (base,) = [j for j in plan.train if j.method_id == replicate_of(mid)[0] and "table1" in j.tables]
        # the same training but for the seed: same budget, cells, config
        assert job.config["run"].pop("seed") == 1 and "seed" not in base.config["run"]
        assert job.config == base.config and job.max_steps == base.max_steps and job.cells == base.cells
        assert {s.subject for s in plan.synthesize if s.train_id == job.id} == {s.subject for s in plan.synthesize if s.train_id == base.id}
    # only the bench trains them; --methods keeps a method's replicates with it
    assert not [j for j in build_plan(load_experiments("table1"), bench_rows(tmp_path), profile="test").train if replicate_of(j.method_id)]
    only = build_plan(load_experiments("table1"), bench_rows(tmp_path), profile="bench", methods=["pix2pix"])
    assert {j.method_id for j in only.train} == {"pix2pix", "pix2pix@seed1"}
    assert replicate_of("Uni-COAL_one@seed12") == ("Uni-COAL_one", 12) and replicate_of("Uni-COAL_one") is None


def test_bench_scores_at_least_six_test_subjects_and_trains_on_none_of_them(bench_plan):
    plan, rows = bench_plan
    split = {r.subject: r.split for r in rows}
    tested = {s.subject for s in plan.synthesize}
    assert len(tested) >= 6
    assert {split[s] for s in tested} == {"test"}
    assert tested == {s for s, v in split.items() if v == "test"}  # every test subject, in every cell
    per_cell: dict[tuple, set] = {}
    for s in plan.synthesize:
        per_cell.setdefault((s.table, s.method_id, s.cell), set()).add(s.subject)
    assert {len(v) for v in per_cell.values()} == {len(tested)}
    assert sum(v == "val" for v in split.values()) >= 6  # model selection has its own subjects


def test_bench_budget_is_one_per_table_where_the_test_profile_is_not(bench_plan, tmp_path):
    plan, _ = bench_plan
    for table in CELLS:
        steps = {j.max_steps for j in plan.train if table in j.tables}
        assert len(steps) == 1 and None not in steps, f"{table}: budgets {steps}"
        assert steps == {load_experiment(table).bench_max_steps}, table
    # the test profile keeps each method's own steps (pix2pix 40, AutoGAN 24, ...): bench overrides them
    test = build_plan(load_experiments("table1"), bench_rows(tmp_path), profile="test")
    assert len({j.max_steps for j in test.train}) > 1
    # --max-steps still wins over the tables' budgets
    capped = build_plan(load_experiments("table1,table6"), bench_rows(tmp_path), profile="bench", max_steps=7)
    assert {j.max_steps for j in capped.train} == {7}


def test_bench_budget_per_method_or_unknown_bench_task_is_refused():
    base = {"table": "tableX", "tasks": [{"name": "a", "source": "T1", "target": "T2", "scales": [1], "dataset": "D"}]}
    bad_method = {**base, "methods": [{"id": "m", "method": "m", "profiles": {"bench": {"max_steps": 10}}}]}
    with pytest.raises(InputError, match="one per table"):
        _parse_experiment("x.yaml", bad_method)
    ok = [{"id": "m", "method": "m"}]
    with pytest.raises(InputError, match="bench.tasks"):
        _parse_experiment("x.yaml", {**base, "methods": ok, "bench": {"tasks": ["nope"]}})
    with pytest.raises(InputError, match="bench.max_steps"):
        _parse_experiment("x.yaml", {**base, "methods": ok, "bench": {"max_steps": 0}})
    with pytest.raises(InputError, match="extra_seeds names 'x'"):
        _parse_experiment("x.yaml", {**base, "methods": ok, "bench": {"extra_seeds": {"x": [1]}}})
    for seeds in ([0], [1, 1], ["a"]):
        with pytest.raises(InputError, match="distinct integers >= 1"):
            _parse_experiment("x.yaml", {**base, "methods": ok, "bench": {"extra_seeds": {"m": seeds}}})
    exp = _parse_experiment("x.yaml", {**base, "methods": ok, "test": {"scales": [1]}, "bench": {"max_steps": 5}})
    assert exp.tasks_for("bench") == exp.tasks_for("test")  # no bench subset: the test one


def test_unicoal_plan_cli_accepts_the_bench_profile(tmp_path):
    sheet = write_samplesheet(tmp_path / "samplesheet.csv", bench_rows(tmp_path), relative=False)
    out = tmp_path / "jobs.csv"
    proc = subprocess.run([sys.executable, "-m", "unicoal", "plan", "--experiment", "table2", "--samplesheet", str(sheet),
                           "--out", str(out), "--profile", "bench"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        jobs = list(csv.DictReader(fh))
    train = [j for j in jobs if j["kind"] == "train"]
    assert {j["max_steps"] for j in train} == {str(load_experiment("table2").bench_max_steps)}
    assert {j["scale"] for j in jobs if j["kind"] == "synthesize"} == {"5"}


def test_schema_accepts_plan_profile_bench():
    from unicoal.params import load_schema, validate_params

    schema = load_schema(ROOT / "nextflow_schema.json")
    assert validate_params({"plan_profile": "bench"}, schema) == []
    assert validate_params({"plan_profile": "benchmark"}, schema)


def test_bench_nnunet_learns_from_every_subject_outside_the_test_split():
    """The bench's segmenter (an instrument, it selects no method) learns from train + val; the
    schema never lets a run train it on the test split."""
    from unicoal.params import load_schema, validate_params
    schema = load_schema(ROOT / "nextflow_schema.json")
    assert bench_param("seg_splits") == "train val"
    assert validate_params({"seg_splits": "train val"}, schema) == []
    assert validate_params({"seg_splits": "train val test"}, schema) and validate_params({"seg_splits": "test"}, schema)
    # SEGMENT_TRAIN's export passes the splits on; the default (train) adds no flag, so a default
    # run's nnU-Net cache keys are those of before the parameter
    block = (ROOT / "conf" / "modules.config").read_text().split("withName: 'SEGMENT_TRAIN'")[1].split("withName:")[0]
    assert re.search(r"ext\.export_args.*params\.seg_splits != 'train' \? \"--split \$\{params\.seg_splits\}\"", block)


@pytest.mark.slow
def test_stub_run_of_the_bench_profile_completes(tmp_path):
    """``nextflow run main.nf -profile bench -stub-run``: the whole bench graph (24 phantoms, every
    table's cell, nnU-Net, report) wired with stubs; stub tasks only touch files."""
    nf = VENV_BIN / "nextflow"
    if not nf.exists():
        pytest.skip("nextflow is not installed (make setup)")
    (tmp_path / "stub.config").write_text("executor { $local { cpus = 8; memory = 16.GB } }\n")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NXF_ANSI_LOG": "false"}
    out = tmp_path / "results_bench"
    proc = subprocess.run([str(nf), "run", str(ROOT / "main.nf"), "-profile", "bench", "-stub-run", "-c", str(tmp_path / "stub.config"),
                           "--outdir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    log = (tmp_path / ".nextflow.log").read_text()[-4000:] if (tmp_path / ".nextflow.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}\n{log}"
    with open(out / "plan" / "jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    train = [j for j in jobs if j["kind"] == "train"]
    synth = [j for j in jobs if j["kind"] == "synthesize"]
    assert {t for j in jobs for t in j["table"].split(";")} == set(CELLS)
    for table in CELLS:  # the pipeline planned the bench profile: one budget per table
        assert {j["max_steps"] for j in train if table in j["table"].split(";")} == {str(load_experiment(table).bench_max_steps)}
    # every test subject of the cohort is scored (the stub cohort splits 1 in 5 subjects to test,
    # not the phantom cohort's 25 %: the fast tests check >= 6 on the real split)
    with open(out / "plan" / "samplesheet.csv", newline="") as fh:
        test_subjects = {r["subject"] for r in csv.DictReader(fh) if r["split"] == "test"}
    assert {j["subject"] for j in synth} == test_subjects and len(test_subjects) == len(range(1, int(bench_param("phantom_subjects")) + 1, 5))
    traces = sorted((out / "pipeline_info").glob("execution_trace_*.txt"))
    assert traces, "no execution trace"
    with open(traces[-1], newline="") as fh:
        done: dict[str, int] = {}
        for r in csv.DictReader(fh, delimiter="\t"):
            name = r["process"].split(":")[-1]
            done[name] = done.get(name, 0) + (r["status"] == "COMPLETED")
    assert done.get("TRAIN") == len(train), done
    assert done.get("SYNTHESIZE") == done.get("EVALUATE") == len({j["train_id"] or f"{j['table']}-{j['method']}" for j in synth}), done
    assert (out / "report.html").is_file()
    # learning curves: one CURVES task over every model's run folder, published and staged into REPORT
    with open(traces[-1], newline="") as fh:
        workdirs = {r["process"].split(":")[-1]: Path(r["workdir"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert done.get("CURVES") == 1 and (out / "curves" / "curves.json").is_file(), done
    assert sorted(p.name for p in (workdirs["CURVES"] / "runs").iterdir()) == sorted(j["id"] for j in train)
    assert (workdirs["REPORT"] / "curves" / "curves.json").is_file()
    # the bench profile keeps conf/modules.config's TRAIN settings (a withName block would replace them)
    assert (out / "models").is_dir() and not (out / "train").exists()


def test_make_bench_runs_the_bench_profile_and_make_benchmarks_the_scripts():
    bench = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert re.search(r"nextflow run main\.nf -profile bench\b", bench)
    scripts = subprocess.run(["make", "-n", "benchmarks"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "benchmarks/*.py" in scripts and "nextflow" not in scripts

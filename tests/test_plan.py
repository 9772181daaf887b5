"""The experiment plan: tables as data expanded into train and synthesize jobs (unicoal.plan)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import pytest

from unicoal.cohort.samplesheet import SampleRow
from unicoal.errors import InputError
from unicoal.plan import (
    TABLES,
    build_plan,
    format_scale,
    load_experiment,
    load_experiments,
    load_profile,
    resolve_method,
    task_kind,
    write_plan,
)


@dataclass(frozen=True)
class FakeSpec:
    """Stand-in registry entry with the capability fields of unicoal.methods.MethodSpec."""

    name: str
    display: str
    tasks: frozenset
    arbitrary_in: frozenset = frozenset()
    arbitrary_out: frozenset = frozenset()
    trainable: bool = True


ALL = frozenset({"cms", "sr", "cmsr"})
REGISTRY = {
    "unicoal": FakeSpec("unicoal", "Uni-COAL", ALL, ALL, ALL),
    "scgan": FakeSpec("scgan", "SC-GAN", ALL),
    "resvit": FakeSpec("resvit", "ResViT", frozenset({"cms"}), frozenset({"cms"}), frozenset({"cms"})),
    "synthsr": FakeSpec("synthsr", "SynthSR", ALL, ALL),
    "linear": FakeSpec("linear", "Linear", frozenset({"sr"}), frozenset({"sr"}), frozenset({"sr"}), trainable=False),
}


def sheet(tmp_path, n=5, mods=("T1", "T2", "PD", "FLAIR"), test=(0,), label=False):
    rows = []
    for i in range(n):
        split = "test" if i in test else ("val" if i == n - 1 else "train")
        for m in mods:
            p = tmp_path / f"s{i}_{m}.nii.gz"
            p.touch()
            lab = tmp_path / f"s{i}_label.nii.gz" if label else None
            if lab is not None:
                lab.touch()
            rows.append(SampleRow(f"s{i}", m, p, lab, split))
    return rows


def test_every_table_loads_and_table4_matches_the_paper_layout():
    exps = load_experiments("all")
    assert [e.table for e in exps] == list(TABLES)
    t4 = load_experiment("table4")
    # Table IV: 3 SR blocks x 3 scales + 3 CMS/CMSR blocks x 4 scales = 21 rows, 6 methods
    assert sum(len(t.scales) for t in t4.tasks) == 21
    assert [m.id for m in t4.methods][:6] == ["ResViT", "ArSSR", "SC-GAN", "ProvoGAN", "SynthSR", "Uni-COAL"]
    # + the reference rows that are not in the paper (issue #14): interpolation and copy, non-trainable
    assert [(m.id, m.method) for m in t4.methods][6:] == [("Linear", "linear"), ("Cubic", "cubic"), ("Lanczos", "lanczos"), ("Copy", "copy")]
    assert {t.dataset for t in t4.tasks} == {"IXI"}
    assert not t4.dice
    t1 = load_experiment("table1")
    assert t1.dice and [(t.source, t.target) for t in t1.tasks] == [("T1", "T2"), ("T2", "FLAIR"), ("FLAIR", "T1")]


def test_experiment_method_ids_match_the_table_specs():
    from unicoal.report.specs import TABLE_SPECS

    for exp in load_experiments("all"):
        spec_methods = {c[3].method for c in TABLE_SPECS[exp.table].cells()}
        assert {m.id for m in exp.methods} <= spec_methods, exp.table


@pytest.mark.parametrize(
    "source,target,scale,kind",
    [("T1", "T1", 2, "SR"), ("T1", "T2", 1, "CMS"), ("T1", "T2", 4, "CMSR"), ("FLAIR", "T1", 5.33, "CMSR")],
)
def test_task_kind(source, target, scale, kind):
    assert task_kind(source, target, scale) == kind


def test_format_scale():
    assert [format_scale(s) for s in (1.0, 2, 5.33, 8.0)] == ["1", "2", "5.33", "8"]


def test_unified_method_trains_one_model_per_table_and_specific_one_per_cell(tmp_path):
    plan = build_plan([load_experiment("table4")], sheet(tmp_path), profile="full", registry=REGISTRY)
    by_method = {}
    for job in plan.train:
        by_method.setdefault(job.method_id, []).append(job)
    assert len(by_method["Uni-COAL"]) == 1                      # Sec. IV-C4: one model
    assert len(by_method["Uni-COAL"][0].cells) == 21
    assert len(by_method["SC-GAN"]) == 21                       # one per task and scale
    assert len(by_method["ResViT"]) == 1                        # multi-task CMS model
    assert len(by_method["ResViT"][0].cells) == 3               # ResViT only does the 1x CMS rows
    assert len(by_method["SynthSR"]) == 3 * 3                   # arbitrary input: per target and task kind
    assert "ArSSR" not in by_method and "ProvoGAN" not in by_method
    assert any("ArSSR" in s and "not registered" in s for s in plan.skipped)
    # 1 test subject: one synthesize job per (method, cell); Linear (untrained) runs the 9 SR cells
    assert len(plan.synthesize) == 21 + 21 + 3 + 21 + 9
    assert not [j for j in plan.train if j.method_id == "Linear"]
    uni = by_method["Uni-COAL"][0].config
    assert uni["base"] == "paper" and uni["method"] == "unicoal"
    assert uni["model"]["modalities"] == ["T1", "T2", "PD"]
    assert uni["data"]["ratios"] == [1.0, 2.0, 4.0, 6.0]


def test_test_profile_uses_the_tables_subset_and_tiny_models(tmp_path):
    plan = build_plan([load_experiment("table4")], sheet(tmp_path, test=(0, 1)), profile="test", registry=REGISTRY, methods=["unicoal"])
    assert len(plan.train) == 1
    job = plan.train[0]
    assert job.config["base"] == "tiny" and job.max_steps == load_profile("test")["max_steps"] == 150
    cells = sorted((c.source, c.target, c.scale) for c in job.cells)
    assert cells == [("T1", "T1", 2.0), ("T1", "T2", 1.0), ("T1", "T2", 2.0)]
    # max_test_subjects = 1 in the test profile, although two subjects are in the test split
    assert {j.subject for j in plan.synthesize} == {"s0"} and len(plan.synthesize) == 3


def test_identical_models_of_two_tables_are_trained_once(tmp_path):
    exps = [load_experiment("table3"), load_experiment("table6")]
    plan = build_plan(exps, sheet(tmp_path), profile="full", registry=REGISTRY, methods=["Uni-COAL_cmsr"])
    csdh = [j for j in plan.train if any(c.dataset == "CSDH" for c in j.cells)]
    assert len(csdh) == 1 and csdh[0].tables == ["table3", "table6"]
    tables = sorted(j.table for j in plan.synthesize if j.train_id == csdh[0].id)
    assert tables == ["table3", "table6"]


def test_table6_ablations_switch_components_off(tmp_path):
    plan = build_plan([load_experiment("table6")], sheet(tmp_path), profile="full", registry=REGISTRY)
    cfg = {j.method_id: j.config for j in plan.train}
    assert cfg["Uni-COAL_ablation_baseline"]["model"]["alias_free_encoder"] is False
    assert cfg["Uni-COAL_ablation_baseline"]["loss"]["sam_weight"] == 0
    assert "loss" not in cfg["Uni-COAL_cmsr"]
    assert len(plan.train) == 5


def test_missing_modalities_are_skipped_with_a_reason(tmp_path):
    plan = build_plan([load_experiment("table1")], sheet(tmp_path, mods=("T1", "T2")), profile="full", registry=REGISTRY)
    assert {(c.source, c.target) for j in plan.train for c in j.cells} == {("T1", "T2")}
    assert any("T2-FLAIR" in s and "no T2 and FLAIR" in s for s in plan.skipped)


def test_dice_only_for_tables_with_dsc_and_labelled_subjects(tmp_path):
    with_labels = build_plan([load_experiment("table1")], sheet(tmp_path, label=True), profile="full", registry=REGISTRY, methods=["scgan"])
    assert with_labels.synthesize and all(j.dice for j in with_labels.synthesize)
    no_labels = build_plan([load_experiment("table1")], sheet(tmp_path), profile="full", registry=REGISTRY, methods=["scgan"])
    assert not any(j.dice for j in no_labels.synthesize)
    adni = build_plan([load_experiment("table2")], sheet(tmp_path, label=True), profile="full", registry=REGISTRY, methods=["synthsr"])
    assert {(j.cell.dataset, j.dice) for j in adni.synthesize} == {("CSDH", True), ("ADNI", False)}


def test_ignore_registry_plans_every_method(tmp_path):
    plan = build_plan(load_experiments("all"), sheet(tmp_path), profile="full", registry={}, ignore_registry=True)
    assert {j.method_id for j in plan.train} >= {"pix2pix", "DCSRN", "ArSSR", "Uni-COAL_ablation_baseline"}
    assert not [s for s in plan.skipped if "not registered" in s]
    empty = build_plan(load_experiments("all"), sheet(tmp_path), profile="full", registry={})
    assert not empty.train and not empty.synthesize


def test_untrainable_methods_get_synthesize_jobs_without_a_model(tmp_path):
    from unicoal.plan import Experiment, MethodEntry, TaskEntry

    exp = Experiment("table4", "x", ("PSNR",), (MethodEntry("Linear", "linear"),), (TaskEntry("T1 SR", "T1", "T1", (2, 4), "IXI"),))
    plan = build_plan([exp], sheet(tmp_path), profile="full", registry=REGISTRY)
    assert plan.train == [] and len(plan.synthesize) == 2
    assert all(j.train_id == "" for j in plan.synthesize)


def test_resolve_method_ignores_case_and_punctuation():
    assert resolve_method("SC-GAN", REGISTRY).name == "scgan"
    assert resolve_method("uni-coal", REGISTRY).name == "unicoal"
    assert resolve_method("pix2pix", REGISTRY) is None


def test_write_plan_csv_configs_and_samplesheet(tmp_path):
    rows = sheet(tmp_path)
    plan = build_plan([load_experiment("table4")], rows, profile="test", registry=REGISTRY, methods=["unicoal", "scgan"])
    out = write_plan(plan, tmp_path / "plan" / "jobs.csv")
    with open(out, newline="") as fh:
        jobs = list(csv.DictReader(fh))
    trains = [j for j in jobs if j["kind"] == "train"]
    synths = [j for j in jobs if j["kind"] == "synthesize"]
    assert len(trains) == len(plan.train) == 1 + 3
    for j in trains:
        assert (out.parent / j["config"]).is_file()
        # the profile's 150 steps, or the method's own (the table row's `profiles: {test: {max_steps: 30}}`)
        assert j["max_steps"] == ("150" if j["method"] == "unicoal" else "30")
    assert {j["train_id"] for j in synths} == {j["id"] for j in trains}
    assert {j["scale"] for j in synths} == {"1", "2"}
    with open(out.parent / "samplesheet.csv", newline="") as fh:
        sheet_rows = list(csv.DictReader(fh))
    assert len(sheet_rows) == len(rows) and all(r["path"].startswith("/") for r in sheet_rows)
    js = write_plan(plan, tmp_path / "plan2" / "jobs.json")
    doc = json.loads(js.read_text())
    assert doc["train_jobs"] == 4 and len(doc["jobs"]) == 4 + doc["synthesize_jobs"]


def test_plan_configs_are_accepted_by_the_trainer(tmp_path):
    from unicoal.train.config import load_config

    plan = build_plan(load_experiments("all"), sheet(tmp_path), profile="test", methods=["unicoal"])
    out = write_plan(plan, tmp_path / "plan" / "jobs.csv")
    assert len(plan.train) >= 5
    for job in plan.train:
        cfg = load_config(str(out.parent / "configs" / f"{job.id}.yaml"))
        assert list(cfg.model["modalities"]) == job.config["model"]["modalities"]
        assert list(cfg.data.output_modalities) == job.config["data"]["output_modalities"]


def test_cli_plan_and_errors(tmp_path, capsys):
    from unicoal.cli import main
    from unicoal.cohort.samplesheet import write_samplesheet

    rows = sheet(tmp_path)
    write_samplesheet(tmp_path / "s.csv", rows)
    assert main(["plan", "--experiment", "table4", "--samplesheet", str(tmp_path / "s.csv"), "--out", str(tmp_path / "o" / "jobs.csv"), "--profile", "test", "--ignore-registry"]) == 0
    assert (tmp_path / "o" / "jobs.csv").read_text().count("\nsynthesize,") > 0
    assert main(["plan", "--experiment", "table5", "--samplesheet", str(tmp_path / "s.csv"), "--out", str(tmp_path / "x.csv")]) == 1
    assert "unknown experiment 'table5'" in capsys.readouterr().err
    with pytest.raises(InputError):
        load_experiments("tableX")

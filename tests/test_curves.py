"""`unicoal curves` (issue #21): learning curves on the validation split from the val.csv files
that real tiny trainings write, one PNG + tidy CSV per table, seed replicates, runs without
validation skipped, malformed files refused, and the report's section."""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unicoal.cli import main
from unicoal.errors import InputError
from unicoal.io import write_csv
from unicoal.plan import JOB_COLUMNS
from unicoal.report.curves import CURVE_COLUMNS, collect, draw, read_val_csv
from unicoal.train.config import load_config
from unicoal.train.loop import train
from unicoal.train.synthetic import make_synthetic_cohort, micro_overrides
from unicoal.train.validate import METRIC

torch.set_num_threads(1)

T1 = "table1-uni-coal-one"
T1_SEED = "table1-uni-coal-one-seed1"
T1_NOVAL = "table1-pix2pix"
T4 = ("table4-sc-gan-x2", "table4-sc-gan-x4")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _job(tid: str, table: str, method_id: str, task="CMS", sources="T1", targets="T2", scales="1") -> dict:
    return {**dict.fromkeys(JOB_COLUMNS, ""), "kind": "train", "id": tid, "train_id": tid, "table": table, "method_id": method_id,
            "method": "unicoal", "task": task, "sources": sources, "targets": targets, "scales": scales, "max_steps": "4"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """models/<train id>/ as TRAIN publishes them: two real tiny trainings with validation at every
    step (seeds 0 and 1), one run without val.csv, and two runs whose val.csv (validate.py's own
    header and rows) peaks before the last step; plus the plan's jobs.csv."""
    root = tmp_path_factory.mktemp("curves")
    sheet = make_synthetic_cohort(root / "cohort", subjects=3, shape=(36, 36, 24), splits=["train", "val", "test"])
    models = root / "models"
    for tid, seed in ((T1, 0), (T1_SEED, 1)):
        cfg = load_config("tiny", micro_overrides(optim={"total_steps": 4}, run={"checkpoint_every": 4, "val_every": 1, "seed": seed}))
        train(cfg, sheet, models / tid, progress=False)
    shutil.copytree(models / T1, models / T1_NOVAL)
    (models / T1_NOVAL / "val.csv").unlink()  # validation off (run.val_every 0): no val.csv
    real = _rows(models / T1 / "val.csv")
    for tid, peak in zip(T4, (1, 2)):  # the best on validation before the last step
        (models / tid).mkdir()
        rows = []
        for i, r in enumerate(real):
            score = 20.0 + (i if i <= peak else 2 * peak - i)
            rows.append({**r, METRIC: score, "best": int(i <= peak)})
        write_csv(models / tid / "val.csv", list(real[0]), rows)
    jobs = [_job(T1, "table1", "Uni-COAL_one"), _job(T1_SEED, "table1", "Uni-COAL_one@seed1"), _job(T1_NOVAL, "table1", "pix2pix"),
            _job(T4[0], "table4", "SC-GAN", task="SR", targets="T1", scales="2"),
            _job(T4[1], "table4", "SC-GAN", task="SR", targets="T1", scales="4"),
            {**dict.fromkeys(JOB_COLUMNS, ""), "kind": "synthesize", "id": "s1", "train_id": T1, "table": "table1", "method_id": "Uni-COAL_one"}]
    write_csv(root / "jobs.csv", JOB_COLUMNS, jobs)
    return root


@pytest.fixture(scope="module")
def curves(runs) -> Path:
    out = runs / "curves"
    assert main(["curves", "--jobs", str(runs / "jobs.csv"), "--runs", str(runs / "models"), "--out-dir", str(out)]) == 0
    return out


def test_real_val_csv_gives_a_png_and_the_tidy_csv_with_the_selected_step(runs, curves):
    assert (curves / "table1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(curves / "table1.csv")
    assert list(rows[0]) == list(CURVE_COLUMNS)
    for tid, method_id in ((T1, "Uni-COAL_one"), (T1_SEED, "Uni-COAL_one@seed1")):
        val = _rows(runs / "models" / tid / "val.csv")
        mine = [r for r in rows if r["train_id"] == tid]
        assert [int(r["step"]) for r in mine] == [int(v["step"]) for v in val] == [1, 2, 3, 4]
        assert [float(r["psnr"]) for r in mine] == [float(v[METRIC]) for v in val]
        assert [float(r["ssim"]) for r in mine] == [float(v["ssim_head"]) for v in val]
        assert {r["method_id"] for r in mine} == {method_id} and {r["table"] for r in mine} == {"table1"}
        # the selected step: val.csv's last best row, the checkpoint that ships as model.pt
        shipped = torch.load(runs / "models" / tid / "model.pt", weights_only=True)["selection"]["step"]
        assert [int(r["step"]) for r in mine if r["best"] == "1"] == [[int(v["step"]) for v in val if v["best"] == "1"][-1]] == [shipped]
    # two seeds of one method: different curves
    assert [r["psnr"] for r in rows if r["train_id"] == T1] != [r["psnr"] for r in rows if r["train_id"] == T1_SEED]


def test_manifest_and_runs_without_validation_are_skipped(curves):
    doc = json.loads((curves / "curves.json").read_text())
    assert doc["metric"] == METRIC and set(doc["tables"]) == {"table1", "table4"}
    t1 = doc["tables"]["table1"]
    assert (t1["png"], t1["csv"]) == ("table1.png", "table1.csv")
    assert [m["train_id"] for m in t1["models"]] == [T1, T1_SEED]
    assert [(s["train_id"], s["method_id"]) for s in t1["skipped"]] == [(T1_NOVAL, "pix2pix")]
    assert "no val.csv" in t1["skipped"][0]["reason"]
    t4 = {m["train_id"]: m for m in doc["tables"]["table4"]["models"]}
    assert (t4[T4[0]]["selected_step"], t4[T4[0]]["best_psnr"], t4[T4[0]]["last_psnr"]) == (2, 21.0, 19.0)
    assert (t4[T4[1]]["selected_step"], t4[T4[1]]["best_psnr"], t4[T4[1]]["last_step"]) == (3, 22.0, 4)
    t4_csv = _rows(curves / "table4.csv")
    assert [(r["train_id"], r["step"]) for r in t4_csv if r["best"] == "1"] == [(T4[0], "2"), (T4[1], "3")]
    # several models of one method: labelled by their cell
    assert [t4[t]["label"] for t in T4] == ["SC-GAN (SR T1 x2)", "SC-GAN (SR T1 x4)"]


def test_replicates_dashed_in_their_methods_colour_and_the_selected_step_marked(runs):
    import matplotlib.pyplot as plt

    curves, _, _ = collect(runs / "jobs.csv", [runs / "models"])
    fig = draw("table1", curves["table1"])
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    plt.close(fig)
    base, rep = lines["Uni-COAL_one"], lines["Uni-COAL_one@seed1"]
    assert base.get_linestyle() == "-" and rep.get_linestyle() == "--" and base.get_color() == rep.get_color()
    for tid, (m, c) in zip((T1, T1_SEED), curves["table1"]):
        star = lines[f"_selected {tid}"]
        assert (list(star.get_xdata()), list(star.get_ydata())) == ([c.selected_step], [max(c.psnr)])
    fig = draw("table4", curves["table4"])
    x2, x4 = (ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("SC-GAN ("))
    plt.close(fig)
    assert x2.get_color() == x4.get_color() and x2.get_marker() != x4.get_marker()


def test_runs_accepts_run_folders_as_well_as_their_parent(runs, curves, tmp_path):
    out = tmp_path / "curves"
    assert main(["curves", "--jobs", str(runs / "jobs.csv"), "--runs", *(str(runs / "models" / t) for t in (T1, T1_SEED, *T4)),
                 "--out-dir", str(out)]) == 0
    assert _rows(out / "table1.csv") == _rows(curves / "table1.csv")
    assert _rows(out / "table4.csv") == _rows(curves / "table4.csv")
    # pix2pix's folder not passed this time: skipped as not found
    (skip,) = json.loads((out / "curves.json").read_text())["tables"]["table1"]["skipped"]
    assert skip["train_id"] == T1_NOVAL and "no run folder" in skip["reason"]
    # a run outside the plan is noted and left out; one model's run given twice is refused
    stray = tmp_path / "elsewhere" / T1
    shutil.copytree(runs / "models" / T1, stray)
    shutil.copytree(runs / "models" / T1, tmp_path / "stray")
    _, _, notes = collect(runs / "jobs.csv", [runs / "models", tmp_path / "stray"])
    assert notes == [f"stray: run folder {tmp_path / 'stray'} is not a train job of the plan (ignored)"]
    with pytest.raises(InputError, match=f"a second run folder for '{T1}'"):
        collect(runs / "jobs.csv", [runs / "models", stray])


def test_no_validation_in_the_run_gives_no_figure_and_the_report_says_so(runs, tmp_path):
    jobs = tmp_path / "jobs.csv"
    header_only = tmp_path / "models" / "table1-empty"
    header_only.mkdir(parents=True)
    (header_only / "val.csv").write_text(",".join(_rows(runs / "models" / T1 / "val.csv")[0]) + "\n")
    write_csv(jobs, JOB_COLUMNS, [_job(T1_NOVAL, "table1", "pix2pix"), _job("table1-empty", "table1", "AutoGAN")])
    shutil.copytree(runs / "models" / T1_NOVAL, tmp_path / "models" / T1_NOVAL)
    out = tmp_path / "curves"
    assert main(["curves", "--jobs", str(jobs), "--runs", str(tmp_path / "models"), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.json"]
    t1 = json.loads((out / "curves.json").read_text())["tables"]["table1"]
    assert t1["png"] is None and t1["models"] == []
    assert [s["reason"].split(" (")[0] for s in t1["skipped"]] == ["no val.csv", "val.csv has no rows"]
    html = tmp_path / "report.html"
    assert main(["report", "--curves", str(out), "--out", str(html)]) == 0
    text = html.read_text()
    assert "Learning curves (validation split)" in text and "there are no learning curves" in text
    assert "No curve, val.csv has no rows (no validation ran): AutoGAN (table1-empty)." in text


def test_report_embeds_each_tables_curves_and_selected_steps(runs, curves, tmp_path, capsys):
    html = tmp_path / "report.html"
    assert main(["report", "--curves", str(curves), "--out", str(html)]) == 0
    text = html.read_text()
    section = text[text.index('<section id="curves">'):]
    section = section[: section.index("</section>")]
    assert section.count("data:image/png;base64,") == 2 and "<h3>table1</h3>" in section and "<h3>table4</h3>" in section
    doc = json.loads((curves / "curves.json").read_text())
    for m in doc["tables"]["table1"]["models"] + doc["tables"]["table4"]["models"]:
        assert (f"<td>{m['train_id']}</td><td>{m['label']}</td><td>{m['selected_step']}</td><td>{m['best_psnr']:.2f}</td>"
                f"<td>{m['last_psnr']:.2f} ({m['last_step']})</td>") in section
    assert "No curve, no val.csv (validation off: run.val_every 0 or no val subjects): pix2pix (table1-pix2pix)." in section
    # the report without --curves says where they come from, and a wrong folder is one clear error
    assert main(["report", "--out", str(tmp_path / "bare.html")]) == 0
    assert "No learning curves given" in (tmp_path / "bare.html").read_text()
    capsys.readouterr()
    assert main(["report", "--curves", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 1
    assert capsys.readouterr().err == (f"unicoal: error: {tmp_path / 'curves.json'}: file not found "
                                       "(fix: pass the --out-dir of `unicoal curves` as --curves)\n")
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize("edit, problem", [
    (lambda rows: [{k: v for k, v in r.items() if k != "ssim_head"} for r in rows], "missing column(s) ssim_head"),
    (lambda rows: [{**r, METRIC: "oops"} if i == 1 else r for i, r in enumerate(rows)], f"line 3: {METRIC} is 'oops', not a number"),
    (lambda rows: [{**r, METRIC: "inf"} for r in rows], "not a finite number"),
    (lambda rows: [{**r, METRIC: "nan"} for r in rows], f"has {METRIC} nan"),
    (lambda rows: [{**r, "best": "yes"} for r in rows], "best is 'yes', expected 0 or 1"),
    (lambda rows: [{**r, "best": 0} for r in rows], "no row has best = 1"),
    (lambda rows: rows[:1] + rows[:1], "steps must increase"),
    (lambda rows: [{**r, METRIC: 30 - i, "best": int(i == 3)} for i, r in enumerate(rows)], "but step 1 scores higher"),
])
def test_malformed_val_csv_is_refused_naming_the_file_and_the_fix(runs, tmp_path, edit, problem):
    rows = edit(_rows(runs / "models" / T1 / "val.csv"))
    bad = tmp_path / "models" / T1
    bad.mkdir(parents=True)
    write_csv(bad / "val.csv", list(rows[0]), rows)
    with pytest.raises(InputError) as err:
        read_val_csv(bad / "val.csv")
    assert problem in str(err.value) and str(bad / "val.csv") in str(err.value) and "fix:" in str(err.value)


def test_a_diverged_validation_is_a_gap_not_an_error(runs, tmp_path):
    rows = _rows(runs / "models" / T1 / "val.csv")
    assert len(rows) >= 2
    # a generator that diverged at its last validation (PSNR nan): never selected, drawn as a gap
    rows = [{**r, "best": int(i == 0), METRIC: 30.0 if i == 0 else 20.0} for i, r in enumerate(rows)]
    rows[-1] = {**rows[-1], METRIC: "nan", "best": 0}
    bad = tmp_path / "models" / T1
    bad.mkdir(parents=True)
    write_csv(bad / "val.csv", list(rows[0]), rows)
    curve = read_val_csv(bad / "val.csv")
    assert curve.selected_step == int(rows[0]["step"]) and math.isnan(curve.psnr[-1])


def test_cli_error_is_one_line_with_exit_code_and_writes_nothing(runs, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(runs / "models", models)
    (models / T1_SEED / "val.csv").write_text("step,kimg\n1,0.004\n")
    out = tmp_path / "curves"
    proc = subprocess.run([sys.executable, "-m", "unicoal", "curves", "--jobs", str(runs / "jobs.csv"), "--runs", str(models),
                           "--out-dir", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"unicoal: error: {models / T1_SEED / 'val.csv'}: missing column(s) {METRIC}")
    assert not out.exists() or not [p for p in out.iterdir()]  # no half-written output
    proc = subprocess.run([sys.executable, "-m", "unicoal", "curves", "--jobs", str(runs / "jobs.csv"), "--runs", str(tmp_path / "nope"),
                           "--out-dir", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and "run folder not found" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_jobs_file_that_is_not_the_plans_is_refused(runs, tmp_path):
    with pytest.raises(InputError, match="jobs file not found"):
        collect(tmp_path / "jobs.csv", [runs / "models"])
    rows = _rows(runs / "jobs.csv")
    write_csv(tmp_path / "jobs.csv", [c for c in JOB_COLUMNS if c != "method_id"], [{k: v for k, v in r.items() if k != "method_id"} for r in rows])
    with pytest.raises(InputError, match=r"missing column\(s\) method_id"):
        collect(tmp_path / "jobs.csv", [runs / "models"])

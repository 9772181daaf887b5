"""Per-method 95 % CI, the gain over the trivial reference and the seed spread (issue #21):
unicoal/report/method_stats.py, written by `unicoal tables`, shown by `unicoal report`; seed
replicates stay out of the paired tests (unicoal/evaluate/stats.py)."""
from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest
from scipy import stats as sps

from unicoal.evaluate.rows import ResultRow, write_rows
from unicoal.evaluate.stats import compare_methods
from unicoal.report.method_stats import mean_ci, method_stats, seed_spread, trivial_reference, write_method_stats

SUBJECTS = ["s1", "s2", "s3", "s4", "s5", "s6"]
VALUES = {  # PSNR inside the brain per subject
    "Copy": [10.0, 11.0, 9.0, 10.5, 10.0, 9.5],
    "pix2pix": [12.0, 12.5, 8.0, 13.0, 12.0, 11.0],
    "pix2pix@seed1": [12.5, 12.0, 9.0, 12.0, 12.5, 11.5],
    "Uni-COAL_one": [14.0, 15.0, 13.0, 14.5, 13.0, 14.0],
    "ResViT": [9.0, 10.0, 8.0, 10.0, 9.0, 9.0],
}


def rows(task="CMS", source="T1", target="T2", scale=1.0, values=VALUES, convention="brainmask"):
    return [ResultRow("table1", "BraTS", task, m, s, source, target, scale, "PSNR", v, convention)
            for m, vals in values.items() for s, v in zip(SUBJECTS, vals)]


def by_method(records):
    return {r["method"]: r for r in records}


def test_mean_ci_is_the_student_t_interval_of_the_mean():
    v = VALUES["pix2pix"]
    mean, sd, lo, hi = mean_ci(v)
    ref = sps.t.interval(0.95, len(v) - 1, loc=sum(v) / len(v), scale=sps.sem(v))
    assert mean == pytest.approx(sum(v) / 6) and sd == pytest.approx(sps.tstd(v))
    assert (lo, hi) == pytest.approx(ref)
    assert math.isnan(mean_ci([3.0])[2]) and math.isnan(mean_ci([])[0])
    assert mean_ci([1.0, math.inf, 3.0])[0] == 2.0  # non-finite values are left out


def test_gain_over_the_trivial_reference_is_paired_per_subject():
    recs = by_method(method_stats(rows()))
    assert trivial_reference("CMS") == trivial_reference("CMSR") == "Copy" and trivial_reference("SR") == "Linear"
    p2p = recs["pix2pix"]
    diffs = [a - b for a, b in zip(VALUES["pix2pix"], VALUES["Copy"])]
    assert p2p["reference"] == "Copy" and p2p["n_paired"] == 6
    assert p2p["diff"] == pytest.approx(sum(diffs) / 6)
    assert (p2p["diff_ci_low"], p2p["diff_ci_high"]) == pytest.approx(mean_ci(diffs)[2:])
    assert p2p["wins"] == 5 and p2p["beats"] == "yes"  # s3: 8.0 < 9.0
    assert recs["ResViT"]["beats"] == "no" and recs["ResViT"]["wins"] == 0
    assert recs["Copy"]["reference"] == ""  # the reference is not compared with itself
    # SR cells compare with linear interpolation; a cell without its reference has no gain
    sr = by_method(method_stats(rows("SR", "T1", "T1", 5.0, {"Linear": [1, 2, 3, 4, 5, 6], "DCSRN": [2, 2, 4, 4, 6, 6]})))
    assert sr["DCSRN"]["reference"] == "Linear" and sr["DCSRN"]["wins"] == 3
    alone = by_method(method_stats(rows(values={"pix2pix": VALUES["pix2pix"]})))
    assert alone["pix2pix"]["reference"] == "" and alone["pix2pix"]["beats"] == ""


def test_other_conventions_and_metrics_are_left_out():
    kept = method_stats(rows(convention="published") + rows(convention="targetscale"))
    assert {r["convention"] for r in kept} == {"published"}


def test_seed_spread_sets_the_replicate_beside_the_nearest_method_gap():
    (s,) = seed_spread(method_stats(rows()))
    base, rep = sum(VALUES["pix2pix"]) / 6, sum(VALUES["pix2pix@seed1"]) / 6
    assert s["method"] == "pix2pix" and s["seed"] == 1
    assert s["spread"] == pytest.approx(abs(rep - base))
    # nearest other learned method: ResViT (9.17) vs Uni-COAL_one (13.92) from pix2pix's 11.42; Copy is a reference
    assert s["nearest_method"] == "ResViT" and s["nearest_gap"] == pytest.approx(base - sum(VALUES["ResViT"]) / 6)


def test_paired_tests_leave_seed_replicates_out():
    tests = compare_methods(rows(), reference="Uni-COAL_one")
    assert {t.method for t in tests} == {"Copy", "pix2pix", "ResViT"}


def test_tables_command_writes_methods_and_the_report_shows_them(tmp_path):
    write_rows(tmp_path / "rows.csv", rows() + rows(convention="published"))
    out = tmp_path / "tables"
    proc = subprocess.run([sys.executable, "-m", "unicoal", "tables", "--in", str(tmp_path / "rows.csv"), "--out-dir", str(out),
                           "--reference", "none"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out / "methods.csv", newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert {(r["method"], r["convention"]) for r in recs} >= {("pix2pix@seed1", "brainmask"), ("Uni-COAL_one", "published")}
    with open(out / "seeds.csv", newline="") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == ["pix2pix", "pix2pix"]  # both conventions
    md = (out / "methods.md").read_text()
    assert "### table1: BraTS CMS T1 -> T2 x1" in md and "### Seed spread" in md
    # methods ordered by mean PSNR, the reference last
    order = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "mean ± sd" not in line]
    assert order[:5] == ["Uni-COAL_one", "pix2pix@seed1", "pix2pix", "ResViT", "Copy"]
    report = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "unicoal", "report", "--tables", str(out), "--out", str(report)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert 'id="methods"' in text and "Seed spread" in text and "95 % Student-t interval" in text


def test_write_method_stats_without_replicates_writes_an_empty_seed_table(tmp_path):
    recs, seeds = write_method_stats(tmp_path, rows(values={k: v for k, v in VALUES.items() if "@" not in k}))
    assert recs and seeds == [] and (tmp_path / "seeds.csv").read_text().startswith("table,")
    assert "Seed spread" not in (tmp_path / "methods.md").read_text()

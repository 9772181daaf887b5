"""`unicoal stats`: paired Wilcoxon / t-test p-values on constructed data with known answers."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats as sps

from unicoal.cli import main
from unicoal.evaluate.rows import ResultRow, write_rows
from unicoal.evaluate.stats import compare_methods, method_key, paired_test, read_stats


def _rows(method, values, table="table4", metric="PSNR", convention="published", subjects=None):
    subjects = subjects or [f"s{i}" for i in range(len(values))]
    return [ResultRow(table, "IXI", "SR", method, s, "T1", "T1", 2, metric, v, convention) for s, v in zip(subjects, values)]


def test_wilcoxon_exact_p_by_hand():
    # All 5 differences positive: the exact two-sided signed-rank p is 2 / 2^5 = 0.0625;
    # with 6 it is 2 / 2^6 = 0.03125.
    ref = [10.0, 11.0, 12.0, 13.0, 14.0]
    w, t = paired_test([r + d for r, d in zip(ref, [1, 2, 3, 4, 5])], ref)
    assert w == pytest.approx(0.0625, abs=1e-12)
    # paired t: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5)/sqrt(5)) = 4.2426, df 4
    t_stat = 3 / (math.sqrt(2.5) / math.sqrt(5))
    assert t == pytest.approx(2 * sps.t.sf(t_stat, 4), rel=1e-12)
    assert t == pytest.approx(0.013236, abs=1e-6)
    w6, _ = paired_test([1, 2, 3, 4, 5, 6.5], [0, 0, 0, 0, 0, 0])
    assert w6 == pytest.approx(0.03125, abs=1e-12)


def test_degenerate_cases_are_nan():
    assert all(math.isnan(p) for p in paired_test([1.0], [2.0]))
    assert all(math.isnan(p) for p in paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]))


def test_compare_methods_pairs_subjects_and_matches_scipy():
    rng = np.random.default_rng(0)
    ref = 30 + rng.standard_normal(12)
    other = ref - 0.5 + 0.3 * rng.standard_normal(12)
    rows = _rows("Uni-COAL", ref) + _rows("SynthSR", other)
    # an extra subject for SynthSR only, and a non-finite value: both must be left out of the pairs
    rows += _rows("SynthSR", [25.0], subjects=["extra"])
    rows += _rows("Uni-COAL", [math.inf], subjects=["same"]) + _rows("SynthSR", [28.0], subjects=["same"])
    tests = compare_methods(rows, "uni-coal")  # names compare case/punctuation-insensitively
    assert len(tests) == 1
    t = tests[0]
    assert t.method == "SynthSR" and t.reference == "Uni-COAL" and t.n == 12
    assert t.wilcoxon_p == pytest.approx(sps.wilcoxon(other, ref).pvalue, rel=1e-12)
    assert t.ttest_p == pytest.approx(sps.ttest_rel(other, ref).pvalue, rel=1e-12)
    assert t.mean_diff == pytest.approx(float(np.mean(other - ref)), abs=1e-12)
    assert method_key("Uni-COAL_multi") == method_key("unicoal-MULTI")


def test_cli_writes_p_values_per_table_reference(tmp_path):
    rows = _rows("Uni-COAL", [10, 11, 12, 13, 14]) + _rows("ArSSR", [9, 9, 9, 9, 9])
    rows += _rows("Uni-COAL_multi", [1, 2, 3, 4, 5, 6], table="table1") + _rows("pGAN", [0, 0, 0, 0, 0, 0], table="table1")
    rows += _rows("Uni-COAL", [5, 5, 5, 5, 5, 5], table="table1")  # not the reference in Table I
    write_rows(tmp_path / "a.csv", rows[:10])
    write_rows(tmp_path / "b.csv", rows[10:])
    out = tmp_path / "p.csv"
    assert main(["stats", "--in", str(tmp_path / "a.csv"), "--in", str(tmp_path / "b.csv"), "--out", str(out)]) == 0
    got = {(t.cell[0], t.method): t for t in read_stats(out)}
    assert set(got) == {("table4", "ArSSR"), ("table1", "pGAN"), ("table1", "Uni-COAL")}
    assert got["table4", "ArSSR"].reference == "Uni-COAL"
    assert got["table4", "ArSSR"].wilcoxon_p == pytest.approx(0.0625)
    assert got["table1", "pGAN"].reference == "Uni-COAL_multi"
    assert got["table1", "pGAN"].wilcoxon_p == pytest.approx(0.03125)
    with open(out) as fh:
        assert "wilcoxon_p" in next(csv.reader(fh))


def test_missing_input_is_one_line_error(tmp_path, capsys):
    assert main(["stats", "--in", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "nope.csv: file not found" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()

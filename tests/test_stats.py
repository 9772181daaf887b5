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


# ---------------------------------------------------------------------------------------------
# Issue #14: per-group references, Holm, duplicates, dropped pairs, the exact-test floor


def _t1(method, values, metric="PSNR", subjects=None):
    subjects = subjects or [f"b{i}" for i in range(len(values))]
    return [ResultRow("table1", "BraTS", "CMS", method, s, "T1", "T2", 1, metric, v, "published") for s, v in zip(subjects, values)]


def test_table1_tests_the_2d_group_against_uni_coal_one(tmp_path):
    """Sec. IV-C1: Uni-COAL_one beats pix2pix/AutoGAN (2D group); Uni-COAL_multi beats the 2.5D/3D group."""
    one = [26.0, 26.5, 27.0, 25.5, 26.2, 26.8]
    multi = [v + 0.3 for v in one]
    pix2pix = [v - 1.0 - 0.1 * i for i, v in enumerate(one)]  # below Uni-COAL_one on all 6 subjects
    pgan = [v - 0.5 - 0.05 * i for i, v in enumerate(multi)]
    rows = _t1("Uni-COAL_one", one) + _t1("Uni-COAL_multi", multi) + _t1("pix2pix", pix2pix) + _t1("pGAN", pgan)
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    got = {t.method: t for t in read_stats(tmp_path / "p.csv")}
    assert set(got) == {"pix2pix", "pGAN"}  # Uni-COAL_one is a reference itself: never starred against _multi
    assert got["pix2pix"].reference == "Uni-COAL_one"
    assert got["pix2pix"].mean_diff == pytest.approx(float(np.mean(np.subtract(pix2pix, one))))
    assert got["pix2pix"].wilcoxon_p == pytest.approx(0.03125)  # 6 pairs of one sign: 2 / 2^6
    assert got["pGAN"].reference == "Uni-COAL_multi"


def test_holm_matches_a_hand_computation():
    from unicoal.evaluate.stats import holm

    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(holm(p)[4])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone


def test_holm_family_is_one_table_and_convention():
    ref = [30.0, 31.0, 32.0, 33.0, 34.0, 35.0]
    rows = _rows("Uni-COAL", ref) + _rows("ArSSR", [r - 1 - 0.1 * i for i, r in enumerate(ref)])
    rows += _rows("SynthSR", [r + 0.5 * (-1) ** i for i, r in enumerate(ref)])  # no consistent difference
    rows += _rows("Uni-COAL", ref, table="table2") + _rows("DCSRN", [r - 2 for r in ref], table="table2")
    tests = {(t.cell[0], t.method): t for t in compare_methods(rows, "Uni-COAL")}
    a, s = tests["table4", "ArSSR"], tests["table4", "SynthSR"]
    raw = sorted([a.wilcoxon_p, s.wilcoxon_p])
    assert a.wilcoxon_p_holm == pytest.approx(min(1.0, 2 * raw[0]))  # the smaller p, times m = 2
    assert s.wilcoxon_p_holm == pytest.approx(max(min(1.0, 2 * raw[0]), min(1.0, raw[1])))
    d = tests["table2", "DCSRN"]
    assert d.wilcoxon_p_holm == pytest.approx(d.wilcoxon_p)  # alone in its table: m = 1


def test_duplicate_subject_is_refused(tmp_path, capsys):
    rows = _rows("Uni-COAL", [30, 31, 32]) + _rows("ArSSR", [29, 30, 31]) + _rows("ArSSR", [28.0], subjects=["s1"])
    with pytest.raises(ValueError, match="subject 's1' appears twice for method 'ArSSR'"):
        compare_methods(rows, "Uni-COAL")
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "appears twice" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


def test_dropped_pairs_are_counted_and_the_exact_floor_is_reported():
    rows = _rows("Uni-COAL", [30, 31, 32, math.inf, 34]) + _rows("ArSSR", [29, 30, 31, 32, math.nan])
    t = compare_methods(rows, "Uni-COAL")[0]
    assert (t.n, t.n_dropped) == (3, 2)  # the inf and the nan pair are left out, and counted
    assert t.wilcoxon_min_p == pytest.approx(0.25)  # 2 / 2^3: no p < 0.05 possible
    assert t.wilcoxon_p == pytest.approx(0.25)
    from unicoal.evaluate.stats import wilcoxon_min_p

    assert wilcoxon_min_p(5) == pytest.approx(0.0625) and wilcoxon_min_p(6) == pytest.approx(0.03125)


def test_reference_rows_are_a_holm_family_of_their_own(tmp_path):
    """The interpolation / copy rows the paper does not have must not weaken the paper's tests."""
    ref = [30.0, 31.0, 32.0, 33.0, 34.0, 35.0]
    rows = _rows("Uni-COAL", ref) + _rows("ArSSR", [r - 1 - 0.1 * i for i, r in enumerate(ref)])
    for m in ("Linear", "Cubic", "Lanczos"):
        rows += _rows(m, [r - 3 - 0.1 * i for i, r in enumerate(ref)])
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    got = {t.method: t for t in read_stats(tmp_path / "p.csv")}
    assert got["ArSSR"].wilcoxon_p_holm == pytest.approx(got["ArSSR"].wilcoxon_p)  # alone in the paper family
    assert got["Linear"].wilcoxon_p_holm == pytest.approx(min(1.0, 3 * got["Linear"].wilcoxon_p))  # 3 reference tests

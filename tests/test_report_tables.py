"""`unicoal tables`: the paper's layout, round trip of the published numbers, bold, '-', stats marks."""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from unicoal.cli import main
from unicoal.evaluate.rows import ResultRow, write_rows
from unicoal.report.reference import SUMMARY_COLUMNS, aggregate_rows
from unicoal.report.specs import REFERENCE_GROUP, TABLE_SPECS, table_key
from unicoal.evaluate.stats import read_stats
from unicoal.report.tables import ResultIndex, build_table, format_cell

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reports" / "reference"
PAPER = Path("/work/shared/paper/uni-coal-paper.md")

# The data lines of Tables I, II, III, IV and VI exactly as printed in the paper (tab-separated,
# group-heading lines left out), so the round trip is checked against the paper's own strings.
PAPER_LINES = """\
pix2pix [49]\t25.10±1.54\t0.912±0.021\t0.632±0.223\t22.89±1.73\t0.867±0.017\t0.785±0.134\t23.60±1.42\t0.888±0.020\t0.675±0.162
AutoGAN [17]\t25.57±1.87\t0.910±0.020\t0.695±0.192\t24.10±2.00\t0.870±0.018\t0.777±0.127\t24.16±1.40\t0.881±0.020\t0.721±0.143
ResViT [2]\t26.16±1.89\t0.923±0.022\t0.737±0.157\t24.94±1.85\t0.891±0.019\t0.833±0.092\t24.74±1.49\t0.906±0.021\t0.747±0.146
<i>Uni-COAL</i> <sub>one</sub>\t26.18±2.07\t0.928±0.022\t0.731±0.192\t24.83±1.80\t0.896±0.019\t0.834±0.095\t25.00±1.68\t0.913±0.021\t0.752±0.129
pGAN [12]\t26.28±1.88\t0.927±0.022\t0.758±0.144\t24.94±1.93\t0.893±0.018\t0.841±0.092\t25.00±1.64\t0.911±0.021\t<b>0.754±0.151</b>
SC-GAN [11]\t25.10±1.78\t0.917±0.021\t0.669±0.216\t23.20±2.63\t0.858±0.024\t0.788±0.157\t23.38±1.66\t0.887±0.018\t0.656±0.170
ProvoGAN [13]\t26.12±1.54\t0.922±0.024\t0.721±0.169\t24.35±1.81\t0.884±0.019\t0.810±0.142\t24.57±1.48\t0.904±0.023\t0.739±0.152
<i>Uni-COAL</i> <sub>multi</sub>\t<b>26.47±2.22</b>\t<b>0.932±0.023</b>\t<b>0.761±0.194</b>\t<b>25.04±1.92</b>\t<b>0.900±0.018</b>\t<b>0.848±0.071</b>\t<b>25.24±1.79</b>\t<b>0.918±0.021</b>\t0.749±0.123
DCSRN [14]\t24.15 $\\pm$ 0.67\t0.815 $\\pm$ 0.012\t0.818 $\\pm$ 0.118\t27.25 $\\pm$ 0.75\t0.911 $\\pm$ 0.012
DeepResolve [5]\t27.39 $\\pm$ 0.61\t0.906 $\\pm$ 0.009\t0.876 $\\pm$ 0.078\t28.82 $\\pm$ 0.69\t0.945 $\\pm$ 0.009
SynthSR [6]\t28.00 $\\pm$ 0.72\t0.917 $\\pm$ 0.013\t0.883 $\\pm$ 0.063\t29.11 $\\pm$ 0.69\t0.936 $\\pm$ 0.009
<i>Uni-COAL<sub>sr</sub></i>\t<b>28.18<math>\\pm</math>1.02</b>\t<b>0.924<math>\\pm</math>0.016</b>\t<b>0.896<math>\\pm</math>0.056</b>\t<b>29.14<math>\\pm</math>0.69</b>\t<b>0.952<math>\\pm</math>0.011</b>
SC-GAN [11]\t21.73 $\\pm$ 0.92\t0.751 $\\pm$ 0.035\t0.789 $\\pm$ 0.167\t22.00 $\\pm$ 1.00\t0.762 $\\pm$ 0.027
SynthSR [6]\t22.65 $\\pm$ 0.76\t0.815 $\\pm$ 0.021\t0.819 $\\pm$ 0.091\t23.84 $\\pm$ 1.48\t0.822 $\\pm$ 0.028
ProvoGAN [13]\t23.24 $\\pm$ 1.00\t0.831 $\\pm$ 0.034\t0.831 $\\pm$ 0.114\t24.10 $\\pm$ 0.98\t0.849 $\\pm$ 0.021
<i>Uni-COAL<sub>cmsr</sub></i>\t<b>23.53<math>\\pm</math>1.52</b>\t<b>0.850<math>\\pm</math>0.036</b>\t<b>0.859<math>\\pm</math>0.071</b>\t<b>24.19<math>\\pm</math>1.37</b>\t<b>0.866<math>\\pm</math>0.024</b>
2x\t-\t-\t33.47±0.59\t0.980±0.002\t33.86±0.60\t0.985±0.001\t34.41±0.69\t0.987±0.001\t31.22±0.55\t0.967±0.003\t<b>34.91±0.68</b>\t<b>0.989±0.001</b>
4x\t-\t-\t26.41±0.64\t0.948±0.007\t27.28±0.51\t0.945±0.006\t29.38±0.65\t0.962±0.004\t28.10±0.57\t0.944±0.007\t<b>30.34±0.63</b>\t<b>0.968±0.003</b>
6x\t-\t-\t26.36±0.57\t0.900±0.010\t26.02±0.43\t0.897±0.009\t27.02±0.52\t0.912±0.009\t26.40±0.62\t0.895±0.011\t<b>28.18±0.58</b>\t<b>0.947±0.005</b>
1x\t26.37±1.09\t0.914±0.017\t-\t-\t23.77±0.77\t0.884±0.016\t25.55±0.95\t0.903±0.016\t26.01±1.08\t0.908±0.016\t<b>26.43±1.06</b>\t<b>0.918±0.013</b>
2x\t-\t-\t-\t-\t22.50±0.60\t0.876±0.017\t25.02±0.77\t0.899±0.015\t25.92±1.03\t0.908±0.015\t<b>26.35±0.99</b>\t<b>0.917±0.013</b>
4x\t-\t-\t-\t-\t22.27±0.61\t0.843±0.019\t24.93±0.77\t0.887±0.015\t25.20±0.90\t0.892±0.015\t<b>25.50±0.84</b>\t<b>0.903±0.016</b>
6x\t-\t-\t-\t-\t21.92±0.72\t0.841±0.019\t24.34±0.71\t0.874±0.015\t24.47±0.78\t0.875±0.015\t<b>24.50±0.71</b>\t<b>0.884±0.015</b>
2x\t-\t-\t33.40±0.79\t0.978±0.003\t33.88±0.81\t0.976±0.004\t34.04±0.88\t0.979±0.004\t34.74±1.01\t0.982±0.003\t<b>35.00±0.97</b>\t<b>0.983±0.003</b>
4x\t-\t-\t26.17±0.83\t0.929±0.008\t27.32±0.54\t0.931±0.007\t28.94±0.59\t0.946±0.005\t29.50±0.66\t0.949±0.006\t<b>29.76±0.68</b>\t<b>0.955±0.006</b>
6x\t-\t-\t25.38±0.58\t0.905±0.011\t25.88±0.57\t0.908±0.010\t26.87±0.54\t0.916±0.009\t<b>27.31±0.62</b>\t0.923±0.008\t<b>27.13±0.63</b>\t<b>0.930±0.008</b>
1x\t31.54±0.48\t0.950±0.006\t-\t-\t29.06±0.50\t0.947±0.007\t30.49±0.58\t0.957±0.006\t28.80±0.75\t0.940±0.013\t<b>32.02±0.57</b>\t<b>0.968±0.005</b>
2x\t-\t-\t-\t-\t28.26±0.61\t0.925±0.007\t29.99±0.46\t0.949±0.006\t27.94±0.71\t0.932±0.013\t<b>30.70±0.70</b>\t<b>0.961±0.006</b>
4x\t-\t-\t-\t-\t26.50±0.56\t0.918±0.010\t28.06±0.74\t0.929±0.008\t26.15±0.68\t0.907±0.014\t<b>28.26±0.63</b>\t<b>0.942±0.008</b>
6x\t-\t-\t-\t-\t26.12±0.57\t0.899±0.012\t26.10±0.72\t0.901±0.009\t24.85±0.70\t0.891±0.012\t<b>26.44±0.66</b>\t<b>0.920±0.011</b>
2x\t-\t-\t33.90±0.69\t0.981±0.003\t34.72±0.81\t0.982±0.003\t35.22±0.48\t0.985±0.003\t32.67±0.76\t0.970±0.003\t<b>35.60±0.96</b>\t<b>0.986±0.002</b>
4x\t-\t-\t25.88±0.73\t0.928±0.006\t28.22±0.57\t0.937±0.006\t29.60±0.66\t0.950±0.005\t29.05±0.66\t0.940±0.005\t<b>30.69±0.68</b>\t<b>0.961±0.004</b>
6x\t-\t-\t25.56±0.68\t0.908±0.009\t26.58±0.59\t0.913±0.009\t27.03±0.65\t0.922±0.008\t26.96±0.60\t0.918±0.008\t<b>28.20±0.65</b>\t<b>0.942±0.007</b>
1x\t26.32±1.17\t0.903±0.018\t-\t-\t24.66±0.89\t0.901±0.011\t26.61±0.83\t0.927±0.013\t25.43±0.89\t0.912±0.016\t<b>27.51±1.16</b>\t<b>0.948±0.011</b>
2x\t-\t-\t-\t-\t24.88±0.79\t0.900±0.012\t26.04±0.68\t0.919±0.014\t25.26±0.88\t0.911±0.016\t<b>27.39±1.02</b>\t<b>0.947±0.011</b>
4x\t-\t-\t-\t-\t24.12±0.55\t0.875±0.013\t25.02±0.77\t0.893±0.013\t24.63±0.76\t0.887±0.017\t<b>26.71±0.90</b>\t<b>0.936±0.011</b>
6x\t-\t-\t-\t-\t23.66±0.69\t0.889±0.015\t24.68±0.74\t0.894±0.015\t24.19±0.63\t0.873±0.018\t<b>25.92±0.82</b>\t<b>0.921±0.012</b>
Baseline\t22.49±1.23\t0.823±0.037\t0.840±0.081
+Alias-free Decoder\t22.45±1.33\t0.835±0.033\t0.837±0.085
+Alias-free Encoder\t22.59±1.27\t0.837±0.030\t0.846±0.078
+Projection Discriminator\t23.31±1.81\t0.843±0.035\t0.844±0.087
<b>+SAM-guided Strategy</b>\t<b>23.53±1.52</b>\t<b>0.850±0.036</b>\t<b>0.859±0.071</b>
"""
PAPER_TABLE5 = """\
CMS\tSpec.\t✓\t\t✓\t✓\t✓\t✓
\tArb. In\t✓\t\t\t\t✓\t✓
\tArb. Out\t✓\t\t\t\t\t✓
SR\tSpec.\t\t✓\t✓\t✓\t✓\t✓
\tArb. In\t\t✓\t\t\t✓\t✓
\tArb. Out\t\t✓\t\t\t\t✓
CMSR\tSpec.\t\t\t✓\t✓\t✓\t✓
\tArb. In\t\t\t\t\t✓\t✓
\tArb. Out\t\t\t\t\t\t✓
"""

ROWS_PER_TABLE = {"table1": 8, "table2": 4, "table3": 4, "table4": 21, "table6": 5}
# Cells the paper prints in bold that are not the best printed value (a typo in the paper).
PAPER_BOLD_EXCEPTIONS = {("table4", "T2 SR", "6x", "Uni-COAL PSNR")}


def _paper_cells(line: str) -> tuple[str, list[tuple[str, bool]]]:
    fields = line.split("\t")
    cells = []
    for f in fields[1:]:
        bold = "<b>" in f
        text = re.sub(r"</?b>", "", f).replace("<math>\\pm</math>", "±").replace(" $\\pm$ ", "±").strip()
        cells.append((text, bold))
    return fields[0], cells


def _paper_tables() -> dict[str, list[tuple[str, list[tuple[str, bool]]]]]:
    lines = PAPER_LINES.strip("\n").split("\n")
    out, i = {}, 0
    for name, n in ROWS_PER_TABLE.items():
        out[name] = [_paper_cells(l) for l in lines[i:i + n]]
        i += n
    assert i == len(lines)
    return out


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    args = ["tables", "--out-dir", str(out), "--reference", str(REFERENCE)]
    for f in sorted(REFERENCE.glob("table*.csv")):
        args += ["--in", str(f)]
    assert main(args) == 0
    return out


def _grid(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _paper_grid(path: Path) -> list[dict[str, str]]:
    """The printed grid without the reference rows / columns the paper does not have (marked †)."""
    return [{k: v for k, v in r.items() if "†" not in k} for r in _grid(path) if r["group"] != REFERENCE_GROUP]


def test_reference_csvs_have_the_schema_and_all_printed_cells():
    counts = {}
    for f in sorted(REFERENCE.glob("table*.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
            counts[f.stem] = sum(1 for _ in reader)
    # printed numeric cells (no '-'): I 8x9, II/III 4x5, IV 192, V 9x6 ticks/blanks, VI 5x3
    assert counts == {"table1": 72, "table2": 20, "table3": 20, "table4": 192, "table5": 54, "table6": 15}


@pytest.mark.parametrize("name", list(ROWS_PER_TABLE))
def test_round_trip_reproduces_the_printed_numbers(round_trip, name):
    paper = _paper_tables()[name]
    grid = _paper_grid(round_trip / f"{name}.csv")
    assert len(grid) == len(paper)
    columns = list(grid[0].keys())[2:]
    for row, (label, cells) in zip(grid, paper):
        ours = [row[c] for c in columns]
        assert ours == [c[0] for c in cells], (name, label)


@pytest.mark.parametrize("name", list(ROWS_PER_TABLE))
def test_round_trip_bold_matches_the_paper(round_trip, name):
    paper = _paper_tables()[name]
    md = (round_trip / f"{name}.md").read_text(encoding="utf-8").splitlines()
    body = [l for l in md if l.startswith("| ") and not l.startswith("| **") and "---" not in l][1:]
    header = [c.strip() for c in [l for l in md if l.startswith("| ")][0].strip("|").split("|")][1:]
    groups = [r.group for r in TABLE_SPECS[name].rows]
    body = [l for l, g in zip(body, groups) if g != REFERENCE_GROUP]
    groups = [g for g in groups if g != REFERENCE_GROUP]
    assert len(body) == len(paper)
    mismatches = set()
    for line, (label, cells), group in zip(body, paper, groups):
        ours = [c.strip() for c in line.strip().strip("|").split("|")][1:]
        row_label = line.strip().strip("|").split("|")[0].strip()
        for col, o, (text, bold) in zip(header, ours, cells):
            if o.startswith("**") != bold:
                mismatches.add((name, group, row_label, col))
    expected = {m for m in PAPER_BOLD_EXCEPTIONS if m[0] == name}
    assert mismatches == expected


def test_table5_ticks(round_trip):
    grid = _grid(round_trip / "table5.csv")
    lines = PAPER_TABLE5.strip("\n").split("\n")
    assert [[r[c] for c in list(r)[2:]] for r in grid] == [l.split("\t")[2:] for l in lines]
    assert [r["Tasks"] for r in grid] == [l.split("\t")[1] for l in lines]


def test_round_trip_comparison_has_zero_differences(round_trip):
    rows = _grid(round_trip / "comparison.csv")
    assert len(rows) == 72 + 20 + 20 + 192 + 15
    assert all(r["ours"] == r["paper"] for r in rows)
    assert {r["difference"] for r in rows} == {"+0.00", "+0.000"}


def test_latex_layout(round_trip):
    tex = (round_trip / "table1.tex").read_text(encoding="utf-8")
    assert r"\multicolumn{3}{c}{T1-T2}" in tex
    assert r"\textbf{26.47$\pm$2.22}" in tex
    assert r"\multicolumn{10}{l}{\textbf{2D-based Cross-modality Synthesis}}" in tex
    # two header lines, three group headings (the paper's two + reference rows), eight methods + Copy + Real
    assert tex.count(r"\\") == 2 + 3 + 10


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's markdown is only present in the project workspace")
def test_embedded_lines_are_verbatim_from_the_paper():
    text = PAPER.read_text(encoding="utf-8")
    for line in (PAPER_LINES + PAPER_TABLE5).strip("\n").split("\n"):
        if line.strip():
            assert line in text, line


def _subject_rows(method, values, metric="PSNR", dataset="CSDH", scale=8, task="SR", src="T1", tgt="T1", table=""):
    return [ResultRow(table, dataset, task, method, f"s{i}", src, tgt, scale, metric, v, "published")
            for i, v in enumerate(values)]


def test_per_subject_rows_give_mean_std_bold_and_dash(tmp_path):
    rows = (_subject_rows("Uni-COAL_sr", [28.0, 29.0, 30.0]) + _subject_rows("DCSRN", [24.0, 24.5, 25.0])
            + _subject_rows("uni-coal-sr", [0.9, 0.92, 0.94], metric="SSIM")
            + _subject_rows("Uni-COAL_sr", [0.9, 0.95, math.nan], metric="DSC"))
    index = ResultIndex(aggregate_rows(rows))
    t = build_table(TABLE_SPECS["table2"], index)
    cells = {r["label"]: r["cells"] for r in t.body if "label" in r}
    uni, dcsrn = cells["Uni-COAL_sr"], cells["DCSRN [14]"]
    assert uni[0].text == "29.00±0.82" and uni[0].bold and uni[0].n == 3  # population std of 28, 29, 30
    assert dcsrn[0].text == "24.50±0.41" and not dcsrn[0].bold
    assert uni[1].text == "0.920±0.016" and not uni[1].bold  # a lone value is not "best"
    assert uni[2].text == "0.925±0.025" and uni[2].n == 2  # NaN Dice left out
    # no result: "not run" (the registry may not know DCSRN / SynthSR yet, and no capabilities were given)
    assert dcsrn[1].text == "n.r." and cells["SynthSR [6]"][0].text == "n.r."
    assert [c.text for c in uni[3:]] == ["n.r.", "n.r."]  # ADNI block empty


def test_inf_and_convention_filtering():
    assert format_cell(math.inf, math.nan, "PSNR") == "inf"
    rows = _subject_rows("Uni-COAL_sr", [math.inf, 30.0]) + _subject_rows("DCSRN", [31.0, 32.0])
    rows += [r.with_(convention="wang", value=1.0) for r in _subject_rows("DCSRN", [1.0, 1.0])]
    t = build_table(TABLE_SPECS["table2"], ResultIndex(aggregate_rows(rows)))
    cells = {r["label"]: r["cells"] for r in t.body if "label" in r}
    assert cells["Uni-COAL_sr"][0].text == "inf" and cells["Uni-COAL_sr"][0].bold
    assert cells["DCSRN [14]"][0].text == "31.50±0.50"  # the wang rows are not mixed in


def test_cli_with_subject_rows_stats_and_comparison(tmp_path):
    rows = _subject_rows("Uni-COAL_sr", [28, 29, 30, 31, 32, 33]) + _subject_rows("DCSRN", [24, 24, 25, 25, 26, 27])
    write_rows(tmp_path / "a.csv", rows[:6])
    for i, r in enumerate(rows[6:]):  # one file per subject, as the pipeline writes them
        write_rows(tmp_path / f"b{i}.csv", [r])
    ins = [a for f in sorted(tmp_path.glob("*.csv")) for a in ("--in", str(f))]
    assert main(["stats", *ins, "--out", str(tmp_path / "p.csv")]) == 0
    out = tmp_path / "tables"
    assert main(["tables", *ins, "--out-dir", str(out), "--stats", str(tmp_path / "p.csv"), "--reference", str(REFERENCE)]) == 0
    grid = {r["row"]: r for r in _grid(out / "table2.csv")}
    # Wilcoxon p = 2/2^6 = 0.031 < 0.05; the only test of Table II, so Holm leaves it below 0.05 (‡)
    assert grid["DCSRN [14]"]["CSDH (8x) PSNR"] == "25.17±1.07*‡"
    assert grid["Uni-COAL_sr"]["CSDH (8x) PSNR"] == "30.50±1.71"
    comp = {(r["table"], r["row"], r["block"], r["metric"]): r for r in _grid(out / "comparison.csv")}
    c = comp["II", "DCSRN [14]", "CSDH (8x)", "PSNR"]
    assert (c["ours"], c["paper"], c["difference"], c["n"]) == ("25.17±1.07", "24.15±0.67", "+1.02", "6")
    assert (c["paper_std"], c["beyond_std"]) == ("0.67", "yes")  # |+1.02| > the paper's std 0.67
    assert comp["II", "SynthSR [6]", "CSDH (8x)", "PSNR"]["ours"] == "-"
    summary = _grid(out / "summary.csv")
    p = {r["method"]: r["wilcoxon_p"] for r in summary}
    assert float(p["DCSRN"]) == pytest.approx(0.03125)
    md = (out / "table2.md").read_text(encoding="utf-8")
    assert "| Uni-COAL_sr | **30.50±1.71** |" in md


def test_duplicate_cells_are_refused(tmp_path, capsys):
    rows = _subject_rows("DCSRN", [24, 25])
    write_rows(tmp_path / "a.csv", rows)
    write_rows(tmp_path / "s.csv", rows)
    (tmp_path / "sum.csv").write_text(",".join(SUMMARY_COLUMNS) + "\ntable2,,DCSRN,SR,CSDH,T1,T1,8,PSNR,24.5,0.5,0\n")
    assert main(["tables", "--in", str(tmp_path / "a.csv"), "--in", str(tmp_path / "sum.csv"),
                 "--out-dir", str(tmp_path / "o"), "--reference", "none"]) == 0  # table-specific summary wins
    assert main(["tables", "--in", str(tmp_path / "sum.csv"), "--in", str(tmp_path / "sum.csv"),
                 "--out-dir", str(tmp_path / "o2"), "--reference", "none"]) == 1
    assert "given twice" in capsys.readouterr().err


def test_specs_are_consistent():
    assert [table_key(x) for x in ("Table IV", "table4", "4", "IV")] == ["table4"] * 4
    for spec in TABLE_SPECS.values():
        sels = [sel for *_, sel in spec.cells()]
        assert len(set(sels)) == len(sels), spec.name  # every cell distinct
    assert len(list(TABLE_SPECS["table4"].cells())) == 21 * (12 + 8)  # + Linear, Cubic, Lanczos, Copy columns


def test_duplicate_subject_rows_are_refused(tmp_path, capsys):
    write_rows(tmp_path / "a.csv", _subject_rows("DCSRN", [24, 25]))
    assert main(["tables", "--in", str(tmp_path / "a.csv"), "--in", str(tmp_path / "a.csv"),
                 "--out-dir", str(tmp_path / "o"), "--reference", "none"]) == 1
    assert "appears twice" in capsys.readouterr().err


def test_results_outside_every_table_are_listed(tmp_path, capsys):
    rows = _subject_rows("DCSRN", [24, 25]) + _subject_rows("DCSRN", [30, 31], scale=2)  # no table has CSDH SR 2x
    write_rows(tmp_path / "a.csv", rows)
    assert main(["tables", "--in", str(tmp_path / "a.csv"), "--out-dir", str(tmp_path / "o"), "--reference", "none"]) == 0
    assert "1 result(s) match no table cell" in capsys.readouterr().err
    import json
    unmatched = json.loads((tmp_path / "o" / "tables.json").read_text())["unmatched"]
    assert unmatched == ["(any table): DCSRN PSNR CSDH SR T1->T1 x2 (published)"]


def test_summary_bold_column_round_trips(round_trip):
    summary = {(r["table"], r["method"], r["dataset"], r["source"], r["target"], r["scale"], r["metric"]): r["bold"]
               for r in _grid(round_trip / "summary.csv")}
    paper = {}
    for f in sorted(REFERENCE.glob("table*.csv")):
        for r in _grid(f):
            if r["table"] == "table5":  # ticks, not numbers: no bold
                continue
            paper[(r["table"], r["method"], r["dataset"], r["source"], r["target"], r["scale"], r["metric"])] = r["bold"]
    diff = {k for k in paper if summary[k] != paper[k]}
    assert diff == {("table4", "Uni-COAL", "IXI", "T2", "T2", "6", "PSNR")}  # the paper's bold typo


# ---------------------------------------------------------------------------------------------
# Issue #14: the right significance pairs, Real rows, region Dice, cannot vs not run, notes


def _t1_rows(method, values, metric="PSNR", task="CMS", source="T1", target="T2"):
    return [ResultRow("table1", "BraTS", task, method, f"b{i}", source, target, 1, metric, v, "brats-empty-1" if "DSC" in metric else "published")
            for i, v in enumerate(values)]


def test_table1_star_comes_from_the_right_pair_and_real_rows_appear(tmp_path):
    one = [26.0, 26.5, 27.0, 25.5, 26.2, 26.8]
    pix2pix = [v - 1.0 - 0.1 * i for i, v in enumerate(one)]  # below Uni-COAL_one on every subject
    multi = [v + 0.5 * (-1) ** i for i, v in enumerate(pix2pix)]  # no consistent difference to pix2pix
    rows = (_t1_rows("Uni-COAL_one", one) + _t1_rows("Uni-COAL_multi", multi) + _t1_rows("pix2pix", pix2pix)
            + _t1_rows("Copy", [30.0] * 6))  # higher than all: a reference row must still not take the bold
    # Dice: Table I's DSC column, the BraTS regions, and the real T2 images (method Real, task empty, T2 -> T2)
    for m, base in (("Uni-COAL_one", 0.70), ("pix2pix", 0.60), ("Uni-COAL_multi", 0.72)):
        for metric, off in (("DSC", 0.0), ("DSC_WT", 0.0), ("DSC_TC", -0.1), ("DSC_ET", -0.2)):
            rows += _t1_rows(m, [base + off + 0.01 * i for i in range(6)], metric=metric)
    for metric, v in (("DSC", 0.85), ("DSC_WT", 0.85), ("DSC_TC", 0.75), ("DSC_ET", 0.65)):
        rows += _t1_rows("Real", [v] * 6, metric=metric, task="", source="T2", target="T2")
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    out = tmp_path / "t"
    assert main(["tables", "--in", str(tmp_path / "r.csv"), "--stats", str(tmp_path / "p.csv"), "--out-dir", str(out),
                 "--reference", str(REFERENCE)]) == 0
    grid = {r["row"]: r for r in _grid(out / "table1.csv")}
    # pix2pix is 1.0-1.5 dB below Uni-COAL_one on all 6 subjects: p = 2/2^6 = 0.031 vs Uni-COAL_one -> star.
    # (Against Uni-COAL_multi, the old pairing, the differences alternate in sign: no star.)
    assert grid["pix2pix [49]"]["T1-T2 PSNR"].startswith("25.08±0.50*")
    assert grid["Uni-COAL_one"]["T1-T2 PSNR"] == "26.33±0.50"  # a reference: no star, not tested against _multi
    tests = {t.method: t for t in read_stats(tmp_path / "p.csv") if t.cell[6] == "PSNR"}
    assert tests["pix2pix"].reference == "Uni-COAL_one" and tests["pix2pix"].wilcoxon_p == pytest.approx(0.03125)
    assert "Uni-COAL_one" not in tests
    assert grid["Copy source"]["T1-T2 PSNR"].startswith("30.00±0.00*")  # reference rows: vs Uni-COAL_multi
    assert grid["Real (upper bound)"]["T1-T2 DSC"] == "0.850±0.000"
    assert grid["Real (upper bound)"]["T1-T2 PSNR"] == "n/a"
    assert grid["ResViT [2]"]["T1-T2 PSNR"] == "n.r."  # ResViT can do CMS (Table V): not run here
    md = (out / "table1.md").read_text(encoding="utf-8")
    assert "| Uni-COAL_one | **26.33±0.50** |" in md  # the bold goes to the paper's rows only: Copy (30) never
    assert "| Copy source | 30.00±0.00*" in md
    assert "Uni-COAL_one" in md and "2D group is tested against Uni-COAL_one" in md
    assert "Holm" in md
    regions = {r["row"]: r for r in _grid(out / "table1_regions.csv")}
    assert regions["Uni-COAL_one"]["T1-T2 DSC_TC"] == "0.625±0.017"
    assert regions["Real (upper bound)"]["T1-T2 DSC_ET"] == "0.650±0.000"
    import json

    manifest = json.loads((out / "tables.json").read_text(encoding="utf-8"))
    assert not [u for u in manifest["unmatched"] if "Real" in u or "DSC_" in u]  # all shown now
    assert {p["method"] for p in manifest["pvalues"]} >= {"pix2pix", "Copy"}
    assert (out / "rows.csv").is_file()


def test_cannot_and_not_run_differ_in_table4_and_the_floor_note(tmp_path):
    rows = []
    for m, vals in (("Uni-COAL", [30.0, 31.0, 32.0]), ("Linear", [28.0, 29.0, 30.5])):
        rows += [ResultRow("table4", "IXI", "SR", m, f"s{i}", "T1", "T1", 2, "PSNR", v, "published") for i, v in enumerate(vals)]
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    out = tmp_path / "t"
    assert main(["tables", "--in", str(tmp_path / "r.csv"), "--stats", str(tmp_path / "p.csv"), "--out-dir", str(out),
                 "--reference", str(REFERENCE)]) == 0
    grid = _grid(out / "table4.csv")
    sr2, cms1 = grid[0], grid[3]
    assert (sr2["group"], sr2["Scale"], cms1["group"], cms1["Scale"]) == ("T1 SR", "2x", "T1-T2 CMS/CMSR", "1x")
    assert sr2["Linear† PSNR"] == "29.17±1.03" and sr2["Uni-COAL PSNR"] == "31.00±0.82"
    assert sr2["Copy source† PSNR"] == "-"  # copy performs CMS / CMSR only (registry): cannot
    assert cms1["Linear† PSNR"] == "-"  # interpolation performs SR only (registry): cannot
    assert cms1["ArSSR PSNR"] == "-"  # the paper's Table V: ArSSR does not do CMS
    assert sr2["ResViT PSNR"] == "-"  # ... nor ResViT SR
    assert cms1["Uni-COAL PSNR"] == "n.r." and cms1["Copy source† PSNR"] == "n.r."  # can, but not run here
    md = (out / "table4.md").read_text(encoding="utf-8")
    assert "'n.r.' = not run in this experiment" in md and "'-' = the method cannot perform this task" in md
    # 3 pairs: the smallest exact two-sided Wilcoxon p is 2/2^3 = 0.25 >= 0.05
    assert "n <= 3 pairs" in md and "0.25" in md
    assert "**31.00±0.82**" not in md  # Uni-COAL is the only paper method with a value: nothing to beat


def test_one_subject_prints_no_std_and_says_no_test_is_possible(tmp_path):
    """The test profile has one test subject: '±0.00' would pretend a spread, and no test can run."""
    rows = [ResultRow("table4", "IXI", "SR", m, "s0", "T1", "T1", 2, "PSNR", v, "published")
            for m, v in (("Uni-COAL", 30.0), ("Linear", 28.0))]
    write_rows(tmp_path / "r.csv", rows)
    assert main(["stats", "--in", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    out = tmp_path / "t"
    assert main(["tables", "--in", str(tmp_path / "r.csv"), "--stats", str(tmp_path / "p.csv"), "--out-dir", str(out),
                 "--reference", "none"]) == 0
    sr2 = _grid(out / "table4.csv")[0]
    assert (sr2["Uni-COAL PSNR"], sr2["Linear† PSNR"]) == ("30.00", "28.00")
    assert "fewer than 2 subject pairs: no test is possible" in (out / "table4.md").read_text(encoding="utf-8")

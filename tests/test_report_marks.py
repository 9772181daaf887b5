"""Marks of runs without the user's pretrained weights (§) and of unreleased details (¶), in the
tables and in the report (docs/fidelity.md)."""
from __future__ import annotations

import json

import yaml

from unicoal.cli import main
from unicoal.evaluate.rows import ResultRow
from unicoal.report.reference import aggregate_rows
from unicoal.report.specs import TABLE_SPECS
from unicoal.report.tables import FALLBACK_MARK, ResultIndex, build_table, fallbacks_from_configs


def _rows(method: str, values=(25.0, 26.0)):
    return [ResultRow("table1", "BraTS", "CMS", method, f"s{i}", "T1", "T2", 1.0, "PSNR", v, "published") for i, v in enumerate(values)]


def _plan_configs(tmp_path, vgg: str | None = None):
    """Train configs as `unicoal plan` writes them (base: the method's packaged config)."""
    d = tmp_path / "configs"
    d.mkdir()
    pgan = {"base": "pgan", "method": "pgan"}
    if vgg:
        pgan["loss"] = {"perceptual_checkpoint": vgg}
    (d / "table1-pgan.yaml").write_text(yaml.safe_dump(pgan))
    (d / "table1-pix2pix.yaml").write_text(yaml.safe_dump({"base": "pix2pix", "method": "pix2pix"}))
    (d / "table1-autogan.yaml").write_text(yaml.safe_dump({"base": "autogan", "method": "autogan"}))
    return d


def test_fallback_runs_are_marked_and_footnoted(tmp_path):
    fb = fallbacks_from_configs([_plan_configs(tmp_path)])
    assert set(fb) == {"pgan", "autogan"} and set(fb["pgan"]) == {"VGG16"}
    index = ResultIndex(aggregate_rows(_rows("pGAN") + _rows("pix2pix") + _rows("AutoGAN")))
    t = build_table(TABLE_SPECS["table1"], index, fallbacks=fb)
    cells = {r["label"]: r["cells"] for r in t.body if "label" in r}
    assert cells["pGAN [12]"][0].display.endswith(FALLBACK_MARK)
    assert not cells["pix2pix [49]"][0].display.endswith(FALLBACK_MARK)
    assert cells["pGAN [12]"][1].text == "n.r." and not cells["pGAN [12]"][1].mark  # only values carry it
    note = next(n for n in t.notes if n.startswith(FALLBACK_MARK))
    assert "pGAN [12]: no VGG16 weights" in note and "LiteMedSAM" in note
    # AutoGAN: fallback cells and the unreleased cell sequence on its row
    assert "AutoGAN [17] ¶" in cells and cells["AutoGAN [17] ¶"][0].display.endswith(FALLBACK_MARK)
    assert any("cell sequence not released; ours: pfpfpfpfpfpf" in n for n in t.notes)
    # with the user's VGG16 no mark
    other = tmp_path / "with_vgg"
    other.mkdir()
    fb2 = fallbacks_from_configs([_plan_configs(other, vgg="/weights/vgg16-397923af.pth")])
    assert "pgan" not in fb2
    t2 = build_table(TABLE_SPECS["table1"], index, fallbacks=fb2)
    assert not {r["label"]: r["cells"] for r in t2.body if "label" in r}["pGAN [12]"][0].mark


def test_report_marks_tables_from_the_plans_configs(tmp_path):
    from unicoal.evaluate.rows import write_rows

    rows = tmp_path / "rows.csv"
    write_rows(rows, _rows("pGAN") + _rows("ResViT"))
    tables = tmp_path / "tables"
    assert main(["tables", "--in", str(rows), "--out-dir", str(tables), "--reference", "none"]) == 0
    manifest = json.loads((tables / "tables.json").read_text())
    assert FALLBACK_MARK not in json.dumps(manifest["tables"][0]["body"])  # TABLES saw no configs
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "resvit.yaml").write_text(yaml.safe_dump({"base": "resvit", "method": "resvit"}))
    (configs / "pgan.yaml").write_text(yaml.safe_dump({"base": "pgan", "method": "pgan", "loss": {"perceptual_checkpoint": "/w/vgg16.pth"}}))
    out = tmp_path / "report.html"
    assert main(["report", "--tables", str(tables), "--configs", str(configs), "--out", str(out)]) == 0
    html = out.read_text()
    assert f"25.50±0.50{FALLBACK_MARK}" in html  # ResViT's cell
    assert "ResViT [2]: no ViT weights, transformer trained from scratch" in html
    assert "pGAN [12]: no" not in html


def test_tables_command_reads_configs(tmp_path):
    from unicoal.evaluate.rows import write_rows

    rows = tmp_path / "rows.csv"
    write_rows(rows, _rows("pGAN"))
    tables = tmp_path / "tables"
    assert main(["tables", "--in", str(rows), "--out-dir", str(tables), "--reference", "none", "--configs", str(_plan_configs(tmp_path))]) == 0
    md = (tables / "table1.md").read_text()
    assert f"25.50±0.50{FALLBACK_MARK}" in md and "pGAN [12]: no VGG16 weights" in md
    assert main(["tables", "--in", str(rows), "--out-dir", str(tables), "--reference", "none", "--configs", str(tmp_path / "nope")]) != 0

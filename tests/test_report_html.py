"""`unicoal report`: a self-contained HTML file that renders in headless Chromium."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from unicoal.cli import main

REFERENCE = Path(__file__).resolve().parents[1] / "reports" / "reference"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    tables = d / "tables"
    args = ["tables", "--out-dir", str(tables), "--reference", str(REFERENCE)]
    for f in sorted(REFERENCE.glob("table*.csv")):
        args += ["--in", str(f)]
    assert main(args) == 0
    figs = d / "figs"
    figs.mkdir()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.outer(np.hanning(64), np.hanning(64)), cmap="gray")
    fig.savefig(figs / "panel.png")
    plt.close(fig)
    (d / "sheet.csv").write_text("subject,modality,path,label,split\ns01,T1,a.nii.gz,,train\ns01,T2,b.nii.gz,l.nii.gz,train\n"
                                 "s02,T1,c.nii.gz,,test\ns02,T2,d.nii.gz,,test\n")
    (d / "trace.txt").write_text("task_id\thash\tname\tstatus\texit\trealtime\t%cpu\tpeak_rss\n"
                                 "1\tab/cd\tEVALUATE (s01)\tCOMPLETED\t0\t2.1s\t98.0%\t120 MB\n"
                                 "2\tef/gh\tEVALUATE (s02)\tCOMPLETED\t0\t2.3s\t97.0%\t121 MB\n")
    (d / "versions.yml").write_text('"EVALUATE":\n  unicoal: 0.1.0\n  scikit-image: 0.26.0\n')
    (d / "norm.json").write_text('{"percentiles": [0.5, 99.5], "modality": "T1"}')
    out = d / "report.html"
    assert main(["report", "--tables", str(tables), "--figures", str(figs), "--cohort", str(d / "sheet.csv"),
                 "--timings", str(d / "trace.txt"), "--versions", str(d / "versions.yml"),
                 "--preprocessing", str(d / "norm.json"), "--out", str(out)]) == 0
    return d, out, (figs / "panel.png").read_bytes()


def test_report_is_self_contained(report):
    _, out, png = report
    text = out.read_text(encoding="utf-8")
    assert "<style>" in text and "<link" not in text and "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|file:|//)""", text)
    assert base64.b64encode(png).decode("ascii") in text  # the figure is embedded byte for byte
    for needle in ("Table I.", "Table VI.", "<td class=\"b\">26.47±2.22</td>",
                   "Scale", "s02", "EVALUATE", "scikit-image", "percentiles", "Comparison with the paper"):
        assert needle in text, needle
    assert text.count('<table class="paper"') == 7  # Tables I-VI and the BraTS region Dice


def test_missing_tables_manifest_is_an_error(tmp_path, capsys):
    assert main(["report", "--tables", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 1
    assert "tables.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    d, out, _ = report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,2000", out.resolve().as_uri()],
                   check=True, capture_output=True, timeout=180)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2000, 1280)
    gray = img[..., :3].mean(axis=2)
    assert float(gray.std()) > 0.05  # not a blank page
    assert float((gray < 0.5).mean()) > 0.01  # text and table rules drawn
    dom = subprocess.run(flags + ["--dump-dom", out.resolve().as_uri()], check=True, capture_output=True,
                         text=True, timeout=180).stdout
    assert dom.count('<table class="paper"') == 7
    assert "26.47±2.22" in dom and "<td class=\"b\"" in dom
    assert "Comparison with the paper" in dom and 'src="data:image/png;base64,' in dom


# ---------------------------------------------------------------------------------------------
# Issue #14: distributions, p-values (raw and Holm), provenance, conventions, reference rows


@pytest.fixture(scope="module")
def run_report(tmp_path_factory):
    """A report of per-subject rows as a run writes them: Table IV's test cells with Uni-COAL and
    the reference methods (interpolation, copy), two conventions, statistics."""
    import hashlib

    from unicoal.evaluate.rows import ResultRow, write_rows

    d = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(14)
    rows = []
    cells = (("SR", "T1", "T1", 2, ("Uni-COAL", "Linear", "Cubic", "Lanczos")), ("CMS", "T1", "T2", 1, ("Uni-COAL", "Copy")),
             ("CMSR", "T1", "T2", 2, ("Uni-COAL", "Copy")))
    for task, src, tgt, scale, methods in cells:
        for k, m in enumerate(methods):
            for i in range(6):
                for conv, shift in (("published", 0.0), ("targetscale", -1.0)):
                    psnr = 30.0 - 2.0 * k + shift + 0.3 * rng.standard_normal()
                    rows.append(ResultRow("table4", "IXI", task, m, f"IXI{i:03d}", src, tgt, scale, "PSNR", psnr, conv))
                    rows.append(ResultRow("table4", "IXI", task, m, f"IXI{i:03d}", src, tgt, scale, "SSIM", 0.9 - 0.02 * k, conv))
    write_rows(d / "rows.csv", rows)
    assert main(["stats", "--in", str(d / "rows.csv"), "--out", str(d / "p.csv")]) == 0
    assert main(["tables", "--in", str(d / "rows.csv"), "--stats", str(d / "p.csv"), "--out-dir", str(d / "tables"),
                 "--reference", str(REFERENCE)]) == 0
    vol = d / "IXI000_T1.nii.gz"
    vol.write_bytes(b"not really a volume, but a file to checksum")
    (d / "sheet.csv").write_text(f"subject,modality,path,label,split\nIXI000,T1,{vol.name},,test\n")
    (d / "params.json").write_text('{"dice": true, "nnunet_epochs": 3, "nnunet_train_args": "--iterations-per-epoch 10", "seg_regions": "lesion", "seg_splits": "train val"}')
    (d / "configs").mkdir()
    (d / "configs" / "table4-uni-coal-ixi.yaml").write_text("method: unicoal\nmodel:\n  modalities: [T1, T2]\n")
    out = d / "report.html"
    assert main(["report", "--tables", str(d / "tables"), "--cohort", str(d / "sheet.csv"), "--params", str(d / "params.json"),
                 "--configs", str(d / "configs"), "--out", str(out)]) == 0
    return d, out, hashlib.sha256(vol.read_bytes()).hexdigest()


SECTIONS = ("cohort", "preprocessing", "tables", "distributions", "statistics", "comparison", "ranking", "conventions",
            "segmentation", "figures", "timings", "provenance", "versions")


def test_run_report_has_distributions_pvalues_reference_rows_and_provenance(run_report):
    d, out, digest = run_report
    text = out.read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text, sid
    assert 'alt="distributions table4"' in text  # the box/strip plot of Table IV's cells
    assert "table4: 6 cell group(s), 96 value(s)" in text  # 3 cells x (PSNR, SSIM); (4+2+2) methods x 6 subjects x 2 metrics
    # the p-value table: every method vs Uni-COAL, raw and Holm; 5 comparisons (Linear, Cubic, Lanczos in SR,
    # Copy in CMS and CMSR) x 2 metrics = 10 tests of the published convention (targetscale is its own family)
    stats_part = text.split('<section id="statistics">')[1].split("</section>")[0]
    assert stats_part.count("<tr>") == 1 + 10 and "Holm" in stats_part
    # the reference columns are filled where run, '-' where they cannot run, n.r. where they could but did not
    assert "<td class=\"\" title=\"n = 6; vs Uni-COAL" in text
    assert 'class="missing" title="the method cannot perform this task">-</td>' in text
    assert 'class="notrun" title="not run in this experiment">n.r.</td>' in text
    assert digest in text and "IXI000_T1.nii.gz" in text  # input checksum
    assert "git revision of the unicoal source" in text and "table4-uni-coal-ixi.yaml" in text
    assert "nnU-Net epochs</td><td>3</td>" in text
    assert "nnU-Net training splits</td><td>train val</td>" in text  # the segmenter's training data is stated
    for pkg in ("torch", "nnunetv2", "antspyx", "ANTs (antsRegistration)"):
        assert f"<td>{pkg}</td>" in text, pkg
    conv = text.split('<section id="conventions">')[1].split("</section>")[0]
    assert "gain or offset" in conv and "<th>targetscale</th>" in conv


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_run_report_renders_every_section_in_headless_chromium(run_report, tmp_path):
    _, out, _ = run_report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,2000", out.resolve().as_uri()],
                   check=True, capture_output=True, timeout=180)
    gray = mpimg.imread(shot)[..., :3].mean(axis=2)
    assert float(gray.std()) > 0.05 and float((gray < 0.5).mean()) > 0.01
    dom = subprocess.run(flags + ["--dump-dom", out.resolve().as_uri()], check=True, capture_output=True,
                         text=True, timeout=180).stdout
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in dom, sid
    assert 'alt="distributions table4" src="data:image/png;base64,' in dom

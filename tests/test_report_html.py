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
    assert text.count('<table class="paper"') == 6


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
    assert dom.count('<table class="paper"') == 6
    assert "26.47±2.22" in dom and "<td class=\"b\"" in dom
    assert "Comparison with the paper" in dom and 'src="data:image/png;base64,' in dom

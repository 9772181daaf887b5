"""benchmarks/gpu.sh (issue #21): the GPU measurement script runs end to end on the CPU at its
--dry size and reports every method, both generator precisions and the Table I cell."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def test_bad_argument_is_one_clear_error(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown argument '--bogus'" in proc.stderr


@pytest.mark.slow
def test_dry_run_covers_every_method(tmp_path):
    """About 70 s on the 2-core machine."""
    from unicoal.methods import METHODS

    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry", "--out", str(out)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] is True
    for dtype in ("fp32", "bf16"):
        gen = summary["generator"][dtype]
        assert gen["dtype"] == dtype and gen["s_per_volume"] > 0 and gen["volume_slices"] == 4
    steps = summary["train_steps"]
    assert not [s for s in steps if "error" in s]
    trainable = {name for name, spec in METHODS.items() if spec.trainable}
    assert {s["method"] for s in steps} == trainable
    assert all(s["s_per_step_median"] > 0 and s["peak_rss_mib"] > 0 for s in steps)
    assert all(s["data"] == "dataset" for s in steps)  # batches of each method's own training dataset
    cell = summary["cell"]
    assert cell["steps"] == 2 and cell["s_per_step"] > 0
    assert float(cell["val"]["val_psnr_head"]) > 0 and cell["val"]["step"] == "2"
    md = (out / "summary.md").read_text()
    assert "| arssr_tiny | arssr |" in md and "Table I T1 -> T2 cell" in md

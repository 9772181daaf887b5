"""The speed benchmarks run end to end at the tiny size and report what they promise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_generator_speed_tiny(tmp_path):
    info = _run("generator_speed.py", "--config", "tiny", "--batch", "2", "--repeats", "1", "--threads", "1",
                "--json", str(tmp_path / "g.json"))
    assert info["s_per_slice"] > 0 and info["peak_rss_mib"] > 0 and info["params_G"] > 0
    assert info["allocator_tuned"] is True  # glibc here
    assert json.loads((tmp_path / "g.json").read_text()) == info


def test_train_speed_tiny():
    info = _run("train_speed.py", "--config", "tiny", "--batch", "4", "--steps", "1", "--threads", "1",
                "--set", "model.img_resolution=32", "--set", "model.num_layers=4", "--set", "model.margin_size=4")
    assert info["resolution"] == 32 and info["batch"] == 4
    assert info["images_per_s"] > 0 and info["s_per_step_median"] > 0 and info["params_D"] > 0

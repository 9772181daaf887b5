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


def test_trace_summary_counts_each_task_once_across_resumed_runs(tmp_path):
    head = "task_id\thash\tnative_id\tprocess\ttag\tname\tstatus\texit\trealtime\t%cpu\tpeak_rss\tstart\tcomplete\n"
    (tmp_path / "execution_trace_1.txt").write_text(head + "".join([
        "1\taa/1\t1\tBENCHMARK:TRAIN\tx\tTRAIN (x)\tCOMPLETED\t0\t1m 30s\t200.0%\t1.5 GB\t2026-12-05 10:00:00.000\t2026-12-05 10:01:30.000\n",
        "2\tbb/2\t2\tPLAN\tall\tPLAN (all)\tFAILED\t1\t442ms\t96.7%\t18.2 MB\t2026-12-05 10:00:00.000\t2026-12-05 10:00:01.000\n",
    ]))
    (tmp_path / "execution_trace_2.txt").write_text(head + "".join([
        "1\taa/1\t1\tBENCHMARK:TRAIN\tx\tTRAIN (x)\tCACHED\t0\t1m 30s\t200.0%\t1.5 GB\t2026-12-05 10:00:00.000\t2026-12-05 10:01:30.000\n",
        "2\tcc/3\t3\tPLAN\tall\tPLAN (all)\tCOMPLETED\t0\t1h 2s\t50%\t20 MB\t2026-12-05 11:00:00.000\t2026-12-05 12:00:02.000\n",
    ]))
    info = _run("trace.py", str(tmp_path / "execution_trace_1.txt"), str(tmp_path / "execution_trace_2.txt"))
    train, plan = info["processes"]["TRAIN"], info["processes"]["PLAN"]
    assert train == {"tasks": 1, "cached": 1, "wall_s": 90.0, "cpu_s": 180.0, "peak_rss_mib": 1536.0}
    assert plan["tasks"] == 1 and plan["wall_s"] == 3602.0 and plan["cpu_s"] == 1801.0  # the failed try is not counted
    assert info["total"]["cpu_s"] == 1981.0 and info["total"]["run_wall_s"] == 90.0 + 3602.0

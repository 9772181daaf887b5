"""Progress display: bars on a terminal, plain periodic lines (no carriage returns) in logs and pipes."""
from __future__ import annotations

import io
import os
import subprocess
import sys

from unicoal.progress import PlainProgress, progress, use_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_ten_percent_and_a_last_line(monkeypatch):
    monkeypatch.delenv("UNICOAL_PROGRESS", raising=False)
    out = io.StringIO()
    bar = progress(total=50, desc="train", unit="step", file=out, dynamic_ncols=True)
    assert isinstance(bar, PlainProgress)
    for i in range(50):
        bar.set_postfix({"loss": f"{1 / (i + 1):.3g}"}, refresh=False)
        bar.update(1)
    bar.close()
    bar.close()  # idempotent
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[1] for line in lines] == [f"{n}/50" for n in range(5, 51, 5)]  # every 10 %, the last once
    assert lines[-1].startswith("train: 50/50 step (100%), ") and lines[-1].endswith("loss=0.02")


def test_iteration_time_based_lines_and_resume_start(monkeypatch):
    monkeypatch.setenv("UNICOAL_PROGRESS_PERCENT", "100")  # no count-based lines before the end ...
    monkeypatch.setenv("UNICOAL_PROGRESS_SECONDS", "1e-9")  # ... but one per update by time
    out = io.StringIO()
    assert list(progress(range(3), desc="export", file=out)) == [0, 1, 2]
    assert out.getvalue().splitlines()[0].startswith("export: 1/3 it (33%)")
    assert len(out.getvalue().splitlines()) == 3
    out = io.StringIO()
    bar = PlainProgress(total=10, initial=7, desc="train", file=out)  # a resumed run starts at its step
    bar.update(3)
    bar.close()
    assert out.getvalue().startswith("train: 10/10 it (100%)")


def test_bar_on_a_terminal_and_the_overrides(monkeypatch):
    monkeypatch.delenv("UNICOAL_PROGRESS", raising=False)
    tty = _Tty()
    assert use_bar(tty) is True and use_bar(io.StringIO()) is False
    bar = progress(total=3, desc="x", file=tty)
    assert not isinstance(bar, PlainProgress)  # tqdm
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()
    monkeypatch.setenv("UNICOAL_PROGRESS", "lines")
    assert isinstance(progress(total=3, file=_Tty()), PlainProgress)
    monkeypatch.setenv("UNICOAL_PROGRESS", "off")
    out = io.StringIO()
    bar = progress(total=3, file=out)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""
    out = io.StringIO()
    with progress(total=3, file=out, disable=True) as bar:  # tqdm's disable=True: nothing
        bar.update(3)
    assert out.getvalue() == ""


def test_a_command_in_a_pipe_writes_no_carriage_return(tmp_path):
    """`unicoal cohort phantom` as a batch job sees it: stderr is a pipe, not a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNICOAL_PROGRESS")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "unicoal", "cohort", "phantom", "--out", str(tmp_path / "a"), "--subjects", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"\r" not in proc.stderr and b"phantom (tiny): 2/2 subject (100%)" in proc.stderr
    # the same command forced to draw its bar into the pipe: carriage returns (what the logs used to get)
    cmd[6] = str(tmp_path / "b")
    proc = subprocess.run(cmd, env={**env, "UNICOAL_PROGRESS": "bar"}, capture_output=True, timeout=300)
    assert proc.returncode == 0 and b"\r" in proc.stderr

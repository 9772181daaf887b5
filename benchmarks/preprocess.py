"""Seconds and peak memory per preprocessing step for one standard-preset phantom subject.

Every step runs as its own ``unicoal`` CLI process (exactly as a Nextflow task would), and its
wall time and peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``; this counts
native memory of ANTs/torch, unlike tracemalloc) are measured. Per-modality steps (normalize,
degrade) run once per modality; the table gives their total seconds and the largest peak.
Python start-up and imports are included in every number. Wall seconds depend on how busy the
machine is (the load average is printed); CPU seconds (user + system of the child) much less so.

Usage::

    python benchmarks/preprocess.py [--out DIR] [--preset standard] [--threads 1] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODALITIES = ("T1", "T2", "PD", "FLAIR")


def run_step(argv: list[str]) -> tuple[float, float, float]:
    """Run one command; return (wall seconds, CPU seconds, peak RSS in MiB). Raises on failure."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a full pipe would block the child
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"step failed ({proc.returncode}): {' '.join(argv)}\n{log.read()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0  # Linux: ru_maxrss in KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="work folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--preset", default="standard", help="phantom preset (default standard: 1 mm, full field of view)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="threads for ANTs and deepbet (default 1)")
    ap.add_argument("--thickness", type=float, default=4.0, help="degrade slice thickness in mm (default 4)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="unicoal-bench-")
    work = Path(args.out or tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    uc = [sys.executable, "-m", "unicoal"]
    load0 = os.getloadavg()
    rows: list[dict] = []

    def record(step: str, commands: list[list[str]]) -> None:
        secs, cpu, peaks = zip(*(run_step(c) for c in commands))
        rows.append({"step": step, "processes": len(commands), "seconds": sum(secs), "cpu_seconds": sum(cpu), "peak_rss_mib": max(peaks)})
        print(f"  {step}: {sum(secs):.1f} s wall, {sum(cpu):.1f} s CPU, {max(peaks):.0f} MiB", file=sys.stderr)

    code = (
        "import sys; from unicoal.cohort.phantom import simulate_subject; "
        f"simulate_subject(sys.argv[1], 1, preset={args.preset!r}, seed={args.seed})"
    )
    src = work / "phantom" / "phantom001"
    if not (src / "truth.json").exists():  # reuse a phantom left in --out by an earlier run
        record("phantom (not preprocessing)", [[sys.executable, "-c", code, str(work / "phantom")]])
    reg, ss, norm, lr = work / "reg", work / "skullstrip", work / "norm", work / "degrade"
    stem = {m: f"phantom001_{m}" for m in MODALITIES}

    record("register", [[*uc, "register", "--reference", str(src / f"{stem['T1']}.nii.gz"),
                         *(a for m in MODALITIES[1:] for a in ("--moving", str(src / f"{stem[m]}.nii.gz"))),
                         "--label", str(src / "phantom001_lesion.nii.gz"), "--out-dir", str(reg), "--threads", str(args.threads)]])
    record("skullstrip (deepbet)", [[*uc, "skullstrip", "--t1", str(reg / f"{stem['T1']}.nii.gz"),
                                     *(a for m in MODALITIES[1:] for a in ("--input", str(reg / f"{stem[m]}.nii.gz"))),
                                     "--out-dir", str(ss), "--threads", str(args.threads)]])
    mask = ss / f"{stem['T1']}_brainmask.nii.gz"
    record("normalize", [[*uc, "normalize", str(ss / f"{stem[m]}.nii.gz"), str(norm / f"{stem[m]}.nii.gz"), "--mask", str(mask)]
                         for m in MODALITIES])
    record(f"degrade ({args.thickness:g} mm)", [[*uc, "degrade", str(norm / f"{stem[m]}.nii.gz"), str(lr / f"{stem[m]}.nii.gz"),
                                                 "--thickness", str(args.thickness)] for m in MODALITIES])

    print(f"unicoal preprocessing benchmark: preset {args.preset}, 1 subject, {len(MODALITIES)} modalities, "
          f"threads {args.threads}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average before/after: {load0[0]:.1f} / {os.getloadavg()[0]:.1f} (wall seconds stretch when the CPUs are shared)")
    print(f"| {'step':<28} | processes | wall s | CPU s | peak RSS (MiB) |")
    print(f"|{'-' * 30}|-----------|--------|-------|----------------|")
    total = [r for r in rows if not r["step"].startswith("phantom")]
    total_row = {"step": "total preprocessing", "processes": sum(r["processes"] for r in total), "seconds": sum(r["seconds"] for r in total),
                 "cpu_seconds": sum(r["cpu_seconds"] for r in total), "peak_rss_mib": max(r["peak_rss_mib"] for r in total)}
    for r in [*rows, total_row]:
        print(f"| {r['step']:<28} | {r['processes']:>9} | {r['seconds']:>6.1f} | {r['cpu_seconds']:>5.1f} | {r['peak_rss_mib']:>14.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "threads": args.threads, "rows": [*rows, total_row]}, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

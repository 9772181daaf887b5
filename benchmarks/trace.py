"""Wall and CPU time of a pipeline run, per process, from Nextflow's execution traces.

Every run writes ``<outdir>/pipeline_info/execution_trace_<timestamp>.txt`` (nextflow.config).
Pass the traces of one run and its ``-resume`` runs: each task counts once (its last record by
hash), a CACHED record carries the time of the run that computed it. Per process: tasks (of them
cached), the summed task wall time (``realtime``), CPU minutes (``realtime x %cpu``), the largest
peak RSS; and the span of the computing runs (first task start to last task end, per trace) as
the whole run's wall time.

    python benchmarks/trace.py results_bench/pipeline_info/execution_trace_*.txt

Prints a table, then one JSON line (the same numbers) for scripts.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import sys
from pathlib import Path

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def seconds(text: str) -> float:
    """Nextflow's duration text (``1h 2m 3s``, ``33.8s``, ``442ms``, ``-``) in seconds."""
    parts = re.findall(r"([\d.]+)\s*(ms|s|m|h|d)\b", text or "")
    return sum(float(v) * _UNITS[u] for v, u in parts)


def mib(text: str) -> float:
    m = re.match(r"([\d.]+)\s*([KMGT]?B)", (text or "").strip())
    return float(m.group(1)) * _BYTES[m.group(2)] / 1024 ** 2 if m else 0.0


def _stamp(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S.%f")
    except (ValueError, AttributeError):
        return None


def summarise(paths: list[Path]) -> dict:
    tasks: dict[str, dict] = {}
    spans = []
    for path in sorted(paths):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        missing = {"hash", "process", "status", "realtime", "%cpu", "peak_rss", "start", "complete"} - set(rows[0] if rows else {})
        if missing:
            sys.exit(f"benchmarks/trace.py: {path}: not a Nextflow trace (missing {', '.join(sorted(missing))}); "
                     "pass <outdir>/pipeline_info/execution_trace_*.txt")
        ran = [r for r in rows if r["status"] == "COMPLETED"]
        starts = [s for s in (_stamp(r["start"]) for r in ran) if s]
        ends = [e for e in (_stamp(r["complete"]) for r in ran) if e]
        if starts and ends:
            spans.append((max(ends) - min(starts)).total_seconds())
        for r in rows:
            if r["status"] in ("COMPLETED", "CACHED"):
                tasks[r["hash"]] = r
    per: dict[str, dict] = {}
    for r in tasks.values():
        p = per.setdefault(r["process"].split(":")[-1], {"tasks": 0, "cached": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0})
        wall = seconds(r["realtime"])
        cpu = float((r["%cpu"] or "0").rstrip("%") or 0) / 100.0
        p["tasks"] += 1
        p["cached"] += r["status"] == "CACHED"
        p["wall_s"] += wall
        p["cpu_s"] += wall * cpu
        p["peak_rss_mib"] = max(p["peak_rss_mib"], mib(r["peak_rss"]))
    total = {"tasks": sum(p["tasks"] for p in per.values()), "wall_s": sum(p["wall_s"] for p in per.values()),
             "cpu_s": sum(p["cpu_s"] for p in per.values()), "run_wall_s": sum(spans)}
    return {"processes": dict(sorted(per.items(), key=lambda kv: -kv[1]["cpu_s"])), "total": total, "traces": len(paths)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+", type=Path, help="execution_trace_*.txt of one run and its -resume runs")
    args = ap.parse_args(argv)
    info = summarise(args.traces)
    print(f"{'process':<16} {'tasks':>6} {'cached':>6} {'task wall min':>14} {'CPU min':>9} {'peak RSS MiB':>13}")
    for name, p in info["processes"].items():
        print(f"{name:<16} {p['tasks']:>6} {p['cached']:>6} {p['wall_s'] / 60:>14.1f} {p['cpu_s'] / 60:>9.1f} {p['peak_rss_mib']:>13.0f}")
    t = info["total"]
    print(f"{'total':<16} {t['tasks']:>6} {'':>6} {t['wall_s'] / 60:>14.1f} {t['cpu_s'] / 60:>9.1f}")
    print(f"wall time of the computing runs (first start to last end, summed over {info['traces']} trace(s)): {t['run_wall_s'] / 60:.1f} min")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())

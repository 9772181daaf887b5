"""Learning curves on the validation split (issue #21): one plot per table with every model of it.

Inputs: the plan's jobs CSV (``unicoal plan``: its ``train`` rows name each model's id, tables,
table method id and cell) and the run folders of the trained models, each holding the
``val.csv`` of model selection (:mod:`unicoal.train.validate`: one row per validation with
``step``, ``kimg``, the metric :data:`~unicoal.train.validate.METRIC`, ``ssim_head``, one PSNR
per validation cell and ``best``, 1 where the score beat every earlier one). The selected step of
a model is its last ``best`` row, the checkpoint that ships as ``model.pt``; it must be the row
with the highest metric (the first one on ties), or the file is refused.

For each table, in ``OUT_DIR``:

* ``<table>.png``: validation PSNR vs optimiser step, one line per model (a dot per
  evaluation), colour per table method; seed replicates (``<method_id>@seed<N>``,
  :func:`unicoal.plan.replicate_of`) dashed in their method's colour; a method with several
  models in the table (Table IV: one per cell) gets one line per model, labelled with its cell,
  told apart by the marker; a star at each model's selected step.
* ``<table>.csv``: the tidy rows (:data:`CURVE_COLUMNS`); ``best`` is 1 on the selected step only.

and ``curves.json``: table -> png, csv, models (selected step, best and last PSNR), skipped models
with the reason. A model without ``val.csv`` (``run.val_every`` 0, e.g. ``-profile test``, or a
run that did not finish) is skipped with a note; a table with no curve gets no figure.
Nothing is written when an input is malformed (one :class:`~unicoal.errors.InputError` line).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unicoal.errors import InputError
from unicoal.train.validate import METRIC

__all__ = ["VAL_COLUMNS", "CURVE_COLUMNS", "JOB_NEEDS", "Curve", "Model", "read_val_csv", "read_models", "find_runs",
           "collect", "draw", "render", "write_curves"]

#: the columns of val.csv that curves read (validate.py writes them, plus one PSNR per cell)
VAL_COLUMNS: tuple[str, ...] = ("step", "kimg", METRIC, "ssim_head", "best")
#: the tidy CSV of one table
CURVE_COLUMNS: tuple[str, ...] = ("table", "train_id", "method_id", "step", "psnr", "ssim", "best")
#: the jobs CSV columns curves read
JOB_NEEDS: tuple[str, ...] = ("kind", "id", "table", "method_id", "task", "sources", "targets", "scales")
_FIX_VAL = "val.csv is written by `unicoal train` with run.val_every > 0: re-run the training, or remove the file to skip its curve"


@dataclass(frozen=True)
class Curve:
    """The validations of one run: steps, PSNR (the metric), SSIM, and the selected row."""

    steps: tuple[int, ...]
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    selected: int  # index of the selected (best) row

    @property
    def selected_step(self) -> int:
        return self.steps[self.selected]


@dataclass(frozen=True)
class Model:
    """One trained model of the plan (a ``train`` row of the jobs CSV)."""

    train_id: str
    tables: tuple[str, ...]
    method_id: str
    cell: str  # e.g. "SR T1->T1 x2;4"

    @property
    def base(self) -> str:
        """The table method a seed replicate repeats (itself otherwise)."""
        from unicoal.plan import replicate_of

        rep = replicate_of(self.method_id)
        return rep[0] if rep else self.method_id


def _number(path, lineno: int, col: str, text: str, kind=float):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise InputError(path, f"line {lineno}: {col} is {text!r}, not a number", _FIX_VAL) from None
    if kind is float and math.isinf(value):  # nan is a diverged validation: a gap in the curve, never selected
        raise InputError(path, f"line {lineno}: {col} is {text!r}, not a finite number", _FIX_VAL)
    return value


def read_val_csv(path: str | os.PathLike) -> Curve | None:
    """The curve of one ``val.csv``; ``None`` for a file with a header and no rows (no validation
    ran yet). Raises :class:`InputError` for a malformed file (module docstring)."""
    from unicoal.io import read_csv

    p = Path(path)
    header, rows = read_csv(p, "val.csv")
    missing = [c for c in VAL_COLUMNS if c not in header]
    if missing:
        raise InputError(p, f"missing column(s) {', '.join(missing)} (has {', '.join(header) or 'none'})", _FIX_VAL)
    if not rows:
        return None
    steps, psnr, ssim, best = [], [], [], []
    for lineno, r in enumerate(rows, start=2):
        steps.append(_number(p, lineno, "step", r["step"], int))
        psnr.append(_number(p, lineno, METRIC, r[METRIC]))
        ssim.append(_number(p, lineno, "ssim_head", r["ssim_head"]))
        flag = (r["best"] or "").strip()
        if flag not in ("0", "1"):
            raise InputError(p, f"line {lineno}: best is {flag!r}, expected 0 or 1", _FIX_VAL)
        best.append(flag == "1")
        if len(steps) > 1 and steps[-1] <= steps[-2]:
            raise InputError(p, f"line {lineno}: step {steps[-1]} does not follow step {steps[-2]} (steps must increase)", _FIX_VAL)
    if not any(best):
        raise InputError(p, "no row has best = 1 (the first validation is always the best so far)", _FIX_VAL)
    selected = max(i for i, b in enumerate(best) if b)
    if math.isnan(psnr[selected]):
        raise InputError(p, f"the last best = 1 row (step {steps[selected]}) has {METRIC} nan", _FIX_VAL)
    top = psnr.index(max(v for v in psnr if not math.isnan(v)))
    if top != selected:
        raise InputError(p, f"the last best = 1 row is step {steps[selected]} ({METRIC} {psnr[selected]:.4f}), but step "
                            f"{steps[top]} scores higher ({psnr[top]:.4f})", _FIX_VAL)
    return Curve(tuple(steps), tuple(psnr), tuple(ssim), selected)


def read_models(jobs: str | os.PathLike) -> list[Model]:
    """The trained models of a jobs CSV (``kind == train``), in plan order."""
    from unicoal.io import read_csv

    p = Path(jobs)
    if not p.is_file():
        raise InputError(p, "jobs file not found", "pass the jobs CSV of `unicoal plan` (plan/jobs.csv)")
    header, rows = read_csv(p, "jobs file")
    missing = [c for c in JOB_NEEDS if c not in header]
    if missing:
        raise InputError(p, f"missing column(s) {', '.join(missing)}", "pass the jobs CSV of `unicoal plan` (plan/jobs.csv)")
    out, seen = [], set()
    for lineno, r in enumerate(rows, start=2):
        if r["kind"] != "train":
            continue
        tid = r["id"].strip()
        if not tid or tid in seen:
            raise InputError(p, f"line {lineno}: train id {tid!r} is empty or repeated", "regenerate the jobs file with `unicoal plan`")
        seen.add(tid)
        pair = r["sources"] if r["sources"] == r["targets"] else f"{r['sources']}->{r['targets']}"
        cell = f"{r['task']} {pair} x{r['scales']}".strip()
        out.append(Model(tid, tuple(t for t in r["table"].split(";") if t), r["method_id"].strip(), cell))
    return out


def find_runs(dirs: Sequence[str | os.PathLike], ids: set[str]) -> dict[str, Path]:
    """Train id -> run folder: each of ``dirs`` is a run folder (named by its train id, or holding
    ``val.csv``) or a parent of such folders (e.g. ``results/models``)."""
    runs: dict[str, Path] = {}

    def add(d: Path) -> None:
        if d.name in runs and runs[d.name].resolve() != d.resolve():
            raise InputError(d, f"a second run folder for {d.name!r} (the first: {runs[d.name]})", "pass each model's run folder once")
        runs[d.name] = d

    for d in map(Path, dirs):
        if not d.is_dir():
            raise InputError(d, "run folder not found", "pass the models folder (e.g. results/models) or run folders holding val.csv")
        if d.name in ids or (d / "val.csv").is_file():
            add(d)
            continue
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if sub.name in ids or (sub / "val.csv").is_file():
                add(sub)
    return runs


def collect(jobs: str | os.PathLike, run_dirs: Sequence[str | os.PathLike]
            ) -> tuple[dict[str, list[tuple[Model, Curve]]], dict[str, list[dict]], list[str]]:
    """Read everything (nothing written): table -> [(model, curve)], table -> skipped models
    ``{train_id, method_id, reason}``, and notes on run folders outside the plan."""
    models = read_models(jobs)
    runs = find_runs(run_dirs, {m.train_id for m in models})
    notes = [f"{tid}: run folder {runs[tid]} is not a train job of the plan (ignored)"
             for tid in sorted(set(runs) - {m.train_id for m in models})]
    curves: dict[str, list[tuple[Model, Curve]]] = {}
    skipped: dict[str, list[dict]] = {}
    for m in models:
        run = runs.get(m.train_id)
        curve, reason = None, None
        if run is None:
            reason = "no run folder (not trained, or not passed with --runs)"
        elif not (run / "val.csv").is_file():
            reason = "no val.csv (validation off: run.val_every 0 or no val subjects)"
        else:
            curve = read_val_csv(run / "val.csv")
            reason = None if curve is not None else "val.csv has no rows (no validation ran)"
        for t in m.tables:
            curves.setdefault(t, [])
            if curve is not None:
                curves[t].append((m, curve))
            else:
                skipped.setdefault(t, []).append({"train_id": m.train_id, "method_id": m.method_id, "reason": reason})
    return curves, skipped, notes


def _labels(items: Sequence[tuple[Model, Curve]]) -> list[str]:
    """method_id, plus the cell where a method has several models in the table."""
    count: dict[str, int] = {}
    for m, _ in items:
        count[m.method_id] = count.get(m.method_id, 0) + 1
    return [m.method_id if count[m.method_id] == 1 else f"{m.method_id} ({m.cell})" for m, _ in items]


def draw(table: str, items: Sequence[tuple[Model, Curve]]):
    """The matplotlib figure of one table's curves (module docstring); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    bases = list(dict.fromkeys(m.base for m, _ in items))
    colours = {b: plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")(i) for i, b in enumerate(bases)}
    markers = "osD^vP<>Xh"
    nth: dict[str, int] = {}
    fig, ax = plt.subplots(figsize=(9.0, 4.8))
    for (m, c), label in zip(items, _labels(items)):
        k = nth[m.method_id] = nth.get(m.method_id, -1) + 1
        colour, marker = colours[m.base], markers[k % len(markers)]
        ax.plot(c.steps, c.psnr, color=colour, marker=marker, markersize=4.5, linewidth=1.4,
                linestyle="--" if m.base != m.method_id else "-", label=label)
        ax.plot([c.selected_step], [c.psnr[c.selected]], marker="*", markersize=13, color=colour, markeredgecolor="black",
                linestyle="none", label=f"_selected {m.train_id}")  # '_': not in the legend
    ax.plot([], [], marker="*", markersize=11, color="white", markeredgecolor="black", linestyle="none", label="selected step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(f"validation PSNR (dB, {METRIC})")
    ax.set_title(f"{table}: learning curves on the validation split")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def render(table: str, items: Sequence[tuple[Model, Curve]], dpi: int = 100) -> bytes:
    """The PNG of one table's curves."""
    import io

    import matplotlib.pyplot as plt

    fig = draw(table, items)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _model_info(m: Model, c: Curve, label: str) -> dict:
    return {"train_id": m.train_id, "method_id": m.method_id, "label": label, "cell": m.cell,
            "selected_step": c.selected_step, "best_psnr": c.psnr[c.selected], "last_step": c.steps[-1],
            "last_psnr": c.psnr[-1], "evaluations": len(c.steps)}


def write_curves(jobs: str | os.PathLike, run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 dpi: int = 100) -> dict:
    """Read every input, then write ``<table>.png``, ``<table>.csv`` and ``curves.json`` into
    ``out_dir`` all at once; returns the manifest."""
    from unicoal.io import staged_outputs, write_csv, write_json

    curves, skipped, notes = collect(jobs, run_dirs)
    manifest: dict = {"metric": METRIC, "tables": {}, "notes": notes}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with staged_outputs(out) as stage:
        for table in sorted(curves):
            items = curves[table]
            entry: dict = {"png": None, "csv": None, "models": [], "skipped": skipped.get(table, [])}
            if items:
                labels = _labels(items)
                entry["models"] = [_model_info(m, c, lab) for (m, c), lab in zip(items, labels)]
                rows = [{"table": table, "train_id": m.train_id, "method_id": m.method_id, "step": s, "psnr": p, "ssim": q,
                         "best": int(i == c.selected)}
                        for m, c in items for i, (s, p, q) in enumerate(zip(c.steps, c.psnr, c.ssim))]
                entry["csv"], entry["png"] = f"{table}.csv", f"{table}.png"
                write_csv(stage / entry["csv"], CURVE_COLUMNS, rows)
                (stage / entry["png"]).write_bytes(render(table, items, dpi))
            manifest["tables"][table] = entry
        write_json(stage / "curves.json", manifest)
    return manifest

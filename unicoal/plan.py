"""The experiment plan: which methods x tasks x scales reproduce each paper table, as jobs.

Each table is data in ``unicoal/experiments/<table>.yaml`` (methods, tasks, scales, metrics,
and a ``test`` subset); ``profiles.yaml`` holds the run profiles (``test``: tiny models, few
steps; ``bench``: each table's ``bench`` subset, else its ``test`` one, tiny models, one budget
per table, ``bench.max_steps``; ``full``: the paper's settings). :func:`build_plan` expands them over a samplesheet into

* **train jobs** -- one per model to train. How many models a method needs follows its
  capabilities in :data:`unicoal.methods.METHODS` (paper Table V): a method that is *arbitrary
  in* and *arbitrary out* for a task trains one model for all of that task's sources, targets and
  scales (Uni-COAL trains one model per table: Sec. IV-C4); *arbitrary in* only drops the input
  modality and scale from the model's key; a *specific* method trains one model per cell
  ("SC-GAN and ProvoGAN train a specific model for each task"). A table entry can force
  ``training: per_table | per_task | per_cell``. Identical train jobs of several tables are merged.
* **synthesize jobs** -- one per (model, test subject, source, target, scale); each is then
  evaluated (PSNR/SSIM, and DSC where the table has it and the subject has a label).

Methods not (yet) in the registry are skipped and their cells stay '-' in the tables.
The Nextflow pipeline runs ``unicoal plan`` and turns the jobs CSV into channels, so adding a
baseline or a table never needs a new process.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from unicoal.errors import InputError

__all__ = [
    "TABLES",
    "PROFILES",
    "TaskEntry",
    "MethodEntry",
    "Experiment",
    "TrainJob",
    "SynthJob",
    "Plan",
    "load_experiment",
    "load_experiments",
    "load_profile",
    "resolve_method",
    "task_kind",
    "format_scale",
    "build_plan",
    "write_plan",
    "REPLICATE_MARK",
    "replicate_of",
]

#: Tables reproduced by experiments (Table V is the capability summary, rendered from data).
TABLES: tuple[str, ...] = ("table1", "table2", "table3", "table4", "table6")
PROFILES: tuple[str, ...] = ("test", "full", "bench")
TRAININGS: tuple[str, ...] = ("auto", "per_table", "per_task", "per_cell")
#: sections of a train config (unicoal.train.config) that a table entry may override
CONFIG_SECTIONS: tuple[str, ...] = ("parity", "model", "data", "loss", "optim", "run")
_MODALITIES: tuple[str, ...] = ("T1", "T2", "PD", "FLAIR", "T1CE")
_METRICS: tuple[str, ...] = ("PSNR", "SSIM", "DSC")

#: a seed replicate's method id is ``<table method id>@seed<N>`` (-profile bench: the seed spread)
REPLICATE_MARK = "@seed"

JOB_COLUMNS: tuple[str, ...] = (
    "kind", "id", "train_id", "table", "method_id", "method", "dataset", "task", "source", "target",
    "scale", "subject", "dice", "config", "max_steps", "sources", "targets", "scales",
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _norm(name: str) -> str:
    """Case- and punctuation-insensitive method key (``SC-GAN`` == ``scgan``)."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def replicate_of(method_id: str) -> tuple[str, int] | None:
    """``'Uni-COAL_one@seed1' -> ('Uni-COAL_one', 1)``: the table method a seed replicate repeats,
    and its seed; ``None`` for a table's own method (statistics and rankings leave replicates out)."""
    base, mark, seed = str(method_id).rpartition(REPLICATE_MARK)
    if not mark or not base or not seed.isdigit():
        return None
    return base, int(seed)


def format_scale(scale: float) -> str:
    """``2.0 -> '2'``, ``5.33 -> '5.33'``: the one spelling of a scale in job ids and CSVs."""
    return f"{float(scale):g}"


def task_kind(source: str, target: str, scale: float) -> str:
    """Paper Sec. III-A: SR keeps the modality, CMS keeps the thickness, CMSR changes both."""
    if source == target:
        return "SR"
    return "CMS" if math.isclose(float(scale), 1.0) else "CMSR"


# --------------------------------------------------------------------------------------------
# the experiment files


@dataclass(frozen=True)
class TaskEntry:
    """One task block of a table: ``source -> target`` at each of ``scales`` (thickness ratios)."""

    name: str
    source: str
    target: str
    scales: tuple[float, ...]
    dataset: str
    dice: bool = True

    def __post_init__(self):
        for key in ("source", "target"):
            if getattr(self, key) not in _MODALITIES:
                raise ValueError(f"task {self.name!r}: {key} {getattr(self, key)!r} is not one of {', '.join(_MODALITIES)}")
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not math.isfinite(s) or s < 1.0 for s in scales):
            raise ValueError(f"task {self.name!r}: scales must be numbers >= 1, got {list(self.scales)}")
        if self.source == self.target and any(math.isclose(s, 1.0) for s in scales):
            raise ValueError(f"task {self.name!r}: scale 1 with source == target is the identity")
        object.__setattr__(self, "scales", scales)
        if not self.dataset:
            raise ValueError(f"task {self.name!r}: no dataset (set it on the task or the table)")


@dataclass(frozen=True)
class MethodEntry:
    """One method row/column of a table: ``id`` as the table prints it, ``method`` the registry name."""

    id: str
    method: str
    training: str = "auto"
    overrides: Mapping[str, Any] = field(default_factory=dict)  # train config sections (model, data, loss, ...)
    # per-profile overrides, e.g. {test: {base: resvit_tiny, max_steps: 36}, full: {base: resvit}}: config sections,
    # ``base`` (the method's packaged config instead of the profile's) and ``max_steps`` (used when --max-steps is not given)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        if not self.id or not self.method:
            raise ValueError(f"method entries need an id and a method, got id={self.id!r} method={self.method!r}")
        if self.training not in TRAININGS:
            raise ValueError(f"method {self.id!r}: training must be one of {', '.join(TRAININGS)}, got {self.training!r}")
        bad = set(self.overrides) - set(CONFIG_SECTIONS)
        if bad:
            raise ValueError(f"method {self.id!r}: unknown config section(s) {sorted(bad)} (allowed: {', '.join(CONFIG_SECTIONS)})")
        for prof, over in self.profiles.items():
            bad = ({prof} - set(PROFILES)) | (set(over or {}) - set(CONFIG_SECTIONS) - {"base", "max_steps"})
            if bad:
                raise ValueError(f"method {self.id!r}: profiles.{prof}: unknown profile or key(s) {sorted(bad)} (profiles: {', '.join(PROFILES)}; keys: base, max_steps, {', '.join(CONFIG_SECTIONS)})")
            if prof == "bench" and "max_steps" in (over or {}):
                raise ValueError(f"method {self.id!r}: profiles.bench.max_steps: the bench budget is one per table (the table's bench: {{max_steps: N}}), not per method")

    def profile_overrides(self, profile: str) -> dict:
        """This method's overrides under ``profile``; ``bench`` falls back to its ``test`` entry
        (tiny models) without the per-method ``max_steps``: every method of a table gets one budget."""
        if profile == "bench" and "bench" not in self.profiles:
            return {k: v for k, v in (self.profiles.get("test") or {}).items() if k != "max_steps"}
        return dict(self.profiles.get(profile) or {})


@dataclass(frozen=True)
class Experiment:
    """One paper table as an experiment (``unicoal/experiments/<table>.yaml``)."""

    table: str
    title: str
    metrics: tuple[str, ...]
    methods: tuple[MethodEntry, ...]
    tasks: tuple[TaskEntry, ...]
    test_tasks: tuple[str, ...] | None = None
    test_scales: tuple[float, ...] | None = None
    # -profile bench (issue #21): the table's representative cell and its one training budget
    bench_tasks: tuple[str, ...] | None = None
    bench_scales: tuple[float, ...] | None = None
    bench_max_steps: int | None = None
    # bench.extra_seeds: {method id: [seeds]}: each trained again with run.seed = N beside the
    # table's own run (seed 0), as method ``<id>@seed<N>``: the seed spread next to the method gaps
    bench_extra_seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self):
        bad = [m for m in self.metrics if m not in _METRICS]
        if bad:
            raise ValueError(f"{self.table}: unknown metric(s) {bad} (allowed: {', '.join(_METRICS)})")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.table}: duplicate task names {names}")
        ids = [m.id for m in self.methods]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.table}: duplicate method ids {ids}")
        for key in ("test", "bench"):
            unknown = [t for t in (getattr(self, f"{key}_tasks") or ()) if t not in names]
            if unknown:
                raise ValueError(f"{self.table}: {key}.tasks {unknown} not among the tasks {names}")
        if self.bench_max_steps is not None and int(self.bench_max_steps) < 1:
            raise ValueError(f"{self.table}: bench.max_steps must be >= 1, got {self.bench_max_steps}")
        for mid, seeds in self.bench_extra_seeds.items():
            if mid not in ids:
                raise ValueError(f"{self.table}: bench.extra_seeds names {mid!r}, not among the methods {ids}")
            if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in seeds) or len(set(seeds)) != len(seeds):
                raise ValueError(f"{self.table}: bench.extra_seeds.{mid} must be distinct integers >= 1 (seed 0 is the table's own run), got {list(seeds)}")

    @property
    def dice(self) -> bool:
        return "DSC" in self.metrics

    def tasks_for(self, profile: str) -> tuple[TaskEntry, ...]:
        """The tasks (and scales) a profile runs: all for ``full``, the ``test`` subset for ``test``;
        ``bench``: the ``bench`` subset where the table has one, else its ``test`` subset."""
        if profile not in ("test", "bench"):
            return self.tasks
        names, subset_scales = self.test_tasks, self.test_scales
        if profile == "bench" and (self.bench_tasks is not None or self.bench_scales is not None):
            names, subset_scales = self.bench_tasks, self.bench_scales
        picked = [t for t in self.tasks if names is None or t.name in names]
        if subset_scales is None:
            return tuple(picked)
        out = []
        for t in picked:
            scales = tuple(s for s in subset_scales if not (t.source == t.target and math.isclose(s, 1.0)))
            if scales:
                out.append(TaskEntry(t.name, t.source, t.target, scales, t.dataset, t.dice))
        return tuple(out)


def _experiment_text(name: str) -> tuple[str, str]:
    key = str(name).strip().lower()
    if key not in TABLES:
        raise InputError(None, f"unknown experiment {name!r}", f"use one of {', '.join(TABLES)} or all")
    res = resources.files("unicoal").joinpath("experiments", f"{key}.yaml")
    return str(res), res.read_text(encoding="utf-8")


def _parse_experiment(where: str, doc: Any) -> Experiment:
    if not isinstance(doc, dict):
        raise InputError(where, "experiment file is not a mapping", "see unicoal/experiments/table4.yaml for the layout")
    try:
        default_ds = str(doc.get("dataset") or "")
        tasks = tuple(
            TaskEntry(name=str(t["name"]), source=str(t["source"]), target=str(t["target"]),
                      scales=tuple(t["scales"]), dataset=str(t.get("dataset") or default_ds), dice=bool(t.get("dice", True)))
            for t in doc["tasks"]
        )
        methods = tuple(
            MethodEntry(id=str(m["id"]), method=str(m["method"]), training=str(m.get("training", "auto")),
                        overrides={k: v for k, v in m.items() if k not in ("id", "method", "training", "profiles")},
                        profiles={str(k): dict(v or {}) for k, v in (m.get("profiles") or {}).items()})
            for m in doc["methods"]
        )
        test = doc.get("test") or {}
        bench = doc.get("bench") or {}
        return Experiment(
            table=str(doc["table"]), title=str(doc.get("title", "")), metrics=tuple(doc.get("metrics") or ("PSNR", "SSIM")),
            methods=methods, tasks=tasks,
            test_tasks=tuple(test["tasks"]) if test.get("tasks") else None,
            test_scales=tuple(float(s) for s in test["scales"]) if test.get("scales") else None,
            bench_tasks=tuple(bench["tasks"]) if bench.get("tasks") else None,
            bench_scales=tuple(float(s) for s in bench["scales"]) if bench.get("scales") else None,
            bench_max_steps=int(bench["max_steps"]) if bench.get("max_steps") is not None else None,
            bench_extra_seeds={str(k): tuple(v if isinstance(v, list) else [v]) for k, v in (bench.get("extra_seeds") or {}).items()},
        )
    except KeyError as err:
        raise InputError(where, f"missing key {err}", "every table needs table, methods (id, method) and tasks (name, source, target, scales)") from None
    except (TypeError, ValueError) as err:
        raise InputError(where, str(err), "fix the experiment file") from None


def load_experiment(name: str) -> Experiment:
    """Load one table's experiment (``table1`` .. ``table6``)."""
    import yaml

    where, text = _experiment_text(name)
    exp = _parse_experiment(where, yaml.safe_load(text))
    if exp.table != str(name).strip().lower():
        raise InputError(where, f"file declares table {exp.table!r}", f"set table: {name}")
    return exp


def load_experiments(name: str) -> tuple[Experiment, ...]:
    """``all`` -> every table; a comma-separated list works too (``table1,table4``)."""
    key = str(name).strip().lower()
    names = TABLES if key == "all" else tuple(n.strip() for n in key.split(",") if n.strip())
    if not names:
        raise InputError(None, "no experiment given", f"use one of {', '.join(TABLES)} or all")
    return tuple(load_experiment(n) for n in names)


def load_profile(name: str) -> dict:
    """The run profile (``test`` / ``full``) from ``unicoal/experiments/profiles.yaml``."""
    import yaml

    if name not in PROFILES:
        raise InputError(None, f"unknown profile {name!r}", f"use one of {', '.join(PROFILES)}")
    doc = yaml.safe_load(resources.files("unicoal").joinpath("experiments", "profiles.yaml").read_text(encoding="utf-8")) or {}
    return dict(doc.get(name) or {})


# --------------------------------------------------------------------------------------------
# the method registry (written elsewhere; absent methods are skipped)


def _registry() -> Mapping[str, Any]:
    try:
        from unicoal.methods import METHODS
    except ImportError:  # registry not written yet: nothing can run
        return {}
    return METHODS


def resolve_method(name: str, registry: Mapping[str, Any] | None = None):
    """The registry entry for ``name`` (matched against names and display names, ignoring case
    and punctuation), or ``None`` when it is not registered."""
    registry = _registry() if registry is None else registry
    key = _norm(name)
    for reg_name, spec in registry.items():
        if _norm(reg_name) == key or _norm(getattr(spec, "display", "")) == key:
            return spec
    return None


def _caps(spec: Any) -> tuple[frozenset, frozenset, frozenset, bool]:
    if spec is None:  # --ignore-registry: treat as a specific, trainable method
        return frozenset({"cms", "sr", "cmsr"}), frozenset(), frozenset(), True
    return (frozenset(getattr(spec, "tasks", ())), frozenset(getattr(spec, "arbitrary_in", ())),
            frozenset(getattr(spec, "arbitrary_out", ())), bool(getattr(spec, "trainable", True)))


# --------------------------------------------------------------------------------------------
# jobs


@dataclass(frozen=True)
class Cell:
    table: str
    dataset: str
    task: str
    source: str
    target: str
    scale: float
    dice: bool


@dataclass
class TrainJob:
    id: str
    method: str
    method_id: str
    tables: list[str]
    config: dict
    max_steps: int | None
    cells: list[Cell] = field(default_factory=list)

    def row(self, config_path: str) -> dict:
        return {
            "kind": "train", "id": self.id, "train_id": self.id, "table": ";".join(self.tables), "method_id": self.method_id,
            "method": self.method, "dataset": ";".join(sorted({c.dataset for c in self.cells})),
            "task": ";".join(sorted({c.task for c in self.cells})),
            "sources": ";".join(sorted({c.source for c in self.cells})), "targets": ";".join(sorted({c.target for c in self.cells})),
            "scales": ";".join(format_scale(s) for s in sorted({c.scale for c in self.cells})),
            "config": config_path, "max_steps": "" if self.max_steps is None else str(self.max_steps),
        }


@dataclass
class SynthJob:
    id: str
    train_id: str
    table: str
    method_id: str
    method: str
    cell: Cell
    subject: str
    dice: bool

    def row(self) -> dict:
        c = self.cell
        return {
            "kind": "synthesize", "id": self.id, "train_id": self.train_id, "table": self.table, "method_id": self.method_id,
            "method": self.method, "dataset": c.dataset, "task": c.task, "source": c.source, "target": c.target,
            "scale": format_scale(c.scale), "subject": self.subject, "dice": "true" if self.dice else "false",
        }


@dataclass
class Plan:
    train: list[TrainJob]
    synthesize: list[SynthJob]
    skipped: list[str]
    samplesheet: list  # SampleRow list with splits

    def rows(self, config_dir: str = "configs") -> list[dict]:
        out = [{**dict.fromkeys(JOB_COLUMNS, ""), **j.row(f"{config_dir}/{j.id}.yaml")} for j in self.train]
        out += [{**dict.fromkeys(JOB_COLUMNS, ""), **j.row()} for j in self.synthesize]
        return out

    def summary(self) -> dict:
        return {
            "train_jobs": len(self.train),
            "synthesize_jobs": len(self.synthesize),
            "models": {j.id: sorted({f"{c.table}:{c.source}->{c.target}x{format_scale(c.scale)}" for c in j.cells}) for j in self.train},
            "skipped": self.skipped,
        }


def _deep_merge(base: Mapping, over: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _group_key(entry: MethodEntry, cell: Cell, arb_in: frozenset, arb_out: frozenset, all_tasks: set) -> tuple:
    t = cell.task.lower()
    mode = entry.training
    scale = f"x{format_scale(cell.scale)}"
    if mode == "per_cell":
        return (cell.dataset, cell.task, cell.source, cell.target, scale)
    if mode == "per_task":
        return (cell.dataset, cell.task, cell.source, cell.target)
    if mode == "per_table":
        return (cell.dataset,)
    # auto: drop what the method is arbitrary in (paper Table V)
    unified = all(x in arb_in and x in arb_out for x in all_tasks)
    key = [cell.dataset]
    if not unified:
        key.append(cell.task)
    if t not in arb_in:
        key.append(cell.source)
    if t not in arb_out:
        key.append(cell.target)
    if t not in arb_in:
        key.append(scale)
    return tuple(key)


def build_plan(
    experiments: Sequence[Experiment],
    samplesheet_rows: Sequence,
    *,
    profile: str = "full",
    methods: Iterable[str] | None = None,
    registry: Mapping[str, Any] | None = None,
    ignore_registry: bool = False,
    max_test_subjects: int | None = None,
    max_steps: int | None = None,
) -> Plan:
    """Expand experiments over a samplesheet (rows with splits) into train and synthesize jobs.

    Args:
        profile: ``test`` (each table's test subset, tiny models), ``bench`` (each table's bench
            subset, tiny models, one training budget per table: issue #21) or ``full``.
        methods: keep only these table ids or registry names (``None``: all).
        ignore_registry: plan every method of the tables, registered or not (``-stub-run``).
        max_test_subjects / max_steps: override the profile's limits.
    """
    prof = load_profile(profile)
    registry = _registry() if registry is None else registry
    wanted = None if methods is None else {_norm(m) for m in methods}
    limit = max_test_subjects if max_test_subjects is not None else prof.get("max_test_subjects")
    steps = max_steps if max_steps is not None else prof.get("max_steps")
    overrides = {k: v for k, v in prof.items() if k not in ("max_steps", "max_test_subjects")}

    subjects: dict[str, dict] = {}
    for r in samplesheet_rows:
        s = subjects.setdefault(r.subject, {"split": r.split, "mods": set(), "label": False})
        s["mods"].add(r.modality)
        s["label"] = s["label"] or r.label is not None
    available = set().union(*(s["mods"] for s in subjects.values())) if subjects else set()
    test_subjects = sorted(s for s, v in subjects.items() if v["split"] == "test")
    train_mods = set().union(*(v["mods"] for v in subjects.values() if v["split"] == "train")) if subjects else set()

    skipped: list[str] = []
    if not test_subjects:
        skipped.append("no subject in the test split: nothing to synthesize")
    trains: dict[str, TrainJob] = {}
    by_content: dict[str, str] = {}
    synths: list[SynthJob] = []
    seen_synth: set[str] = set()

    for exp in experiments:
        tasks = exp.tasks_for(profile)
        # -profile bench: one budget for every learned method of the table (--max-steps still wins)
        table_steps = exp.bench_max_steps if profile == "bench" and max_steps is None and exp.bench_max_steps is not None else steps
        cells = []
        for t in tasks:
            if t.source not in available or t.target not in available or t.source not in train_mods or t.target not in train_mods:
                skipped.append(f"{exp.table} {t.name}: the samplesheet has no {t.source} and {t.target} volumes in the train split")
                continue
            cells += [Cell(exp.table, t.dataset, task_kind(t.source, t.target, s), t.source, t.target, s, exp.dice and t.dice) for s in t.scales]
        entries = list(exp.methods)
        if profile == "bench":  # seed replicates, each right after its table method
            entries = [e for m in exp.methods for e in [m] + [
                MethodEntry(id=f"{m.id}{REPLICATE_MARK}{seed}", method=m.method, training=m.training,
                            overrides=_deep_merge(m.overrides, {"run": {"seed": seed}}), profiles=m.profiles)
                for seed in exp.bench_extra_seeds.get(m.id, ())]]
        for entry in entries:
            rep = replicate_of(entry.id)
            names = {_norm(entry.id), _norm(entry.method)} | ({_norm(rep[0])} if rep else set())
            if wanted is not None and not names & wanted:
                continue
            spec = resolve_method(entry.method, registry)
            if spec is None and not ignore_registry:
                skipped.append(f"{exp.table} {entry.id}: method {entry.method!r} is not registered in unicoal.methods")
                continue
            tasks_ok, arb_in, arb_out, trainable = _caps(spec)
            mine = [c for c in cells if c.task.lower() in tasks_ok]
            for c in cells:
                if c.task.lower() not in tasks_ok:
                    skipped.append(f"{exp.table} {entry.id}: cannot perform {c.task} ({c.source}->{c.target} x{format_scale(c.scale)})")
            if not mine:
                continue
            reg_name = getattr(spec, "name", None) or _slug(entry.method)
            all_tasks = {c.task.lower() for c in mine}
            groups: dict[tuple, list[Cell]] = {}
            for c in mine:
                groups.setdefault(_group_key(entry, c, arb_in, arb_out, all_tasks), []).append(c)
            for key, gcells in groups.items():
                train_id = ""
                if trainable:
                    # the model knows every modality it reads or writes; the data section says
                    # which inputs, outputs and thickness ratios its training samples draw
                    mods = sorted({c.source for c in gcells} | {c.target for c in gcells}, key=_MODALITIES.index)
                    task = {
                        "method": reg_name,
                        "model": {"modalities": mods},
                        "data": {
                            "input_modalities": sorted({c.source for c in gcells}, key=_MODALITIES.index),
                            "output_modalities": sorted({c.target for c in gcells}, key=_MODALITIES.index),
                            "ratios": sorted({c.scale for c in gcells}),
                        },
                    }
                    directions = sorted({(c.source, c.target) for c in gcells}, key=lambda d: (_MODALITIES.index(d[0]), _MODALITIES.index(d[1])))
                    if "sr" not in tasks_ok and len(directions) > 1:  # a unified CMS model trains the directions its cells evaluate
                        task["data"]["pairs"] = [list(d) for d in directions]
                    per_profile = entry.profile_overrides(profile)
                    job_steps = table_steps if max_steps is not None or "max_steps" not in per_profile else per_profile["max_steps"]
                    per_profile.pop("max_steps", None)
                    config = _deep_merge(_deep_merge(_deep_merge(overrides, task), entry.overrides), per_profile)
                    content = json.dumps({"config": config, "max_steps": job_steps}, sort_keys=True)
                    if content in by_content:
                        train_id = by_content[content]
                        job = trains[train_id]
                        if exp.table not in job.tables:
                            job.tables.append(exp.table)
                        job.cells += [c for c in gcells if c not in job.cells]
                    else:
                        base = "-".join([exp.table, _slug(entry.id)] + [_slug(k) for k in key])
                        train_id = base
                        n = 2
                        while train_id in trains:
                            train_id, n = f"{base}-{n}", n + 1
                        trains[train_id] = TrainJob(train_id, reg_name, entry.id, [exp.table], config, job_steps, list(gcells))
                        by_content[content] = train_id
                pool = test_subjects if limit is None else test_subjects[: int(limit)]
                for c in gcells:
                    for subj in pool:
                        info = subjects[subj]
                        if c.source not in info["mods"] or c.target not in info["mods"]:
                            continue
                        job_id = f"{exp.table}-{_slug(entry.id)}-{subj}-{c.source}-{c.target}-x{format_scale(c.scale)}"
                        if job_id in seen_synth:
                            continue
                        seen_synth.add(job_id)
                        synths.append(SynthJob(job_id, train_id, exp.table, entry.id, reg_name, c, subj, c.dice and info["label"]))
    return Plan(list(trains.values()), synths, skipped, list(samplesheet_rows))


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_plan(plan: Plan, out: str | os.PathLike, *, config_dir: str | os.PathLike | None = None) -> Path:
    """Write the jobs (``.csv`` or ``.json`` by extension), one YAML config per train job under
    ``config_dir`` (default: ``configs/`` beside ``out``) and ``samplesheet.csv`` (absolute paths,
    splits filled in) beside ``out``. Config paths in the jobs are relative to ``out``'s folder."""
    import yaml

    from unicoal.cohort.samplesheet import write_samplesheet
    from unicoal.io import atomic_path, check_writable

    dest = check_writable(out)
    cdir = Path(config_dir) if config_dir is not None else dest.parent / "configs"
    cdir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(cdir, dest.parent)
    for job in plan.train:
        with atomic_path(cdir / f"{job.id}.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(job.config, sort_keys=True))
    write_samplesheet(dest.parent / "samplesheet.csv", plan.samplesheet, relative=False)
    rows = plan.rows(rel)
    with atomic_path(dest) as tmp:
        if dest.suffix.lower() == ".json":
            tmp.write_text(json.dumps({"jobs": rows, **plan.summary()}, indent=2) + "\n")
        else:
            tmp.write_text(_csv_text(rows, JOB_COLUMNS))
    return dest

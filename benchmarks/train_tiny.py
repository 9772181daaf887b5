"""Learning curves of the tiny Uni-COAL config on the embedded phantom cohort (issue #15).

Trains one model (``--model sr``: task-specific T1 4x SR; ``--model unified``: T1/T2/PD x
{1, 2, 4, 6}) with the GAN as the paper trains it (non-saturating loss + R1, L1, blur schedule,
EMA), in chunks of ``--eval-every`` steps. After every chunk the EMA generator synthesises the
held-out (test-split) volumes through ``unicoal synthesize`` and the PSNR (data range 1, whole
volume and inside the head) is appended to ``WORK/curve_MODEL.csv`` together with the same
numbers for the references:

* SR (T1, 4x thicker slices, ``rect`` profile): linear, cubic and Lanczos interpolation;
* CMS (unified model, T1 -> T2): copying the source contrast (the T1 volume as the T2 estimate).

Training stops at ``--steps`` (the lr horizon) or once the training CPU time of this process
passes ``--max-cpu-minutes``; a killed run resumes from its last chunk (``--resume`` semantics of
``unicoal train``: the same batches and weights). ``plot`` draws every ``curve_*.csv`` of a work
directory into one PNG (PSNR inside the head vs steps, one line per method).

Pipeline: ``unicoal.cohort.phantom.generate_cohort`` (6 subjects: 2 train / 2 val / 2 test) ->
``unicoal.preprocess.register`` (QuickRigid to the axial T2) -> ``normalize`` -> ``unicoal train``.
The preprocessed cohort is cached in ``--work``.

Usage::

    python benchmarks/train_tiny.py curve --model sr --work /tmp/bench_tiny            # 12000-step horizon, <= 60 CPU min
    python benchmarks/train_tiny.py curve --model unified --work /tmp/bench_tiny --steps 4000 --eval-every 500
    python benchmarks/train_tiny.py plot --work /tmp/bench_tiny --out docs/img/train_tiny_curve.png \
        --csv-out docs/img/train_tiny_curve.csv
    python benchmarks/train_tiny.py subjects --work /tmp/bench_tiny   # per-subject PSNR and intensity levels
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

MODALITIES = ("T1", "T2", "PD")
MODELS = {
    # data overrides of the tiny config per model
    "sr": {"input_modalities": ["T1"], "output_modalities": ["T1"], "ratios": [4]},
    "unified": {},
}
# (task name, source modality, target modality, thickness ratio)
TASKS = {
    "sr": [("sr_T1_4x", "T1", "T1", 4.0)],
    "unified": [("sr_T1_4x", "T1", "T1", 4.0), ("cms_T1_T2", "T1", "T2", 1.0)],
}
SR_REFERENCES = ("linear", "cubic", "lanczos")
FIELDS = ["model", "step", "kimg", "train_cpu_s", "train_wall_s", "cpu_s_per_step", "task", "method", "psnr", "psnr_head",
          "volumes"]


def prepare_cohort(work: Path, subjects: int, seed: int) -> Path:
    """Phantoms -> rigid registration to T2 -> [0, 1] normalisation; returns the samplesheet."""
    from unicoal.cohort.phantom import generate_cohort
    from unicoal.cohort.samplesheet import SampleRow, read_samplesheet, subjects_of, write_samplesheet
    from unicoal.preprocess.normalize import normalize_volume
    from unicoal.preprocess.register import RegistrationConfig, register

    sheet = work / "preprocessed" / "samplesheet.csv"
    if sheet.exists():
        return sheet
    raw = generate_cohort(work / "raw", subjects=subjects, preset="tiny", seed=seed)
    rows = []
    for sid, by_mod in subjects_of(read_samplesheet(raw)).items():
        reg = register(by_mod["T2"].path, [by_mod["T1"].path, by_mod["PD"].path], work / "registered" / sid, config=RegistrationConfig(transform="QuickRigid"))
        for mod, path in zip(("T2", "T1", "PD"), (reg.reference, *reg.moving)):
            out = work / "preprocessed" / sid / f"{sid}_{mod}.nii.gz"
            normalize_volume(path, out)
            rows.append(SampleRow(sid, mod, out, None, by_mod[mod].split))
    return write_samplesheet(sheet, rows)


def _central(vol: np.ndarray, size: int) -> np.ndarray:
    """Crop the in-plane axes (0, 1) to the model's central ``size x size`` field of view."""
    out = vol
    for ax in (0, 1):
        n = out.shape[ax]
        if n > size:
            out = np.take(out, np.arange((n - size) // 2, (n - size) // 2 + size), axis=ax)
    return out


class HeldOut:
    """The test-split volumes of each task, their inputs (degraded for SR) and the reference
    methods' PSNR (computed once)."""

    def __init__(self, sheet: Path, work: Path, tasks, size: int):
        from unicoal.cohort.samplesheet import read_samplesheet, subjects_of
        from unicoal.evaluate.metrics import get_convention
        from unicoal.geometry import Grid
        from unicoal.io import load_volume
        from unicoal.preprocess.degrade import degrade_file

        self.conv = get_convention("published")
        self.size, self.work = size, work / "eval"
        self.cases = []  # (task, subject, source path, input path, target path, target modality)
        for sid, by_mod in subjects_of([r for r in read_samplesheet(sheet) if r.split == "test"]).items():
            for task, src, dst, ratio in tasks:
                inp = Path(by_mod[src].path)
                if ratio != 1:
                    lr = self.work / f"{sid}_{src}_{ratio:g}x.nii.gz"
                    if not lr.exists():
                        degrade_file(inp, lr, Grid.from_image(load_volume(inp)[1]).thickness * ratio)
                    inp = lr
                self.cases.append((task, sid, src, inp, Path(by_mod[dst].path), dst))
        self.references = self._references()

    def _score(self, pred_path: Path, ref_path: Path) -> tuple[float, float]:
        from unicoal.evaluate.metrics import image_metrics
        from unicoal.io import load_volume

        ref = _central(load_volume(ref_path)[0], self.size)
        pred = _central(load_volume(pred_path, allow_empty=True)[0], self.size)
        head = ref > 0.05
        psnr = image_metrics(pred, ref, self.conv)["PSNR"]
        return psnr, image_metrics(pred, ref, self.conv, mask=head)["PSNR"]

    def _synth(self, method: str, case, out: Path, checkpoint: Path | None = None) -> Path:
        from unicoal.infer import synthesize

        task, sid, src, inp, ref, dst = case
        kw = {"checkpoint": checkpoint} if checkpoint is not None else {"method": method}
        synthesize([inp], out, to=dst, source_modalities=[src], like=ref, progress=False, **kw)
        return out

    def _references(self) -> dict:
        """{(task, method): [(psnr, psnr_head) per volume]} of the interpolations / source copy."""
        out: dict = {}
        for case in self.cases:
            task, sid, src, inp, ref, dst = case
            if src == dst:
                for m in SR_REFERENCES:
                    pred = self.work / f"{sid}_{task}_{m}.nii.gz"
                    if not pred.exists():
                        self._synth(m, case, pred)
                    out.setdefault((task, m), []).append(self._score(pred, ref))
            else:
                out.setdefault((task, "copy_source"), []).append(self._score(inp, ref))
        return out

    def model_scores(self, checkpoint: Path, name: str) -> dict:
        out: dict = {}
        for case in self.cases:
            task, sid = case[0], case[1]
            pred = self._synth("unicoal", case, self.work / f"{sid}_{task}_unicoal_{name}.nii.gz", checkpoint)
            out.setdefault((task, "unicoal"), []).append(self._score(pred, case[4]))
        return out


def _parse_sets(items) -> dict:
    import yaml

    out: dict = {}
    for item in items or []:
        key, _, value = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def curve(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from unicoal.train.config import deep_merge, load_config
    from unicoal.train.loop import train

    work = Path(args.work)
    sheet = prepare_cohort(work, args.subjects, args.seed)
    name = args.name or args.model
    over = {"data": MODELS[args.model],
            "optim": {"batch_size": args.batch_size, "total_steps": args.steps},
            "run": {"seed": args.seed, "log_every": 50, "checkpoint_every": args.eval_every, "tensorboard": False}}
    over = deep_merge(over, _parse_sets(args.set))
    cfg = load_config("tiny", over)
    held = HeldOut(sheet, work, TASKS[args.model], cfg.data.resolution)
    run = work / f"run_{name}"
    csv_path = work / f"curve_{name}.csv"
    state_path = work / f"curve_{name}.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"cpu_s": 0.0, "wall_s": 0.0}
    if not csv_path.exists():
        with open(csv_path, "w", newline="") as fh:
            csv.DictWriter(fh, FIELDS).writeheader()

    def record(step: int, scores: dict) -> None:
        rows = []
        for (task, method), vals in {**held.references, **scores}.items():
            v = np.array(vals)
            rows.append({"model": name, "step": step, "kimg": round(step * args.batch_size / 1000, 3),
                         "train_cpu_s": round(state["cpu_s"], 1), "train_wall_s": round(state["wall_s"], 1),
                         "cpu_s_per_step": round(state["cpu_s"] / step, 3) if step else "", "task": task,
                         "method": method, "psnr": round(float(v[:, 0].mean()), 3),
                         "psnr_head": round(float(v[:, 1].mean()), 3), "volumes": len(v)})
        with open(csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, FIELDS).writerows(rows)
        summary = {f"{r['task']}/{r['method']}": (r["psnr"], r["psnr_head"]) for r in rows}
        print(json.dumps({"step": step, "train_cpu_min": round(state["cpu_s"] / 60, 1), **summary}), flush=True)

    step = 0
    if (run / "checkpoints" / "last.pt").exists():
        from unicoal.train.checkpoint import load_checkpoint

        step = int(load_checkpoint(run / "checkpoints" / "last.pt", expect="train")["step"])
    else:
        record(0, {})
    while step < args.steps and state["cpu_s"] < args.max_cpu_minutes * 60:
        c0, w0 = time.process_time(), time.perf_counter()
        resume = (run / "checkpoints" / "last.pt").exists()
        summary = train(cfg, sheet, run, resume=resume, device="cpu", progress=False, stop_after=args.eval_every)
        state["cpu_s"] += time.process_time() - c0
        state["wall_s"] += time.perf_counter() - w0
        step = summary["step"]
        state_path.write_text(json.dumps(state))
        record(step, held.model_scores(run / "model.pt", name))
    return 0


def plot(args) -> int:
    """One panel per (work directory, task): every model's Uni-COAL curve of that cohort and task,
    and the references as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for work in (Path(w) for w in args.work):
        n_subjects = len({r.subject for r in _sheet_rows(work)})
        for path in sorted(work.glob("curve_*.csv")):
            with open(path) as fh:
                rows += [{**r, "cohort": f"{n_subjects} subjects"} for r in csv.DictReader(fh)]
    if not rows:
        raise SystemExit(f"no curve_*.csv in {', '.join(args.work)}")
    panels = sorted({(r["cohort"], r["task"]) for r in rows}, key=lambda p: (p[1] != "sr_T1_4x", int(p[0].split()[0]), p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.9), squeeze=False)
    ref_colours = {"linear": "C1", "cubic": "C2", "lanczos": "C3", "copy_source": "C4"}
    model_colours = iter(["C0", "C5", "C6", "C7", "C8", "C9"])
    colour_of: dict[str, str] = {}
    for ax, (cohort, task) in zip(axes[0], panels):
        sel = [r for r in rows if r["cohort"] == cohort and r["task"] == task]
        for method in sorted({r["method"] for r in sel if r["method"] != "unicoal"}):
            value = next(float(r[args.metric]) for r in sel if r["method"] == method)
            ax.axhline(value, color=ref_colours.get(method, "k"), ls="--", label=f"{method} {value:.2f}")
        for model in sorted({r["model"] for r in sel if r["method"] == "unicoal"}):
            pts = sorted((int(r["step"]), float(r[args.metric])) for r in sel if r["method"] == "unicoal" and r["model"] == model)
            colour = colour_of.setdefault(model, next(model_colours))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, marker="o", ms=3,
                    label=f"Uni-COAL {model} (last {pts[-1][1]:.2f})")
        ax.set_xlim(0, max(int(r["step"]) for r in sel) * 1.05 + 1)
        ax.set_title(f"{task}, phantom cohort of {cohort}", fontsize=10)
        ax.set_xlabel("training steps (batch 4)")
        ax.set_ylabel(f"PSNR {'inside the head' if args.metric == 'psnr_head' else 'whole volume'} (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    if args.csv_out:
        with open(args.csv_out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, ["cohort", *FIELDS])
            writer.writeheader()
            writer.writerows(rows)
    print(out)
    return 0


def _sheet_rows(work: Path):
    from unicoal.cohort.samplesheet import read_samplesheet

    return read_samplesheet(work / "preprocessed" / "samplesheet.csv")


def subjects(args) -> int:
    """Per held-out subject: PSNR (whole / head) of every method's last prediction, and the head's
    mean intensity in the reference and in each prediction (a global intensity error shows here)."""
    from unicoal.evaluate.metrics import get_convention, image_metrics
    from unicoal.io import load_volume

    conv = get_convention("published")
    work = Path(args.work)
    preds = sorted((work / "eval").glob("*_sr_T1_4x_*.nii.gz")) + sorted((work / "eval").glob("*_cms_T1_T2_*.nii.gz"))
    if not preds:
        raise SystemExit(f"no predictions in {work / 'eval'}: run `curve` first")
    print("| subject | task | method | PSNR whole | PSNR head | head mean: prediction / reference |")
    print("|---|---|---|---|---|---|")
    for pred in preds:
        sid, rest = pred.name.split("_", 1)
        task = "sr_T1_4x" if rest.startswith("sr_T1_4x") else "cms_T1_T2"
        method = rest[len(task) + 1:].replace(".nii.gz", "")
        target = "T1" if task == "sr_T1_4x" else "T2"
        ref_vol = load_volume(work / "preprocessed" / sid / f"{sid}_{target}.nii.gz")[0]
        size = min(ref_vol.shape[0], ref_vol.shape[1], 64)
        ref = _central(ref_vol, size)
        out = _central(load_volume(pred, allow_empty=True)[0], size)
        head = ref > 0.05
        whole, inside = image_metrics(out, ref, conv)["PSNR"], image_metrics(out, ref, conv, mask=head)["PSNR"]
        print(f"| {sid} | {task} | {method} | {whole:.2f} | {inside:.2f} | {out[head].mean():.3f} / {ref[head].mean():.3f} |")
    print()
    print("| subject | split | T1 head mean | T1 head p90 |")
    print("|---|---|---|---|")
    for row in _sheet_rows(work):
        if row.modality == "T1":
            v = load_volume(row.path)[0]
            h = v > 0.05
            print(f"| {row.subject} | {row.split} | {v[h].mean():.3f} | {np.percentile(v[h], 90):.3f} |")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curve", help="train one model and append its held-out PSNR curve to WORK/curve_NAME.csv")
    c.add_argument("--model", choices=sorted(MODELS), required=True)
    c.add_argument("--name", default=None, help="run / CSV name (default: the model), e.g. for ablations")
    c.add_argument("--work", default="/tmp/unicoal_bench_tiny")
    c.add_argument("--subjects", type=int, default=6)
    c.add_argument("--steps", type=int, default=12000,
                   help="lr horizon and last step (default 12000: about 40 CPU minutes; the 4x SR model passes "
                        "linear interpolation inside the head from step 4000, docs/training.md)")
    c.add_argument("--eval-every", type=int, default=1000)
    c.add_argument("--max-cpu-minutes", type=float, default=60.0, help="stop after this much training CPU time")
    c.add_argument("--batch-size", type=int, default=4)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--set", action="append", help="config override KEY=VALUE (e.g. loss.adversarial=false)")
    p = sub.add_parser("plot", help="plot every WORK/curve_*.csv into one PNG")
    p.add_argument("--work", action="append", required=True, help="work directory (repeat: one cohort each)")
    p.add_argument("--out", required=True)
    p.add_argument("--metric", choices=("psnr_head", "psnr"), default="psnr_head")
    p.add_argument("--csv-out", default=None, help="also write all curves merged into this CSV")
    q = sub.add_parser("subjects", help="per held-out subject: each method's last PSNR and the head's mean intensity")
    q.add_argument("--work", default="/tmp/unicoal_bench_tiny")
    args = ap.parse_args(argv)
    return {"curve": curve, "plot": plot, "subjects": subjects}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

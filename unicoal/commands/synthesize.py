"""``unicoal synthesize``: CMS / SR / CMSR of a volume with any registered method."""
from __future__ import annotations

HELP = "synthesize a target-modality, target-thickness volume from a source volume (CMS, SR or CMSR)"


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", default=None, help="model.pt (or checkpoints/last.pt) written by unicoal train; not needed for interpolation methods")
    p.add_argument("--method", default=None, help="method name (default: from the checkpoint); linear, cubic or lanczos need no checkpoint (see unicoal methods)")
    p.add_argument("--input", action="append", default=None, metavar="IN.nii.gz", help="source volume in [0, 1] (repeatable for multi-input methods)")
    p.add_argument("--from", dest="source", action="append", default=None, metavar="MODALITY", help="modality of each --input (T1, T2, PD, FLAIR, T1CE); decides CMS vs SR vs CMSR")
    p.add_argument("--to", default=None, metavar="MODALITY", help="target modality")
    p.add_argument("--thickness", type=float, default=None, metavar="MM", help="target slice thickness in mm (any real value > 0; e.g. 0.9375 for 5.33x from 5 mm)")
    p.add_argument("--like", default=None, metavar="REF.nii.gz", help="write exactly on this reference's grid (must share the input's slice planes)")
    p.add_argument("--out", default=None, metavar="OUT.nii.gz", help="output volume (a JSON sidecar is written beside it)")
    p.add_argument("--jobs", default=None, metavar="JOBS.csv",
                   help="batch mode: one volume per row of a CSV with columns input,from,to,like,out (optional: id, thickness); "
                        "the model of --checkpoint / --method is loaded once for all rows (replaces --input/--from/--to/--like/--out)")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="latent samples; K > 1 also writes OUT_mean and OUT_std (uncertainty)")
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent code(s)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=None, help="voxel slice axis of the input (default: from the affine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _read_jobs(path: str) -> list[dict]:
    """Rows of a --jobs CSV, checked before anything is synthesized (paths relative to the CSV's folder)."""
    import csv
    from pathlib import Path

    from unicoal.errors import InputError

    sheet = Path(path)
    if not sheet.is_file():
        raise InputError(sheet, "jobs file not found", "pass a CSV with columns input,from,to,like,out")
    with open(sheet, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"input", "from", "to", "out"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(sheet, f"missing column(s) {', '.join(sorted(missing))}", "give the columns input,from,to,like,out")
        rows = list(reader)
    if not rows:
        raise InputError(sheet, "no jobs in the file", "add one row per volume to synthesize")
    base = sheet.resolve().parent
    jobs, outs = [], set()
    for n, row in enumerate(rows, start=2):
        if not row.get("like") and not row.get("thickness"):
            raise InputError(sheet, f"line {n}: neither like nor thickness given", "give the reference grid (like) or the target thickness")
        job = {
            "input": str(base / row["input"]), "from": row["from"] or None, "to": row["to"],
            "like": str(base / row["like"]) if row.get("like") else None,
            "thickness": float(row["thickness"]) if row.get("thickness") else None,
            "out": str(base / row["out"]),
        }
        if job["out"] in outs:
            raise InputError(sheet, f"line {n}: output {row['out']} is written twice", "give every job its own out")
        outs.add(job["out"])
        jobs.append(job)
    return jobs


def run(args) -> int:
    import inspect
    import sys
    from pathlib import Path

    from unicoal import infer
    from unicoal.errors import InputError
    from unicoal.train.distributed import resolve_device

    device = resolve_device(args.device)
    if args.jobs is not None:
        given = [f"--{k}" for k in ("input", "to", "out", "like", "thickness") if getattr(args, k) is not None] + (["--from"] if args.source else [])
        if given:
            raise InputError(args.jobs, f"--jobs replaces {', '.join(given)}", "give those per row of the jobs CSV")
        jobs = _read_jobs(args.jobs)
    else:
        missing = [f"--{k}" for k in ("input", "to", "out") if not getattr(args, k)]
        if missing:
            raise InputError(None, f"missing {', '.join(missing)}", "pass --input IN.nii.gz --to MODALITY --out OUT.nii.gz, or --jobs JOBS.csv")
        jobs = [{"input": args.input, "from": args.source, "to": args.to, "like": args.like, "thickness": args.thickness, "out": args.out}]
    # load the model once for every job when infer.synthesize accepts a loaded predictor
    extra = {}
    if len(jobs) > 1 and "loaded" in inspect.signature(infer.synthesize).parameters:
        extra["loaded"] = infer.load_predictor(args.method, args.checkpoint, device)
    for n, job in enumerate(jobs, start=1):
        inputs = job["input"] if isinstance(job["input"], list) else [job["input"]]
        sources = job["from"] if isinstance(job["from"], list) or job["from"] is None else [job["from"]]
        out = job["out"]
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        meta = infer.synthesize(
            inputs, out, to=job["to"], thickness=job["thickness"], like=job["like"], source_modalities=sources,
            method=args.method, checkpoint=args.checkpoint, samples=args.samples, batch_size=args.batch_size,
            device=device, seed=args.seed, axis=args.axis, progress=not args.no_progress, **extra,
        )
        g = meta["target_grid"]
        where = f"[{n}/{len(jobs)}] " if args.jobs is not None else ""
        print(f"{where}{out}: {meta['task'].upper()} {meta['source_modality'] or '?'} -> {meta['target_modality']} "
              f"at {meta['target_thickness_mm']:.4g} mm ({meta['scale']:.3g}x, {g['shape'][g['slice_axis']]} slices) "
              f"with {meta['method_display']} in {meta['seconds']:.1f} s", file=sys.stderr)
    return 0

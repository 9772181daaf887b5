"""``unicoal synthesize``: CMS / SR / CMSR of a volume with any registered method."""
from __future__ import annotations

HELP = "synthesize a target-modality, target-thickness volume from a source volume (CMS, SR or CMSR)"


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", default=None, help="model.pt (or checkpoints/last.pt) written by unicoal train; not needed for interpolation methods")
    p.add_argument("--method", default=None, help="method name (default: from the checkpoint); linear, cubic or lanczos need no checkpoint (see unicoal methods)")
    p.add_argument("--input", action="append", required=True, metavar="IN.nii.gz", help="source volume in [0, 1] (repeatable for multi-input methods)")
    p.add_argument("--from", dest="source", action="append", default=None, metavar="MODALITY", help="modality of each --input (T1, T2, PD, FLAIR, T1CE); decides CMS vs SR vs CMSR")
    p.add_argument("--to", required=True, metavar="MODALITY", help="target modality")
    p.add_argument("--thickness", type=float, default=None, metavar="MM", help="target slice thickness in mm (any real value > 0; e.g. 0.9375 for 5.33x from 5 mm)")
    p.add_argument("--like", default=None, metavar="REF.nii.gz", help="write exactly on this reference's grid (must share the input's slice planes)")
    p.add_argument("--out", required=True, metavar="OUT.nii.gz", help="output volume (a JSON sidecar is written beside it)")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="latent samples; K > 1 also writes OUT_mean and OUT_std (uncertainty)")
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent code(s)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=None, help="voxel slice axis of the input (default: from the affine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import sys

    from unicoal.infer import synthesize
    from unicoal.train.distributed import resolve_device

    meta = synthesize(
        args.input, args.out, to=args.to, thickness=args.thickness, like=args.like, source_modalities=args.source,
        method=args.method, checkpoint=args.checkpoint, samples=args.samples, batch_size=args.batch_size,
        device=resolve_device(args.device), seed=args.seed, axis=args.axis, progress=not args.no_progress,
    )
    g = meta["target_grid"]
    print(f"{args.out}: {meta['task'].upper()} {meta['source_modality'] or '?'} -> {meta['target_modality']} "
          f"at {meta['target_thickness_mm']:.4g} mm ({meta['scale']:.3g}x, {g['shape'][g['slice_axis']]} slices) "
          f"with {meta['method_display']} in {meta['seconds']:.1f} s", file=sys.stderr)
    return 0

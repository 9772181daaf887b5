"""``unicoal skullstrip``: brain mask on the T1w (deepbet) or a reference (threshold), applied to all inputs."""
from __future__ import annotations

HELP = "brain mask (deepbet on the T1w, or an Otsu threshold fallback) applied to co-registered modalities"


def add_arguments(p) -> None:
    p.add_argument("--t1", default=None, help="co-registered T1w volume: the mask source (deepbet by default)")
    p.add_argument("--reference", default=None, help="mask source when no T1w exists (threshold method by default)")
    p.add_argument("--input", action="append", default=[], metavar="X", help="other volume on the same grid to mask (repeat)")
    p.add_argument("--out-dir", required=True, help="output folder: <stem>_brainmask.nii.gz, masked <stem>.nii.gz, JSON sidecars")
    p.add_argument("--method", default=None, help="deepbet (default with --t1) or threshold (default with --reference)")
    p.add_argument("--threshold", type=float, default=0.5, help="deepbet probability threshold (default 0.5)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for deepbet (default 1)")


def run(args) -> int:
    from unicoal.preprocess.skullstrip import SkullStripConfig, skullstrip

    method = args.method or ("deepbet" if args.t1 is not None else "threshold")
    config = SkullStripConfig(method=method, threshold=args.threshold, threads=args.threads)
    out = skullstrip(args.out_dir, t1=args.t1, reference=args.reference, inputs=args.input, config=config)
    print(out.mask)
    for path in out.volumes:
        print(path)
    return 0

"""``unicoal normalize``: per-volume robust scaling to [0, 1] (parameters kept for inversion)."""
from __future__ import annotations

HELP = "clip a volume at foreground percentiles and scale it to [0, 1]; parameters go to the JSON sidecar"


def add_arguments(p) -> None:
    p.add_argument("input", help="NIfTI volume (e.g. skull-stripped)")
    p.add_argument("output", help="normalised NIfTI to write (JSON sidecar beside it)")
    p.add_argument("--mask", default=None, help="brain mask on the same grid (default: foreground = voxels > 0)")
    p.add_argument("--percentiles", type=float, nargs=2, default=(0.5, 99.5), metavar=("LOW", "HIGH"),
                   help="foreground percentiles mapped to 0 and 1 (default 0.5 99.5)")


def run(args) -> int:
    from unicoal.preprocess.normalize import NormalizeConfig, normalize_volume

    out = normalize_volume(args.input, args.output, mask=args.mask, config=NormalizeConfig(tuple(args.percentiles)))
    print(out)
    return 0

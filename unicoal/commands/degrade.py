"""``unicoal degrade``: thick-slice simulation of an HR volume."""
from __future__ import annotations

HELP = "simulate thick slices (filter with a slice profile, then downsample) from an HR volume"


def add_arguments(p) -> None:
    p.add_argument("input", help="high-resolution NIfTI volume")
    p.add_argument("output", help="low-resolution NIfTI to write (a JSON sidecar is written beside it)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--thickness", type=float, help="target slice thickness in mm (any real value >= the input's)")
    size.add_argument("--factor", type=float, help="target thickness as a multiple of the input's slice thickness (e.g. 4 or 5.33)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=None, help="voxel slice axis (default: from the affine)")
    p.add_argument("--profile", default="rect", help="slice profile: rect (ideal slab, default), gaussian (FWHM = thickness) or select (no filter, authors' loader)")
    p.add_argument("--phase", type=float, default=None, help="HR slice index of the first LR centre (default: slab flush with the volume edge; 0 for select)")


def run(args) -> int:
    from unicoal.preprocess.degrade import degrade_file

    meta = degrade_file(args.input, args.output, args.thickness, factor=args.factor, axis=args.axis, profile=args.profile, phase=args.phase)
    lr = meta["lr_grid"]
    print(f"{args.output}: {lr['shape']} slices of {meta['thickness_mm']:g} mm (ratio {meta['ratio']:.4g}, profile {meta['profile']})")
    return 0

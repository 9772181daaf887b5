"""``unicoal geometry``: print a volume's grid (and optionally a derived grid) as JSON."""
from __future__ import annotations

HELP = "print the grid of a NIfTI volume as JSON (shape, affine, slice axis, thickness)"


def add_arguments(p) -> None:
    p.add_argument("input", help="NIfTI volume")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=None, help="slice axis (default: from the affine)")
    p.add_argument("--thick-slices", type=float, default=None, metavar="MM", help="also print the LR grid of a thick-slice simulation")
    p.add_argument("--target-thickness", type=float, default=None, metavar="MM", help="also print the target grid of that thickness covering the input")


def run(args) -> int:
    import json

    import nibabel as nib

    from unicoal.errors import InputError
    from unicoal.geometry import Grid, target_grid, thick_slice_grid

    try:
        img = nib.load(args.input)
    except Exception as err:
        raise InputError(args.input, f"not a readable NIfTI file ({err})", "check the path") from None
    grid = Grid.from_image(img, args.axis)
    out = {"grid": grid.to_json()}
    if args.thick_slices:
        out["thick_slice_grid"] = thick_slice_grid(grid, args.thick_slices).to_json()
    if args.target_thickness:
        out["target_grid"] = target_grid(grid, args.target_thickness).to_json()
    print(json.dumps(out, indent=2))
    return 0

"""``unicoal figures``: qualitative panels (source, methods, ground truth, error maps; scale sweeps)."""
from __future__ import annotations

HELP = "qualitative figures (axial/sagittal panels, error maps, arbitrary-scale sweeps) as PNG"


def add_arguments(p) -> None:
    p.add_argument("--cases", required=True,
                   help="CSV with columns figure,kind,label,path (kind: source|method|target|sweep|label); one PNG per figure")
    p.add_argument("--centre", default="foreground", choices=("foreground", "label"),
                   help="where to cut: the ground truth's foreground centroid (default) or the centroid of the figure's "
                        "'label' row (a lesion label map), so lesions are in the cut")
    p.add_argument("--out-dir", required=True, help="folder for <figure>.png and figures.json")
    p.add_argument("--error-max", type=float, default=0.3, help="upper end of the error-map colour scale (normalised units, default 0.3)")
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution (default 100)")


def run(args) -> int:
    import sys

    from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

    from unicoal.errors import InputError
    from unicoal.io import write_json
    from unicoal.report.figures import read_cases, render_figure

    if not args.error_max > 0:
        raise InputError(None, f"--error-max must be > 0, got {args.error_max}", "e.g. --error-max 0.3")
    if not 20 <= args.dpi <= 600:
        raise InputError(None, f"--dpi must be in 20..600, got {args.dpi}", "e.g. --dpi 100")
    from pathlib import Path

    figures = read_cases(args.cases)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos = [render_figure(name, cases, out / f"{name}.png", args.error_max, args.dpi, centre=args.centre)
             for name, cases in tqdm(figures.items(), desc="figures", file=sys.stderr, disable=len(figures) < 2)]
    for info in infos:
        info["path"] = Path(info["path"]).name
    write_json(out / "figures.json", {"figures": infos})
    print(f"{args.out_dir}: {len(infos)} figure(s) written", file=sys.stderr)
    return 0

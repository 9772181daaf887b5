"""``unicoal register``: rigid registration of a subject's modalities to a reference (antspyx)."""
from __future__ import annotations

HELP = "reorient the reference to RAS and rigidly register every other modality onto its grid (ANTs)"


def add_arguments(p) -> None:
    p.add_argument("--reference", required=True, help="reference modality (e.g. T1w); defines the output grid")
    p.add_argument("--moving", action="append", default=[], metavar="MOV", help="modality to register (repeat for several)")
    p.add_argument("--label", default=None, help="label map on the reference's native grid (reoriented with it)")
    p.add_argument("--out-dir", required=True, help="output folder: <stem>.nii.gz, <stem>_to_ref.mat, <stem>.json")
    p.add_argument("--type", default="Rigid", help="ANTs transform: Rigid (default) or QuickRigid")
    p.add_argument("--threads", type=int, default=1, help="ITK threads (default 1: bit-reproducible)")
    p.add_argument("--seed", type=int, default=1, help="ANTs random seed for metric sampling, >= 1 (default 1; ANTs reads 0 as unseeded)")


def run(args) -> int:
    from unicoal.preprocess.register import RegistrationConfig, register

    config = RegistrationConfig(transform=args.type, threads=args.threads, seed=args.seed)
    out = register(args.reference, args.moving, args.out_dir, label=args.label, config=config)
    for path in out.volumes:
        print(path)
    return 0

"""``unicoal cohort``: make or check a samplesheet (phantom, IXI, BraTS, manifest)."""
from __future__ import annotations

import argparse

from unicoal.commands._args import positive_int

HELP = "make a samplesheet: embedded phantom cohort, IXI, BraTS 2019, a manifest CSV; or check one"


def _fractions(p, default):
    p.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=list(default),
                   help=f"split proportions by subject when no split is given (default: {' '.join(f'{x:g}' for x in default)})")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (and of the phantoms) (default: 0)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE")
    sub.required = True

    p = sub.add_parser("phantom", help="simulate the embedded multi-contrast phantom cohort (offline, deterministic)",
                       description="Simulate T1/T2/PD/FLAIR head phantoms with lesions from the MNI152 tissue maps shipped with nilearn.")
    p.add_argument("--out", required=True, help="output folder (samplesheet.csv and one folder per subject)")
    p.add_argument("--subjects", type=positive_int, default=4, help="number of subjects (default: 4)")
    p.add_argument("--preset", choices=("tiny", "standard"), default="tiny",
                   help="tiny: ~3.5 mm voxels, seconds per subject; standard: 1 mm-ish, full field of view (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(_cohort=_run_phantom)

    p = sub.add_parser("ixi", help="samplesheet of a local IXI folder (T1, T2, PD matched by subject id)")
    p.add_argument("--root", required=True, help="folder holding the IXI files (searched recursively)")
    p.add_argument("--out", required=True, help="samplesheet CSV to write")
    p.add_argument("--site", default="Guys", help="hospital: Guys (paper, default), HH, IOP or all")
    p.add_argument("--download", action="store_true", help="first download the official IXI-T1/T2/PD tarballs into --root (~12 GB, md5-checked)")
    _fractions(p, (285, 12, 12))
    p.set_defaults(_cohort=_run_ixi)

    p = sub.add_parser("brats", help="samplesheet of BraTS 2019 case folders (_t1, _t1ce, _t2, _flair; label = _seg)")
    p.add_argument("--root", required=True, help="folder above the <case>/<case>_t1.nii.gz folders (searched recursively)")
    p.add_argument("--out", required=True, help="samplesheet CSV to write")
    p.add_argument("--modalities", nargs="+", default=["T1", "T1CE", "T2", "FLAIR"], help="modalities to keep (default: all four)")
    p.add_argument("--require-label", action="store_true", help="skip cases without a _seg file")
    _fractions(p, (235, 50, 50))
    p.set_defaults(_cohort=_run_brats)

    p = sub.add_parser("manifest", help="samplesheet of a generic manifest CSV (ADNI, in-house), columns named by flags")
    p.add_argument("--manifest", required=True, help="manifest CSV")
    p.add_argument("--out", required=True, help="samplesheet CSV to write")
    p.add_argument("--subject-col", required=True, help="column holding the subject id")
    p.add_argument("--modality-col", help="long format: column holding the modality / series description")
    p.add_argument("--path-col", help="long format: column holding the image path")
    p.add_argument("--column", action="append", default=[], metavar="MOD=COL", help="wide format: the column holding modality MOD's path (repeat)")
    p.add_argument("--label-col", help="column holding a lesion label map path (optional)")
    p.add_argument("--split-col", help="column holding train/val/test (optional)")
    p.add_argument("--modality-map", action="append", default=[], metavar="RAW=MOD", help="map a raw modality value to a modality (repeat)")
    p.add_argument("--skip-unknown", action="store_true", help="drop rows whose modality maps to nothing instead of failing")
    p.add_argument("--base", help="folder that relative paths resolve against (default: the manifest's folder)")
    _fractions(p, (70, 10, 20))
    p.set_defaults(_cohort=_run_manifest)

    p = sub.add_parser("check", help="validate a samplesheet; with --out write it back with absolute paths and splits")
    p.add_argument("samplesheet", help="samplesheet CSV (subject,modality,path[,label][,split])")
    p.add_argument("--out", help="write the checked sheet here (absolute paths, splits assigned where absent)")
    _fractions(p, (70, 10, 20))
    p.set_defaults(_cohort=_run_check)

    for sp in sub.choices.values():  # `unicoal cohort SOURCE ... --debug` works like elsewhere
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")


def _run_phantom(args) -> str:
    from unicoal.cohort.phantom import generate_cohort

    sheet = generate_cohort(args.out, subjects=args.subjects, preset=args.preset, seed=args.seed)
    return str(sheet)


def _run_ixi(args) -> str:
    from unicoal.cohort.ixi import ixi_samplesheet

    return str(ixi_samplesheet(args.root, args.out, site=args.site, fractions=args.fractions, seed=args.seed, download=args.download))


def _run_brats(args) -> str:
    from unicoal.cohort.brats import brats_samplesheet
    from unicoal.cohort.samplesheet import canonical_modality
    from unicoal.errors import InputError

    mods = []
    for m in args.modalities:
        c = canonical_modality(m)
        if c is None:
            raise InputError(None, f"unknown modality {m!r} in --modalities", "use T1, T1CE, T2 and/or FLAIR")
        mods.append(c)
    return str(brats_samplesheet(args.root, args.out, modalities=mods, require_label=args.require_label, fractions=args.fractions, seed=args.seed))


def _run_manifest(args) -> str:
    from unicoal.cohort.manifest import ManifestSpec, manifest_samplesheet, parse_mapping

    spec = ManifestSpec(
        subject_col=args.subject_col, modality_col=args.modality_col, path_col=args.path_col,
        columns=parse_mapping(args.column, "--column"), label_col=args.label_col, split_col=args.split_col,
        modality_map=parse_mapping(args.modality_map, "--modality-map"), skip_unknown=args.skip_unknown,
    )
    return str(manifest_samplesheet(args.manifest, args.out, spec, base=args.base, fractions=args.fractions, seed=args.seed))


def _run_check(args) -> str | None:
    from unicoal.cohort.samplesheet import read_samplesheet, with_splits, write_samplesheet

    rows = read_samplesheet(args.samplesheet)
    if args.out:
        return str(write_samplesheet(args.out, with_splits(rows, args.fractions, args.seed), relative=False))
    return str(args.samplesheet)


def run(args) -> int:
    from unicoal.cohort.samplesheet import read_samplesheet

    sheet = args._cohort(args)
    rows = read_samplesheet(sheet)
    subjects = sorted({r.subject for r in rows})
    splits = {s: sum(1 for subj in subjects if next(r.split for r in rows if r.subject == subj) == s) for s in ("train", "val", "test")}
    mods = sorted({r.modality for r in rows})
    split_txt = ", ".join(f"{k} {v}" for k, v in splits.items()) if any(r.split for r in rows) else "no splits"
    print(f"{sheet}: {len(subjects)} subjects, {len(rows)} images ({', '.join(mods)}); {split_txt}")
    return 0

"""``unicoal preprocess``: one subject's register + skull strip + normalise in one job.

The fused form of ``unicoal register``, ``unicoal skullstrip`` and ``unicoal normalize`` (one job
per subject instead of three on a cluster). It calls the same functions with the same arguments
as the pipeline's REGISTER, SKULLSTRIP and NORMALIZE modules and writes the same files under the
same names and subfolders, so either route gives identical volumes.
"""
from __future__ import annotations

from unicoal.commands._args import positive_int

HELP = "one subject from a samplesheet: register, skull strip and normalise in one job (the three steps fused)"

EPILOG = """\
output layout (OUT = --out-dir; MOD = each modality of the subject, e.g. T1 T2 PD FLAIR):
  OUT/src/MOD.nii.gz                 links to the sheet's volumes, named after their modality
  OUT/src/ID_label.nii.gz            link to the subject's label map (first row that has one)
  OUT/reg/MOD.nii.gz, MOD.json       registered to the reference grid (RAS)     [--register]
  OUT/reg/MOD_to_ref.mat             ANTs transform of every non-reference MOD  [--register]
  OUT/reg/ID_label.nii.gz, .json     the label map, reoriented with the reference [--register, label]
  OUT/strip/MOD.nii.gz, MOD.json     masked volumes                             [--skullstrip deepbet|threshold]
  OUT/strip/SRC_brainmask.nii.gz     brain mask (SRC = T1, else the first modality) and its .json
  OUT/strip/ID_label.nii.gz          copy of the label map                      [skull strip, label]
  OUT/norm/ID_MOD.nii.gz, .json      normalised volumes and parameters (always; the step's result)
  OUT/ID_brainmask.nii.gz            copy of the brain mask, named after the subject [skull strip]
  OUT/ID_label.nii.gz                copy of the label map, named after the subject  [label]
reg/, strip/ and norm/ hold exactly what the REGISTER, SKULLSTRIP and NORMALIZE modules write.
The reference is --reference if the subject has it, else its first modality in alphabetical
order; the skull-strip mask source is T1 if present, else the first modality. If any step fails,
nothing of this run is left in OUT.
"""


def add_arguments(p) -> None:
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--samplesheet", required=True, help="samplesheet CSV (subject,modality,path[,label][,split])")
    p.add_argument("--subject", required=True, metavar="ID", help="subject id of the sheet to preprocess")
    p.add_argument("--out-dir", required=True, help="output folder (layout below)")
    p.add_argument("--reference", default="T1", metavar="MOD", help="reference modality of the registration (default T1)")
    p.add_argument("--register", action=argparse.BooleanOptionalAction, default=True,
                   help="rigid ANTs registration to the reference (default on; --no-register: volumes already share a grid)")
    p.add_argument("--skullstrip", default="deepbet", choices=("deepbet", "threshold", "none"),
                   help="brain mask method, or none (e.g. BraTS is already skull-stripped; default deepbet)")
    p.add_argument("--type", default="Rigid", help="ANTs transform: Rigid (default) or QuickRigid")
    p.add_argument("--seed", type=int, default=1, help="ANTs random seed, >= 1 (default 1)")
    p.add_argument("--threshold", type=float, default=0.5, help="deepbet probability threshold (default 0.5)")
    p.add_argument("--percentiles", type=float, nargs=2, default=(0.5, 99.5), metavar=("LOW", "HIGH"),
                   help="foreground percentiles mapped to 0 and 1 (default 0.5 99.5)")
    p.add_argument("--threads", type=positive_int, default=1, help="ITK / deepbet threads (default 1: bit-reproducible)")


def run(args) -> int:
    from pathlib import Path

    out = preprocess_subject(
        args.samplesheet, args.subject, Path(args.out_dir), reference=args.reference, register=args.register,
        skullstrip=args.skullstrip, transform=args.type, seed=args.seed, threshold=args.threshold,
        percentiles=tuple(args.percentiles), threads=args.threads,
    )
    for path in out:
        print(path)
    return 0


def preprocess_subject(samplesheet, subject: str, out_dir, *, reference: str = "T1", register: bool = True,
                       skullstrip: str = "deepbet", transform: str = "Rigid", seed: int = 1, threshold: float = 0.5,
                       percentiles: tuple[float, float] = (0.5, 99.5), threads: int = 1) -> list:
    """Register, skull strip and normalise ``subject`` of ``samplesheet`` into ``out_dir``.

    Returns the normalised volumes (``norm/<subject>_<MOD>.nii.gz``). The layout is documented in
    ``unicoal preprocess --help``. Configurations are checked before anything is written; if a
    step fails, every folder and file this call created is removed again.

    Raises:
        InputError: unknown subject, bad samplesheet, bad parameters, or any step's input error.
    """
    import os
    import shutil
    from pathlib import Path

    from unicoal.cohort.samplesheet import check_files_exist, read_samplesheet, subjects_of
    from unicoal.errors import InputError
    from unicoal.io import check_writable
    from unicoal.preprocess.normalize import NormalizeConfig, normalize_volume
    from unicoal.preprocess.register import RegistrationConfig
    from unicoal.preprocess.register import register as register_volumes
    from unicoal.preprocess.skullstrip import SkullStripConfig
    from unicoal.preprocess.skullstrip import skullstrip as skullstrip_volumes

    # only this subject's files must exist (a cluster job stages one subject, not the cohort)
    rows = subjects_of(read_samplesheet(samplesheet, check_files=False)).get(subject)
    if rows is None:
        raise InputError(samplesheet, f"subject {subject!r} is not in the samplesheet", "pass a subject id of the sheet's subject column")
    check_files_exist(list(rows.values()), source=samplesheet)
    reg_config = RegistrationConfig(transform=transform, threads=threads, seed=seed) if register else None
    strip_config = SkullStripConfig(method=skullstrip, threshold=threshold, threads=threads) if skullstrip != "none" else None
    norm_config = NormalizeConfig(tuple(percentiles))

    modalities = sorted(rows)  # the pipeline groups a subject's rows sorted by modality
    ref = reference if reference in modalities else modalities[0]
    label_row = next((rows[m] for m in modalities if rows[m].label is not None), None)
    out = Path(out_dir)
    check_writable(out / ".probe")
    names = ["src", "reg", "strip", "norm", f"{subject}_brainmask.nii.gz", f"{subject}_label.nii.gz"]
    existing = {n for n in names if (out / n).exists() or (out / n).is_symlink()}
    src = out / "src"
    try:
        # name every volume after its modality, as the pipeline stages them: outputs keep these names
        src.mkdir(exist_ok=True)
        vols = {m: _link(rows[m].path, src / f"{m}.nii.gz") for m in modalities}
        label = None if label_row is None else _link(label_row.label, src / f"{subject}_label.nii.gz")
        mask = None
        if reg_config is not None:
            reg = register_volumes(vols[ref], [vols[m] for m in modalities if m != ref], out / "reg", label=label, config=reg_config)
            vols = {m: out / "reg" / f"{m}.nii.gz" for m in modalities}
            label = reg.label
        if strip_config is not None:
            source = "T1" if "T1" in modalities else modalities[0]
            role = {"t1": vols[source]} if source == "T1" else {"reference": vols[source]}
            stripped = skullstrip_volumes(out / "strip", inputs=[vols[m] for m in modalities if m != source], config=strip_config, **role)
            vols = {m: out / "strip" / f"{m}.nii.gz" for m in modalities}
            mask = stripped.mask
            if label is not None:
                label = Path(shutil.copyfile(label, out / "strip" / f"{subject}_label.nii.gz"))
        (out / "norm").mkdir(exist_ok=True)
        normalised = [normalize_volume(vols[m], out / "norm" / f"{subject}_{m}.nii.gz", mask=mask, config=norm_config) for m in modalities]
        if mask is not None:
            shutil.copyfile(mask, out / f"{subject}_brainmask.nii.gz")
        if label is not None:
            shutil.copyfile(os.path.realpath(label), out / f"{subject}_label.nii.gz")
    except BaseException as err:
        for n in names:
            path = out / n
            if n in existing:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if isinstance(err, InputError) and err.path is not None:
            # name the user's file, not the link this command made to it
            given = {str(src / f"{m}.nii.gz"): rows[m].path for m in modalities}
            if label_row is not None:
                given[str(src / f"{subject}_label.nii.gz")] = label_row.label
            if err.path in given:
                problem = err.problem.replace(err.path, str(given[err.path]))
                raise InputError(given[err.path], problem, err.fix) from err
        raise
    return normalised


def _link(target, link):
    """Symlink ``link`` -> absolute ``target`` (replacing an old link); returns ``link``."""
    import os

    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(os.path.realpath(target), link)
    return link

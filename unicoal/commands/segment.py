"""``unicoal segment``: nnU-Net v2 Dice of synthesized volumes (paper Sec. IV, DSC of Tables I-III, VI).

Sub-steps, each file-in/file-out (see docs/segmentation.md)::

    unicoal segment export  --samplesheet SHEET --modality T1 --split train --out-dir ROOT --dataset-id 501 --name Phantom
    unicoal segment train   --nnunet-root ROOT --dataset-id 501 [--epochs E --iterations-per-epoch I --fold all --device cpu]
    unicoal segment predict --nnunet-root ROOT --dataset-id 501 --input SYN.nii.gz [--mask BRAIN.nii.gz] --out-dir DIR
    unicoal segment real    --nnunet-root ROOT --dataset-id 501 --samplesheet SHEET --out-dir DIR --out REAL.csv
    unicoal segment dice    --pred P.nii.gz --truth L.nii.gz --out ROWS.csv --method Uni-COAL --subject S ...
"""
from __future__ import annotations

import argparse

from unicoal.commands._args import positive_int

HELP = "nnU-Net v2 Dice: export a training set, train, predict synthesized volumes, score Dice (rows CSV)"


def _fold(text: str):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 0-4 or 'all', got {text!r}") from None
    if not 0 <= value <= 4:
        raise argparse.ArgumentTypeError(f"expected 0-4 or 'all', got {value}")
    return value


def _common_model(p) -> None:
    p.add_argument("--nnunet-root", required=True, help="folder holding nnUNet_raw, nnUNet_preprocessed, nnUNet_results")
    p.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id (default: 501)")
    p.add_argument("--configuration", default="3d_fullres", choices=("2d", "3d_fullres", "3d_lowres"),
                   help="nnU-Net configuration (default: 3d_fullres)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default: cuda if available)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    sub.required = True

    p = sub.add_parser("export", help="write the training split's real images + labels as an nnU-Net raw dataset",
                       description="Export real target-modality images and lesion labels of a samplesheet split as "
                                   "NNUNET_ROOT/nnUNet_raw/DatasetNNN_Name (imagesTr, labelsTr, dataset.json).")
    p.add_argument("--samplesheet", required=True, help="samplesheet CSV (subject,modality,path,label,split)")
    p.add_argument("--modality", default="T1", help="target modality whose real images train nnU-Net (default: T1)")
    p.add_argument("--split", nargs="+", default=["train"], choices=("train", "val", "test"),
                   help="split(s) to export (default: train; never export test)")
    p.add_argument("--out-dir", required=True, help="nnU-Net root folder (NNUNET_ROOT)")
    p.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id 1..999 (default: 501)")
    p.add_argument("--name", default="Unicoal", help="dataset name: DatasetNNN_<name> (default: Unicoal)")
    p.add_argument("--regions", default="lesion", choices=("lesion", "brats"),
                   help="lesion: any label > 0 is lesion (default); brats: labels 1, 2, 4 (necrosis, oedema, enhancing)")
    p.set_defaults(_step=_run_export)

    p = sub.add_parser("train", help="plan, preprocess and train nnU-Net on an exported dataset",
                       description="nnU-Net v2 fingerprint + plan + preprocess, then train nnUNetTrainerUnicoal "
                                   "(nnU-Net's trainer with a settable schedule). Resumable: run it again on the same "
                                   "--nnunet-root after a kill and it continues from nnU-Net's checkpoint_latest.pth; "
                                   "a finished model is kept, not retrained.")
    _common_model(p)
    p.add_argument("--fold", type=_fold, default="all", help="0-4 (nnU-Net's 5-fold split) or all (default: all training cases)")
    p.add_argument("--epochs", type=positive_int, default=1000, help="epochs (default: 1000, nnU-Net's)")
    p.add_argument("--iterations-per-epoch", type=positive_int, default=250, help="training iterations per epoch (default: 250)")
    p.add_argument("--val-iterations", type=positive_int, default=50, help="validation iterations per epoch (default: 50)")
    p.add_argument("--processes", type=positive_int, default=1,
                   help="nnU-Net worker processes for preprocessing and augmentation (default: 1 = everything in-process)")
    p.add_argument("--base-features", type=positive_int, default=None,
                   help="override the planned feature counts with BASE*2^stage (CPU smoke runs; default: nnU-Net's plan)")
    p.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    p.add_argument("--resume", action="store_true",
                   help="accepted for older scripts: resuming is automatic (an unfinished training in --nnunet-root "
                        "continues from nnU-Net's checkpoint_latest.pth; a finished one is kept)")
    p.add_argument("--seed", type=int, default=0, help="torch/numpy seed (nnU-Net training is not bit-reproducible)")
    p.set_defaults(_step=_run_train)

    p = sub.add_parser("predict", help="segment volumes (synthesized or real) with the trained model",
                       description="Zero the background with the brain mask, run nnU-Net, write uint8 label maps on the input grids.")
    _common_model(p)
    p.add_argument("--input", action="append", required=True, metavar="NIFTI", help="volume to segment (repeat)")
    p.add_argument("--mask", action="append", default=[], metavar="NIFTI",
                   help="brain mask: one for all inputs or one per input (repeat); outside it the volume is set to 0")
    p.add_argument("--name", action="append", default=None, metavar="NAME",
                   help="output name per input (repeat; writes <NAME>_seg.nii.gz; default: the input's file stem)")
    p.add_argument("--out-dir", required=True, help="folder for <input stem>_seg.nii.gz (+ .json sidecar)")
    p.add_argument("--no-mirroring", action="store_true", help="disable nnU-Net's mirroring test-time augmentation (8x faster in 3D)")
    p.add_argument("--tile-step-size", type=float, default=0.5, help="sliding-window step as a fraction of the patch (default: 0.5)")
    p.set_defaults(_step=_run_predict)

    p = sub.add_parser("real", help="upper-bound rows: segment the real test images of a samplesheet and score Dice (method Real)",
                       description="Predict the real (preprocessed, skull-stripped) target-modality images of the test split "
                                   "and write their Dice rows with method 'Real' (the upper bound of the DSC columns).")
    _common_model(p)
    p.add_argument("--samplesheet", required=True, help="samplesheet CSV (subject,modality,path,label,split)")
    p.add_argument("--modality", default="T1", help="modality the model was trained on (default: T1)")
    p.add_argument("--split", nargs="+", default=["test"], choices=("train", "val", "test"), help="split(s) to score (default: test)")
    p.add_argument("--out-dir", required=True, help="folder for the label maps <subject>_<modality>_seg.nii.gz")
    p.add_argument("--out", required=True, help="rows CSV to write")
    p.add_argument("--no-mirroring", action="store_true", help="disable nnU-Net's mirroring test-time augmentation")
    p.add_argument("--summary", default="DSC_WT", choices=("DSC_WT", "DSC_TC", "DSC_ET", "mean", "none"),
                   help="BraTS: region also written as plain DSC (default: DSC_WT)")
    p.add_argument("--empty-both", default="one", choices=("one", "nan"), help="Dice of a region empty in both maps (default: one)")
    p.add_argument("--dataset", default="", help="dataset name written in the rows")
    p.add_argument("--table", default="", help="paper table the rows feed (empty: any)")
    p.set_defaults(_step=_run_real)

    p = sub.add_parser("dice", help="Dice per region of predicted vs ground-truth label maps (rows CSV)",
                       description="Dice per region into the shared long-format rows CSV. Lesion: metric DSC (label > 0). "
                                   "BraTS: DSC_WT {1,2,4}, DSC_TC {1,4}, DSC_ET {4}, and DSC = --summary region. "
                                   "Empty in both: 1.0 (convention 'brats-empty-1', the BraTS challenge rule) or NaN "
                                   "(--empty-both nan: convention 'nnunet-empty-nan', as nnU-Net's evaluation); empty in one: 0.")
    p.add_argument("--pred", action="append", required=True, metavar="NIFTI", help="predicted label map (repeat)")
    p.add_argument("--truth", action="append", required=True, metavar="NIFTI", help="ground-truth label map, same grid (repeat, paired with --pred)")
    p.add_argument("--subject", action="append", default=[], help="subject id per pair (repeat; default: the truth file's stem)")
    p.add_argument("--regions", default="lesion", choices=("lesion", "brats"), help="region set (default: lesion)")
    p.add_argument("--summary", default="DSC_WT", choices=("DSC_WT", "DSC_TC", "DSC_ET", "mean", "none"),
                   help="BraTS: region also written as plain DSC, the tables' single DSC column (default: DSC_WT)")
    p.add_argument("--empty-both", default="one", choices=("one", "nan"), help="Dice of a region empty in both maps (default: one)")
    p.add_argument("--out", required=True, help="rows CSV to write (a JSON sidecar with voxel counts goes next to it)")
    p.add_argument("--method", required=True, help="method name (use Real for the real test images: the upper bound)")
    p.add_argument("--task", default="", choices=("", "CMS", "SR", "CMSR"), help="task of the synthesized volumes")
    p.add_argument("--dataset", default="", help="dataset name (BraTS, CSDH, ...)")
    p.add_argument("--source", default="", help="source modality")
    p.add_argument("--target", default="", help="target modality")
    p.add_argument("--scale", type=float, default=1.0, help="thickness ratio h0/h1 (default: 1)")
    p.add_argument("--table", default="", help="paper table the rows feed (table1 .. table6; empty: any)")
    p.set_defaults(_step=_run_dice)

    for sp in sub.choices.values():
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")


def _run_export(args) -> None:
    import sys

    from unicoal.evaluate.nnunet.export import export_dataset

    folder = export_dataset(args.samplesheet, args.out_dir, modality=args.modality, splits=args.split,
                            dataset_id=args.dataset_id, name=args.name, regions=args.regions)
    print(f"unicoal segment export: wrote {folder}", file=sys.stderr)
    print(folder)


def _run_train(args) -> None:
    import sys

    from unicoal.evaluate.nnunet.training import TrainConfig, train

    cfg = TrainConfig(configuration=args.configuration, fold=args.fold, epochs=args.epochs,
                      iterations_per_epoch=args.iterations_per_epoch, val_iterations=args.val_iterations,
                      device=args.device, processes=args.processes, threads=args.threads,
                      base_features=args.base_features, verify=not args.no_verify, seed=args.seed)
    res = train(args.nnunet_root, args.dataset_id, cfg)
    times = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
    print(f"unicoal segment train: model in {res.model_dir} (fold {res.fold}); {times}", file=sys.stderr)
    print(res.model_dir)


def _run_predict(args) -> None:
    import sys

    from unicoal.evaluate.nnunet.prediction import PredictConfig, predict

    cfg = PredictConfig(configuration=args.configuration, device=args.device, threads=args.threads,
                        use_mirroring=not args.no_mirroring, tile_step_size=args.tile_step_size)
    outs = predict(args.nnunet_root, args.dataset_id, args.input, args.out_dir, masks=args.mask, config=cfg, names=args.name)
    print(f"unicoal segment predict: wrote {len(outs)} label map(s) to {args.out_dir}", file=sys.stderr)
    for o in outs:
        print(o)


def _details(res) -> dict:
    from unicoal.evaluate.rows import format_value

    return {k: {"value": format_value(r.value), "intersection": r.intersection, "pred_voxels": r.pred_voxels,
                "truth_voxels": r.truth_voxels, "empty_both": r.empty_both} for k, r in res.items()}


def _run_real(args) -> None:
    import sys

    from unicoal.evaluate.dice import dice_convention
    from unicoal.evaluate.nnunet.prediction import PredictConfig, score_real
    from unicoal.evaluate.rows import format_value, write_rows
    from unicoal.io import check_writable, sidecar_path, write_json

    check_writable(args.out)
    cfg = PredictConfig(configuration=args.configuration, device=args.device, threads=args.threads,
                        use_mirroring=not args.no_mirroring)
    rows, details = score_real(args.nnunet_root, args.dataset_id, args.samplesheet, args.out_dir, modality=args.modality,
                               splits=args.split, config=cfg, empty=args.empty_both, dataset=args.dataset,
                               table=args.table, summary=None if args.summary == "none" else args.summary)
    write_rows(args.out, rows)
    write_json(sidecar_path(args.out), {"convention": dice_convention(args.empty_both), "method": "Real",
                                        "cases": [{"subject": s, "regions": _details(r)} for s, r in details.items()]})
    for r in rows:
        print(f"{r.subject}\t{r.metric}\t{format_value(r.value)}", file=sys.stderr)


def _run_dice(args) -> None:
    import sys

    from unicoal.errors import InputError
    from unicoal.evaluate.dice import dice_convention, dice_files, dice_rows
    from unicoal.evaluate.rows import format_value, write_rows
    from unicoal.io import check_writable, nifti_stem, sidecar_path, write_json

    if len(args.pred) != len(args.truth):
        raise InputError(None, f"{len(args.pred)} --pred but {len(args.truth)} --truth", "pass one --truth per --pred, in the same order")
    if args.subject and len(args.subject) != len(args.pred):
        raise InputError(None, f"{len(args.subject)} --subject for {len(args.pred)} pairs", "give one --subject per pair or none")
    if not args.scale > 0:
        raise InputError(None, f"--scale must be > 0, got {args.scale}", "pass the thickness ratio h0/h1")
    check_writable(args.out)
    subjects = args.subject or [nifti_stem(t) for t in args.truth]
    rows, details = [], []
    for pred, truth, subject in zip(args.pred, args.truth, subjects):
        res = dice_files(pred, truth, args.regions, empty=args.empty_both)
        rows += dice_rows(res, method=args.method, subject=subject, dataset=args.dataset, task=args.task,
                          source=args.source, target=args.target, scale=args.scale, table=args.table,
                          empty=args.empty_both, summary=None if args.summary == "none" else args.summary)
        details.append({"subject": subject, "pred": pred, "truth": truth, "regions": _details(res)})
    write_rows(args.out, rows)
    write_json(sidecar_path(args.out), {
        "convention": dice_convention(args.empty_both),
        "definition": "Dice = 2|P&T|/(|P|+|T|); empty in both -> " + ("1" if args.empty_both == "one" else "NaN") + "; empty in one -> 0",
        "regions": args.regions, "method": args.method, "cases": details})
    for r in rows:
        print(f"{r.subject}\t{r.metric}\t{format_value(r.value)}", file=sys.stderr)


def run(args) -> int:
    args._step(args)
    return 0

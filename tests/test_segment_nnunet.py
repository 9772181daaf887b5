"""``unicoal segment`` with nnU-Net v2: environment, export accepted by nnU-Net, end-to-end (slow)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from unicoal.cli import main
from unicoal.errors import InputError
from unicoal.evaluate.nnunet.environment import NnunetRoot, inline_pools, nnunet_environment
from unicoal.evaluate.nnunet.export import export_dataset

_AFFINE = np.array([[1.2, 0, 0, -20.0], [0, 1.0, 0, -16.0], [0, 0, 1.0, -16.0], [0, 0, 0, 1]])


def _sphere_case(rng, n=32):
    """A bright-lesion ellipsoid 'brain' with zero background (skull-stripped style)."""
    g = np.stack(np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing="ij"), -1)
    brain = (((g - n / 2) / np.array([13.0, 14.0, 12.0])) ** 2).sum(-1) <= 1
    c, r = rng.uniform(12, 20, 3), rng.uniform(3.5, 5.0)
    lesion = (((g - c) ** 2).sum(-1) <= r * r) & brain
    img = np.where(brain, 0.5 + 0.05 * rng.standard_normal(brain.shape), 0.0)
    img[lesion] = 0.9 + 0.05 * rng.standard_normal(int(lesion.sum()))
    return img.astype(np.float32), lesion.astype(np.uint8), brain.astype(np.uint8)


def make_sphere_cohort(out: Path, n_train: int = 4, n_test: int = 1, seed: int = 0, brats: bool = False) -> Path:
    """Samplesheet of synthetic subjects (T1 + lesion label + brain mask); the last n_test are 'test'."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_train + n_test):
        s = f"sub-{i:02d}"
        img, les, brain = _sphere_case(rng)
        if brats:  # core of label 1 inside, ring of 4, oedema 2 outside -> labels 0, 1, 2, 4
            les = les.astype(np.int16) * 2
            les[img > 0.95] = 4
            les[(les == 4) & (rng.random(les.shape) < 0.3)] = 1
        nib.save(nib.Nifti1Image(img, _AFFINE), str(out / f"{s}_T1.nii.gz"))
        nib.save(nib.Nifti1Image(les.astype(np.uint8), _AFFINE), str(out / f"{s}_lesion.nii.gz"))
        nib.save(nib.Nifti1Image(brain, _AFFINE), str(out / f"{s}_brain.nii.gz"))
        rows.append([s, "T1", f"{s}_T1.nii.gz", f"{s}_lesion.nii.gz", "train" if i < n_train else "test"])
    sheet = out / "samplesheet.csv"
    with open(sheet, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "modality", "path", "label", "split"])
        w.writerows(rows)
    return sheet


def test_environment_points_inside_root_and_is_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", "/somewhere/else")
    monkeypatch.delenv("nnUNet_results", raising=False)
    with nnunet_environment(tmp_path / "nn") as root:
        assert os.environ["nnUNet_raw"] == str(root.raw) == str((tmp_path / "nn" / "nnUNet_raw").resolve())
        assert os.environ["nnUNet_preprocessed"] == str(root.preprocessed)
        assert os.environ["nnUNet_results"] == str(root.results)
        assert all(Path(os.environ[k]).is_dir() for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
        assert os.environ["nnUNet_n_proc_DA"] == "0" and os.environ["nnUNet_def_n_proc"] == "1"
        from nnunetv2.paths import nnUNet_raw  # lazy path object reads the variable on use

        assert os.fspath(nnUNet_raw) == str(root.raw)
    assert os.environ["nnUNet_raw"] == "/somewhere/else"
    assert "nnUNet_results" not in os.environ


def test_export_is_accepted_by_nnunet_integrity_check(tmp_path):
    sheet = make_sphere_cohort(tmp_path / "data", n_train=3, n_test=1)
    folder = export_dataset(sheet, tmp_path / "nn", modality="t1w", splits=["train"], dataset_id=7, name="Spheres")
    assert folder == NnunetRoot(tmp_path / "nn").raw / "Dataset007_Spheres"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1"}
    assert meta["labels"] == {"background": 0, "lesion": 1}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"sub-0{i}_0000.nii.gz" for i in range(3)]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [f"sub-0{i}.nii.gz" for i in range(3)]
    img = nib.load(str(folder / "imagesTr" / "sub-01_0000.nii.gz"))
    lab = nib.load(str(folder / "labelsTr" / "sub-01.nii.gz"))
    src = nib.load(str(tmp_path / "data" / "sub-01_T1.nii.gz"))
    assert np.allclose(img.affine, _AFFINE) and np.allclose(lab.affine, _AFFINE)
    assert np.array_equal(img.get_fdata(), src.get_fdata())
    assert set(np.unique(np.asarray(lab.dataobj)).tolist()) == {0, 1}
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no temp folder left
    with nnunet_environment(tmp_path / "nn"), inline_pools(True):
        from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

        verify_dataset_integrity(str(folder), 1)  # raises on any problem


def test_export_brats_labels_renumbered(tmp_path):
    sheet = make_sphere_cohort(tmp_path / "data", n_train=2, n_test=0, brats=True)
    folder = export_dataset(sheet, tmp_path / "nn", regions="brats", dataset_id=8, name="Brats")
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
    src = np.asarray(nib.load(str(tmp_path / "data" / "sub-00_lesion.nii.gz")).dataobj)
    out = np.asarray(nib.load(str(folder / "labelsTr" / "sub-00.nii.gz")).dataobj)
    assert set(np.unique(src).tolist()) == {0, 1, 2, 4}
    for a, b in ((0, 0), (1, 1), (2, 2), (4, 3)):
        assert np.array_equal(src == a, out == b)


def test_export_errors(tmp_path):
    sheet = make_sphere_cohort(tmp_path / "data", n_train=2, n_test=0)
    text = sheet.read_text()
    nosplit = tmp_path / "data" / "nosplit.csv"
    nosplit.write_text("\n".join(",".join(line.split(",")[:4]) for line in text.splitlines()) + "\n")
    with pytest.raises(InputError, match="split"):
        export_dataset(nosplit, tmp_path / "nn")
    nolabel = tmp_path / "data" / "nolabel.csv"
    nolabel.write_text(text.replace("sub-01_lesion.nii.gz", ""))
    with pytest.raises(InputError, match="without a label"):
        export_dataset(nolabel, tmp_path / "nn")
    with pytest.raises(InputError, match="no T2 rows"):
        export_dataset(sheet, tmp_path / "nn", modality="T2")
    with pytest.raises(InputError, match="1..999"):
        export_dataset(sheet, tmp_path / "nn", dataset_id=1000)
    # label on another grid
    lab = nib.load(str(tmp_path / "data" / "sub-00_lesion.nii.gz"))
    shifted = _AFFINE.copy()
    shifted[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj), shifted), str(tmp_path / "data" / "sub-00_lesion.nii.gz"))
    with pytest.raises(InputError, match="label grid"):
        export_dataset(sheet, tmp_path / "nn")
    # BraTS labels outside 0, 1, 2, 4
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj) * 3, _AFFINE), str(tmp_path / "data" / "sub-00_lesion.nii.gz"))
    with pytest.raises(InputError, match="outside 0, 1, 2, 4"):
        export_dataset(sheet, tmp_path / "nn", regions="brats")
    raw = tmp_path / "nn" / "nnUNet_raw"
    assert not raw.exists() or not any(raw.iterdir())  # nothing half-written


def test_predict_without_model_is_one_line_error(tmp_path, capsys):
    sheet = make_sphere_cohort(tmp_path / "data", n_train=1, n_test=0)
    assert main(["segment", "export", "--samplesheet", str(sheet), "--out-dir", str(tmp_path / "nn"), "--dataset-id", "9", "--name", "X"]) == 0
    capsys.readouterr()
    code = main(["segment", "predict", "--nnunet-root", str(tmp_path / "nn"), "--dataset-id", "9",
                 "--input", str(tmp_path / "data" / "sub-00_T1.nii.gz"), "--out-dir", str(tmp_path / "pred")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("unicoal: error:") and "unicoal segment train" in err and err.count("\n") == 1
    assert not (tmp_path / "pred").exists() or not any((tmp_path / "pred").iterdir())
    img = str(tmp_path / "data" / "sub-00_T1.nii.gz")
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "sub-00_T1.nii.gz"
    twin.write_bytes(Path(img).read_bytes())
    for extra, needle in ((["--input", str(twin)], "same output"), (["--name", "a", "--name", "b"], "output names"),
                          (["--input", str(twin), "--mask", img, "--mask", img, "--mask", img], "--mask files")):
        code = main(["segment", "predict", "--nnunet-root", str(tmp_path / "nn"), "--dataset-id", "9",
                     "--input", img, *extra, "--out-dir", str(tmp_path / "pred")])
        assert code == 1 and needle in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_tiny_training_on_cpu(tmp_path, capsys):
    """export -> plan/preprocess -> 3 x 10 iterations on CPU -> predict -> Dice.

    Floor: Dice >= 0.6 on the held-out subject. Measured on this 2-core machine: ~0.9 after 30
    iterations of a base-8 network (about 1 minute in all).
    """
    import torch

    torch.set_num_threads(1)
    sheet = make_sphere_cohort(tmp_path / "data", n_train=4, n_test=1, seed=0)
    root = str(tmp_path / "nn")
    assert main(["segment", "export", "--samplesheet", str(sheet), "--split", "train", "--out-dir", root,
                 "--dataset-id", "501", "--name", "Spheres"]) == 0
    assert main(["segment", "train", "--nnunet-root", root, "--dataset-id", "501", "--epochs", "3",
                 "--iterations-per-epoch", "10", "--val-iterations", "2", "--device", "cpu", "--threads", "1",
                 "--base-features", "8"]) == 0
    results = Path(root) / "nnUNet_results" / "Dataset501_Spheres"
    record = json.loads((results / "unicoal_model.json").read_text())["3d_fullres"]
    assert record["fold"] == "all" and record["epochs"] == 3 and record["model_dir"] == "nnUNetTrainerUnicoal__nnUNetPlans_f8__3d_fullres"
    weights = results / record["model_dir"] / "fold_all" / "weights_final.pth"
    assert weights.is_file()
    stamp = weights.stat().st_mtime_ns
    assert main(["segment", "train", "--nnunet-root", root, "--dataset-id", "501", "--epochs", "3",
                 "--iterations-per-epoch", "10", "--device", "cpu", "--base-features", "8"]) == 0
    assert weights.stat().st_mtime_ns == stamp  # a finished model is kept, not retrained
    assert "already holds final weights" in capsys.readouterr().err
    # ... and one of another schedule in the same folder is refused, not silently reused
    assert main(["segment", "train", "--nnunet-root", root, "--dataset-id", "501", "--epochs", "4",
                 "--iterations-per-epoch", "10", "--device", "cpu", "--base-features", "8"]) == 1
    err = capsys.readouterr().err
    assert "finished model of 3 epochs x 10 iterations, not 4 x 10" in err and err.count("\n") == 1

    data = tmp_path / "data"
    # a "synthesized" test volume: the real one with noise in the background, zeroed by the brain mask
    img = nib.load(str(data / "sub-04_T1.nii.gz"))
    brain = np.asarray(nib.load(str(data / "sub-04_brain.nii.gz")).dataobj) > 0
    noisy = np.where(brain, img.get_fdata(), 0.2 + 0.05 * np.random.default_rng(1).standard_normal(brain.shape))
    nib.save(nib.Nifti1Image(noisy.astype(np.float32), img.affine), str(data / "syn_T1.nii.gz"))
    out = tmp_path / "pred"
    assert main(["segment", "predict", "--nnunet-root", root, "--dataset-id", "501", "--device", "cpu", "--threads", "1",
                 "--input", str(data / "sub-04_T1.nii.gz"), "--input", str(data / "syn_T1.nii.gz"),
                 "--mask", str(data / "sub-04_brain.nii.gz"), "--name", "sub-04_T1", "--name", "syn_T1", "--out-dir", str(out)]) == 0
    for name in ("sub-04_T1_seg", "syn_T1_seg"):
        seg = nib.load(str(out / f"{name}.nii.gz"))
        assert seg.shape == img.shape and np.allclose(seg.affine, img.affine)
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}
        assert json.loads((out / f"{name}.json").read_text())["background_zeroed_outside_mask"] is True

    truth = str(data / "sub-04_lesion.nii.gz")
    rows_csv = tmp_path / "dice.csv"
    assert main(["segment", "dice", "--pred", str(out / "sub-04_T1_seg.nii.gz"), "--truth", truth, "--subject", "sub-04",
                 "--method", "Real", "--dataset", "Spheres", "--target", "T1", "--out", str(rows_csv)]) == 0
    assert main(["segment", "dice", "--pred", str(out / "syn_T1_seg.nii.gz"), "--truth", truth, "--subject", "sub-04",
                 "--method", "Noisy", "--dataset", "Spheres", "--task", "CMS", "--source", "T2", "--target", "T1",
                 "--out", str(tmp_path / "dice_syn.csv")]) == 0
    assert main(["segment", "dice", "--pred", truth, "--truth", truth, "--method", "Truth", "--out", str(tmp_path / "self.csv")]) == 0
    from unicoal.evaluate.rows import read_rows

    (real,) = read_rows([rows_csv])
    (syn,) = read_rows([tmp_path / "dice_syn.csv"])
    (self_row,) = read_rows([tmp_path / "self.csv"])
    assert real.method == "Real" and real.metric == "DSC" and real.convention == "brats-empty-1"
    assert real.value >= 0.6, f"Dice {real.value:.3f} below the floor 0.6"
    assert syn.value >= 0.6 and syn.task == "CMS"
    assert self_row.value == 1.0
    # the upper-bound command: real test images of the samplesheet (already zero background) -> same Dice
    assert main(["segment", "real", "--nnunet-root", root, "--dataset-id", "501", "--device", "cpu", "--threads", "1",
                 "--samplesheet", str(sheet), "--out-dir", str(tmp_path / "real"), "--out", str(tmp_path / "real.csv"),
                 "--dataset", "Spheres"]) == 0
    (upper,) = read_rows([tmp_path / "real.csv"])
    assert (upper.method, upper.subject, upper.source, upper.target) == ("Real", "sub-04", "T1", "T1")
    assert upper.value == pytest.approx(real.value, abs=1e-12)
    assert (tmp_path / "real" / "sub-04_T1_seg.nii.gz").is_file()
    print(f"Dice real {real.value:.4f}, noisy-background synthesized {syn.value:.4f}")


@pytest.mark.slow
def test_end_to_end_on_embedded_phantom_cohort(tmp_path):
    """The path on the embedded cohort's lesions: phantom -> skull-strip (ground-truth mask) -> export
    train+val -> plan/preprocess -> 1 epoch of 5 iterations -> `segment real` on the test split.

    Asserts the plumbing (plans on the phantom grid, label maps on each T1 grid, one Real row per
    test subject, Dice in [0, 1]); 5 iterations cannot find a phantom lesion (benchmarks/nnunet.py:
    pseudo Dice still 0 after 250 iterations), so no Dice floor here -- the sphere test has one.
    """
    import torch

    from unicoal.cohort.phantom import generate_cohort
    from unicoal.cohort.samplesheet import SampleRow, read_samplesheet, write_samplesheet
    from unicoal.evaluate.rows import read_rows
    from unicoal.io import load_volume, save_volume

    torch.set_num_threads(1)
    cohort = generate_cohort(tmp_path / "phantom", subjects=4, preset="tiny", seed=0)
    rows = []
    for r in read_samplesheet(cohort):
        if r.modality == "T1":
            data, img = load_volume(r.path)
            mask, _ = load_volume(r.path.with_name(f"{r.subject}_brainmask.nii.gz"))
            dst = tmp_path / "stripped" / f"{r.subject}_T1.nii.gz"
            save_volume(dst, np.where(mask > 0.5, data, 0.0), img.affine)
            rows.append(SampleRow(r.subject, "T1", dst, r.label, r.split))
    sheet = write_samplesheet(tmp_path / "stripped" / "samplesheet.csv", rows)
    test = [r for r in rows if r.split == "test"]
    assert test and all(r.label is not None for r in rows)
    root = str(tmp_path / "nn")
    assert main(["segment", "export", "--samplesheet", str(sheet), "--split", "train", "val", "--out-dir", root,
                 "--dataset-id", "502", "--name", "Phantom"]) == 0
    assert main(["segment", "train", "--nnunet-root", root, "--dataset-id", "502", "--epochs", "1",
                 "--iterations-per-epoch", "5", "--val-iterations", "1", "--device", "cpu", "--threads", "1",
                 "--base-features", "4"]) == 0
    plans = json.loads((Path(root) / "nnUNet_preprocessed" / "Dataset502_Phantom" / "nnUNetPlans.json").read_text())
    spacing = plans["configurations"]["3d_fullres"]["spacing"]
    assert spacing == pytest.approx([4.2, 3.5, 3.5], abs=1e-4)  # phantom T1 voxels, z-y-x order
    out_csv = tmp_path / "real.csv"
    assert main(["segment", "real", "--nnunet-root", root, "--dataset-id", "502", "--device", "cpu", "--threads", "1",
                 "--no-mirroring", "--samplesheet", str(sheet), "--out-dir", str(tmp_path / "seg"), "--out", str(out_csv),
                 "--dataset", "Phantom"]) == 0
    got = read_rows([out_csv])
    assert sorted(r.subject for r in got) == sorted(r.subject for r in test)
    assert all(r.method == "Real" and r.metric == "DSC" and 0.0 <= r.value <= 1.0 for r in got)
    for r in test:
        seg = nib.load(str(tmp_path / "seg" / f"{r.subject}_T1_seg.nii.gz"))
        ref = nib.load(str(r.path))
        assert seg.shape == ref.shape and np.allclose(seg.affine, ref.affine, atol=1e-4)


@pytest.mark.slow
def test_train_resumes_from_checkpoint_after_a_kill(tmp_path, capsys):
    """A training killed mid-run (as by a job's time limit) continues from nnU-Net's
    checkpoint_latest.pth when the same command runs again: no re-planning, epochs counted on."""
    import re
    import signal
    import subprocess
    import sys
    import time

    sheet = make_sphere_cohort(tmp_path / "data", n_train=2, n_test=0, seed=3)
    root = tmp_path / "nn"
    assert main(["segment", "export", "--samplesheet", str(sheet), "--out-dir", str(root), "--dataset-id", "503", "--name", "Kill"]) == 0
    cmd = ["segment", "train", "--nnunet-root", str(root), "--dataset-id", "503", "--epochs", "4", "--iterations-per-epoch", "3",
           "--val-iterations", "1", "--device", "cpu", "--threads", "1", "--base-features", "4"]
    fold = root / "nnUNet_results" / "Dataset503_Kill" / "nnUNetTrainerUnicoal__nnUNetPlans_f4__3d_fullres" / "fold_all"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unicoal", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (fold / "checkpoint_latest.pth").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (fold / "checkpoint_latest.pth").is_file(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "timeout"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (fold / "weights_final.pth").exists()
    capsys.readouterr()
    assert main(cmd) == 0
    err = capsys.readouterr().err
    resumed = [line for line in err.splitlines() if line.startswith("unicoal segment train: resuming")]
    assert len(resumed) == 1, err[-3000:]
    epoch = int(resumed[0].split(" at epoch ")[1].split()[0])
    assert 1 <= epoch < 4
    assert "fingerprint" not in err.splitlines()[-1]  # no re-planning: only the training was timed
    assert (fold / "weights_final.pth").is_file() and not (fold / "checkpoint_latest.pth").exists()
    # nnU-Net's log of the resumed run starts at the checkpoint's epoch and ends at the last one
    logs = sorted(fold.glob("training_log_*.txt"), key=lambda p: p.stat().st_mtime)
    epochs = [int(m.group(1)) for m in re.finditer(r": Epoch (\d+)\s*$", logs[-1].read_text(), re.M)]
    assert epochs == list(range(epoch, 4)), epochs

"""unicoal evaluate --jobs: many volumes in one process equal the per-volume calls byte for byte;
a bad row is one error line naming the CSV and its line, and nothing is written."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from unicoal.cli import main

AFFINE = np.diag([1.2, 1.2, 2.0, 1.0])


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
    return path


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:20, :18, :12]
    brain = ((z - 10) ** 2 / 64 + (y - 9) ** 2 / 49 + (x - 6) ** 2 / 25) < 1
    out = {"mask": _save(tmp_path / "mask.nii.gz", brain.astype(np.float32))}
    for s in ("s1", "s2", "s3"):
        gt = np.where(brain, 0.5 + 0.3 * rng.random(brain.shape), 0.0)
        out[f"{s}_gt"] = _save(tmp_path / f"{s}_T2.nii.gz", gt)
        out[f"{s}_pred"] = _save(tmp_path / f"{s}_pred.nii.gz", gt + 0.05 * rng.standard_normal(brain.shape))
    return out


# (subject, per-volume options): with and without mask, every metadata option, defaults
CALLS = [
    ("s1", ["--mask", "MASK", "--method", "Uni-COAL", "--task", "CMSR", "--dataset", "IXI", "--subject", "IXI002",
            "--source", "T1", "--target-modality", "T2", "--scale", "5.33", "--table", "IV"]),
    ("s2", ["--method", "pGAN", "--task", "CMS", "--dataset", "BraTS", "--table", "table1"]),
    ("s3", []),
]
OPTION_COLUMN = {"--mask": "mask", "--method": "method", "--task": "task", "--dataset": "dataset", "--subject": "subject",
                 "--source": "source", "--target-modality": "target_modality", "--scale": "scale", "--table": "table"}


def _write_jobs(path, rows, columns=("pred", "target", "out", *OPTION_COLUMN.values())):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize("extra", [[], ["--convention", "wang", "--also", "none"]])
def test_jobs_equal_per_volume_calls(volumes, tmp_path, extra):
    rows = []
    for s, opts in CALLS:
        opts = [str(volumes["mask"]) if o == "MASK" else o for o in opts]
        assert main(["evaluate", "--pred", str(volumes[f"{s}_pred"]), "--target", str(volumes[f"{s}_gt"]),
                     "--out", str(tmp_path / "single" / f"{s}.csv"), *opts, *extra]) == 0
        row = {"pred": volumes[f"{s}_pred"].name, "target": volumes[f"{s}_gt"].name, "out": f"jobs/{s}.csv"}  # relative
        row.update({OPTION_COLUMN[k]: (v.split("/")[-1] if k == "--mask" else v) for k, v in zip(opts[::2], opts[1::2])})
        rows.append(row)
    jobs = _write_jobs(tmp_path / "jobs.csv", rows)
    assert main(["evaluate", "--jobs", str(jobs), *extra]) == 0
    for s, _ in CALLS:
        single = (tmp_path / "single" / f"{s}.csv").read_text()
        assert (tmp_path / "jobs" / f"{s}.csv").read_text() == single
    assert "IXI002" in (tmp_path / "jobs" / "s1.csv").read_text()


def test_options_apply_to_every_row(volumes, tmp_path):
    jobs = _write_jobs(tmp_path / "jobs.csv", [{"pred": str(volumes["s1_pred"]), "target": str(volumes["s1_gt"]), "out": str(tmp_path / "a.csv"),
                                                "mask": str(volumes["mask"])}], ("pred", "target", "out", "mask"))
    assert main(["evaluate", "--jobs", str(jobs), "--convention", "brainmask", "--also", "wang"]) == 0
    assert main(["evaluate", "--pred", str(volumes["s1_pred"]), "--target", str(volumes["s1_gt"]), "--mask", str(volumes["mask"]),
                 "--out", str(tmp_path / "b.csv"), "--convention", "brainmask", "--also", "wang"]) == 0
    text = (tmp_path / "a.csv").read_text()
    assert text == (tmp_path / "b.csv").read_text()
    assert {line.split(",")[-1] for line in text.splitlines()[1:]} == {"brainmask", "wang"}


@pytest.mark.parametrize("bad, needle", [
    ({"pred": "missing.nii.gz"}, "line 3: pred file not found"),
    ({"scale": "four"}, "line 3: scale 'four' is not a number"),
    ({"task": "XYZ"}, "line 3: task 'XYZ'"),
    ({"pred": "s3_pred_small.nii.gz"}, "line 3: "),        # grid mismatch, found while evaluating
    ({"out": "out/s1.csv"}, "line 3: out"),                # two rows write one file
])
def test_bad_row_names_file_and_line_and_writes_nothing(volumes, tmp_path, capsys, bad, needle):
    _save(tmp_path / "s3_pred_small.nii.gz", np.zeros((20, 18, 11)))
    good = {"pred": volumes["s1_pred"].name, "target": volumes["s1_gt"].name, "out": "out/s1.csv"}
    row = {"pred": volumes["s2_pred"].name, "target": volumes["s2_gt"].name, "out": "out/s2.csv", **bad}
    jobs = _write_jobs(tmp_path / "jobs.csv", [good, row], ("pred", "target", "out", "scale", "task"))
    assert main(["evaluate", "--jobs", str(jobs)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"unicoal: error: {jobs}: ") and needle in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_bad_header_and_mixed_arguments(volumes, tmp_path, capsys):
    jobs = _write_jobs(tmp_path / "jobs.csv", [{"pred": "a", "target": "b"}], ("pred", "target"))
    assert main(["evaluate", "--jobs", str(jobs)]) == 1
    assert "missing column(s) out" in capsys.readouterr().err
    jobs = _write_jobs(tmp_path / "jobs.csv", [{"pred": "a", "target": "b", "out": "c", "colour": "x"}], ("pred", "target", "out", "colour"))
    assert main(["evaluate", "--jobs", str(jobs)]) == 1
    assert "unknown column(s) colour" in capsys.readouterr().err
    assert main(["evaluate", "--jobs", str(jobs), "--pred", "x.nii.gz"]) == 1
    assert "--pred cannot be combined with --jobs" in capsys.readouterr().err
    assert main(["evaluate", "--pred", "x.nii.gz"]) == 1
    assert "missing --target, --out" in capsys.readouterr().err

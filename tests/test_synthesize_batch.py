"""`unicoal synthesize --jobs`: one model, many volumes in one process (the pipeline's SYNTHESIZE
task per model). The batch writes exactly what one call per volume writes; a bad jobs file is
one error line and nothing is written."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unicoal import infer
from unicoal.cli import main
from unicoal.geometry import Grid, thick_slice_grid
from unicoal.io import load_volume, save_volume
from unicoal.preprocess.degrade import degrade_array

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two subjects (HR T1/T2 on 1.25 mm slices, their 2.5 mm T1) and a micro Uni-COAL model."""
    from unicoal.methods import get_method
    from unicoal.train.checkpoint import inference_export, save_checkpoint
    from unicoal.train.config import load_config
    from unicoal.train.synthetic import micro_overrides, synthetic_subject

    tmp = tmp_path_factory.mktemp("batch")
    aff = np.diag([0.9, 0.9, 1.25, 1.0])
    hr = Grid((24, 28, 16), aff, 2)
    files = {}
    for n, seed in ((1, 3), (2, 4)):
        vols = synthetic_subject((24, 28, 16), ("T1", "T2"), seed=seed, smooth=1.5)
        for mod in ("T1", "T2"):
            files[f"s{n}_{mod}"] = tmp / f"s{n}_{mod}.nii.gz"
            save_volume(files[f"s{n}_{mod}"], vols[mod], aff)
        lr, _ = degrade_array(vols["T1"], 2.0, axis=2)
        files[f"s{n}_T1_x2"] = tmp / f"s{n}_T1_x2.nii.gz"
        save_volume(files[f"s{n}_T1_x2"], lr, thick_slice_grid(hr, 2.5).matrix)
    cfg = load_config("tiny", micro_overrides())
    spec = get_method("unicoal")
    model_cfg = spec.model_config(cfg.model)
    torch.manual_seed(0)
    G, _ = spec.build_models(model_cfg, discriminator=False)
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, inference_export({"config": cfg.to_dict(), "model_config": model_cfg.to_dict(), "G_ema": G.state_dict(), "step": 0, "images_seen": 0}))
    return tmp, files, ckpt


def _jobs(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "input", "from", "to", "like", "out"])
        w.writeheader()
        w.writerows(rows)
    return path


def test_batch_writes_what_single_calls_write_and_loads_the_model_once(setup, tmp_path, monkeypatch):
    tmp, files, ckpt = setup
    cells = [("s1_T1_x2", "T1", "T1", "s1_T1"), ("s1_T1", "T1", "T2", "s1_T2"), ("s2_T1_x2", "T1", "T2", "s2_T2")]
    rows = [{"id": f"j{i}", "input": str(files[src]), "from": fr, "to": to, "like": str(files[like]), "out": f"out/j{i}.nii.gz"}
            for i, (src, fr, to, like) in enumerate(cells)]
    loads = []
    real = infer.load_predictor
    monkeypatch.setattr(infer, "load_predictor", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert main(["synthesize", "--jobs", str(_jobs(tmp_path / "jobs.csv", rows)), "--checkpoint", str(ckpt), "--no-progress"]) == 0
    assert len(loads) == 1, "the model is loaded once for the whole batch"
    for i, (src, fr, to, like) in enumerate(cells):
        single = tmp_path / f"single{i}.nii.gz"
        assert main(["synthesize", "--input", str(files[src]), "--from", fr, "--to", to, "--like", str(files[like]),
                     "--out", str(single), "--checkpoint", str(ckpt), "--no-progress"]) == 0
        batch, img = load_volume(tmp_path / "out" / f"j{i}.nii.gz")
        ref, ref_img = load_volume(single)
        np.testing.assert_array_equal(batch, ref)
        np.testing.assert_allclose(img.affine, ref_img.affine)
        assert (tmp_path / "out" / f"j{i}.json").is_file()  # the sidecar beside each output


def test_batch_of_an_interpolation_method(setup, tmp_path):
    tmp, files, ckpt = setup
    rows = [{"id": "a", "input": str(files["s1_T1_x2"]), "from": "T1", "to": "T1", "like": str(files["s1_T1"]), "out": "a.nii.gz"},
            {"id": "b", "input": str(files["s2_T1_x2"]), "from": "T1", "to": "T1", "like": str(files["s2_T1"]), "out": "b.nii.gz"}]
    assert main(["synthesize", "--jobs", str(_jobs(tmp_path / "jobs.csv", rows)), "--method", "linear", "--no-progress"]) == 0
    for name, like in (("a", "s1_T1"), ("b", "s2_T1")):
        out, _ = load_volume(tmp_path / f"{name}.nii.gz")
        assert out.shape == load_volume(files[like])[0].shape


def test_bad_jobs_files_are_one_line_and_write_nothing(setup, tmp_path, capsys):
    tmp, files, ckpt = setup
    good = {"id": "a", "input": str(files["s1_T1_x2"]), "from": "T1", "to": "T1", "like": str(files["s1_T1"]), "out": "o.nii.gz"}
    (tmp_path / "cols.csv").write_text("id,input,to\na,x.nii.gz,T1\n")
    cases = [
        (["--jobs", str(tmp_path / "none.csv")], "jobs file not found"),
        (["--jobs", str(tmp_path / "cols.csv")], "missing column(s) from, out"),
        (["--jobs", str(_jobs(tmp_path / "empty.csv", []))], "no jobs in the file"),
        (["--jobs", str(_jobs(tmp_path / "twice.csv", [good, {**good, "id": "b"}]))], "line 3: output o.nii.gz is written twice"),
        (["--jobs", str(_jobs(tmp_path / "nolike.csv", [{**good, "like": ""}]))], "line 2: neither like nor thickness given"),
        (["--jobs", str(_jobs(tmp_path / "both.csv", [good])), "--to", "T2"], "--jobs replaces --to"),
        (["--to", "T1"], "missing --input, --out"),
    ]
    for args, msg in cases:
        assert main(["synthesize", "--method", "linear", "--no-progress", *args]) == 1, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("unicoal: error:") and msg in err[0], (args, err)
    assert not list(tmp_path.glob("o*.nii.gz"))

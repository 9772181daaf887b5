"""Model selection on the validation split (issue #21): val.csv, model_best.pt, model.pt = the
best on validation, the metric computed through the synthesis code, the test split never read."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unicoal.cohort.samplesheet import read_samplesheet
from unicoal.data import DataConfig
from unicoal.train.config import load_config
from unicoal.train.loop import train
from unicoal.train.synthetic import make_synthetic_cohort, micro_overrides
from unicoal.train.validate import METRIC, Cell, validation_cells

torch.set_num_threads(1)

# Opened files, recorded by an audit hook while `_OPENED` is a list (hooks cannot be removed).
_OPENED: list | None = None


def _audit(event, args):
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve()))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=4, shape=(36, 36, 24),
                                 splits=["train", "train", "val", "test"])


def _cfg(steps=4, val_every=2, **extra):
    return load_config("tiny", micro_overrides(optim={"total_steps": steps}, run={"checkpoint_every": 2, "val_every": val_every},
                                               **extra))


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_validation_cells():
    ixi = DataConfig()
    assert validation_cells(ixi, {"cms", "sr", "cmsr"}) == [Cell("T1", "T2", 1.0), Cell("T1", "T1", 6.0)]
    assert validation_cells(DataConfig.fixed_task("FLAIR", "T1", 5.0, modalities=("T1", "FLAIR")), {"cmsr"}) == [Cell("FLAIR", "T1", 5.0)]
    assert validation_cells(DataConfig(input_modalities=("T1",), output_modalities=("T1",), ratios=(2, 4)), {"sr"}) == [Cell("T1", "T1", 4.0)]
    cms_only = DataConfig(input_modalities=("T1", "T2"), output_modalities=("T1", "T2"), ratios=(1,))
    assert validation_cells(cms_only, {"cms"}) == [Cell("T1", "T2", 1.0)]
    assert Cell("T1", "T2", 1.0).name == "T1>T2@1x"


def test_best_on_validation_ships_and_the_test_split_is_never_read(tmp_path, sheet):
    global _OPENED
    rows = read_samplesheet(sheet)
    test_files = {str(Path(r.path).resolve()) for r in rows if r.split == "test"}
    val_files = {str(Path(r.path).resolve()) for r in rows if r.split == "val"}
    train_files = {str(Path(r.path).resolve()) for r in rows if r.split == "train"}
    run = tmp_path / "run"
    _OPENED = []
    try:
        out = train(_cfg(), sheet, run, progress=False)
    finally:
        opened, _OPENED = set(_OPENED), None
    assert train_files <= opened and val_files & opened  # the recorder sees the volumes training and validation read
    assert not (test_files & opened), sorted(test_files & opened)

    val = _rows(run / "val.csv")
    assert [int(r["step"]) for r in val] == [2, 4]
    cells = ["T1>T2@1x", "T1>T1@6x"]
    for r in val:
        scores = [float(r[f"psnr_head {c}"]) for c in cells]
        assert all(np.isfinite(scores)) and float(r[METRIC]) == pytest.approx(np.mean(scores), rel=1e-9)
    best = max(val, key=lambda r: float(r[METRIC]))
    assert [int(r["best"]) for r in val] == [1, int(float(val[1][METRIC]) > float(val[0][METRIC]))]

    sel = torch.load(run / "model_best.pt", weights_only=True)
    assert sel["selection"]["step"] == int(best["step"]) and sel["selection"]["metric"] == METRIC
    assert sel["step"] == int(best["step"])
    shipped = torch.load(run / "model.pt", weights_only=True)
    assert out["model"] == "best" and shipped["selection"] == sel["selection"]
    assert all(torch.equal(shipped["state_dict"][k], v) for k, v in sel["state_dict"].items())

    # the logged metric is what `unicoal synthesize` of model_best.pt scores on the val subject
    from unicoal.evaluate.metrics import get_convention, image_metrics
    from unicoal.infer import synthesize
    from unicoal.io import load_volume

    by_mod = {r.modality: r for r in rows if r.split == "val"}
    pred_path = tmp_path / "val_T2.nii.gz"
    synthesize([by_mod["T1"].path], pred_path, to="T2", source_modalities=["T1"], like=by_mod["T2"].path,
               checkpoint=run / "model_best.pt", progress=False)
    pred, ref = load_volume(pred_path)[0].astype(np.float64), load_volume(by_mod["T2"].path)[0].astype(np.float64)
    crop = (slice(2, 34), slice(2, 34))  # the model's central 32 x 32 field of view
    psnr = image_metrics(pred[crop], ref[crop], get_convention("published"), mask=ref[crop] > 0.05)["PSNR"]
    assert psnr == pytest.approx(float(best["psnr_head T1>T2@1x"]), abs=1e-6)


def test_validation_does_not_change_training_and_can_be_off(tmp_path, sheet, capsys):
    a = train(_cfg(val_every=2), sheet, tmp_path / "with", progress=False)
    b = train(_cfg(val_every=0), sheet, tmp_path / "without", progress=False)
    la, lb = _rows(tmp_path / "with" / "log.csv"), _rows(tmp_path / "without" / "log.csv")
    assert [r["G_loss"] for r in la] == [r["G_loss"] for r in lb]  # validation keeps the RNG streams
    assert b["model"] == "last" and not (tmp_path / "without" / "val.csv").exists()
    assert not (tmp_path / "without" / "model_best.pt").exists()
    for k, v in a["trainer"].ema.model.state_dict().items():
        assert torch.equal(v, b["trainer"].ema.model.state_dict()[k]), k
    # val_every set but no val rows: off, said once, model.pt is the last EMA generator
    no_val = make_synthetic_cohort(tmp_path / "noval", subjects=2, shape=(36, 36, 24), splits=["train", "train"])
    c = train(_cfg(val_every=2), no_val, tmp_path / "noval_run", progress=False)
    assert c["model"] == "last" and "model selection on validation is off (the samplesheet has no val rows)" in capsys.readouterr().err
    with pytest.raises(Exception, match="val_every"):
        _cfg(val_every=-1)
    from unicoal.errors import InputError
    with pytest.raises(InputError, match="data.split is 'all'"):  # selecting on subjects it trains on
        train(_cfg(val_every=2, data={"split": "all"}), sheet, tmp_path / "leak", progress=False)
    assert not (tmp_path / "leak").exists()  # refused before anything is written


def test_resume_keeps_the_best_score(tmp_path, sheet):
    run = tmp_path / "run"
    train(_cfg(steps=6), sheet, run, progress=False, stop_after=4)
    assert [int(r["step"]) for r in _rows(run / "val.csv")] == [2, 4]
    out = train(_cfg(steps=6), sheet, run, resume=True, progress=False)
    val = _rows(run / "val.csv")
    assert [int(r["step"]) for r in val] == [2, 4, 6]
    best = max(val, key=lambda r: float(r[METRIC]))
    assert torch.load(run / "model.pt", weights_only=True)["selection"]["step"] == int(best["step"])
    assert out["model"] == "best"
    # a new best is flagged only when it beats every earlier row, the resumed ones included
    running = -np.inf
    for r in val:
        assert int(r["best"]) == int(float(r[METRIC]) > running)
        running = max(running, float(r[METRIC]))

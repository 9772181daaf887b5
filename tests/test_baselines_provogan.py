"""ProvoGAN baseline: stages, the cascade over orientations, training on the synthetic cohort,
volume synthesis on the target grid for CMS / SR / CMSR, checkpoints and resume."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unicoal.errors import InputError
from unicoal.models.baselines.provogan import ProvoGANConfig, build_provogan, provogan_config, stage_of
from unicoal.predictors.provogan import ProvoDataset, ProvoPredictor, provo_cascade
from unicoal.train.config import load_config
from unicoal.train.loop import build_dataset, train
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)
THICK = 1.25


def _cfg(steps: int, source="T1", target="T2", ratio=2, **run):
    over = {
        "model": {"modalities": list(dict.fromkeys([source, target]))},
        "data": {"task": {"input": source, "output": target, "ratio": ratio}},
        "optim": {"total_steps": steps},
        "run": {"checkpoint_every": 1, "log_every": 1, "tensorboard": False, **run},
    }
    return load_config("provogan_tiny", over)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    # 2 train subjects and 1 held-out (val) subject, 48 x 40 in-plane, 16 slices of 1.25 mm
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=3, shape=(48, 40, 16), spacing=(1.0, 1.0, THICK),
                                 modalities=("T1", "T2"), splits=["train", "train", "val"])


def _val_paths(sheet):
    from unicoal.cohort.samplesheet import read_samplesheet

    return {r.modality: r.path for r in read_samplesheet(sheet) if r.split == "val"}


def _export(G, cfg, tmp_path, name="model.pt"):
    from unicoal.train.checkpoint import inference_export, save_checkpoint

    model_cfg = provogan_config(cfg.model)
    path = tmp_path / name
    save_checkpoint(path, inference_export({"config": cfg.to_dict(), "model_config": model_cfg.to_dict(), "G_ema": G.state_dict(), "step": 0, "images_seen": 0}))
    return path


def _heldout_l1(G, cfg, sheet) -> float:
    """Volume-level mean |synthesis - target| in [0, 1] on the validation subject (HR grid)."""
    from dataclasses import replace

    ds = ProvoDataset(sheet, replace(cfg.data, split="val"), provogan_config(cfg.model))
    target = np.asarray(ds.volume(0, cfg.data.output_modalities[0]))
    out = provo_cascade(G, ds.source(0), int(G.stage) + 1)
    return float(np.abs(out - target).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sheet):
    """A tiny T1 -> T2 2x CMSR ProvoGAN trained for 60 steps (3 stages x 20) and its untrained twin."""
    cfg = _cfg(60, checkpoint_every=30)
    torch.manual_seed(cfg.run.seed)
    G0, _ = build_provogan(provogan_config(cfg.model))
    G0.stage.fill_(2)
    run = tmp_path_factory.mktemp("provogan") / "run"
    out = train(cfg, sheet, run, progress=False)
    return {"cfg": cfg, "run": run, "G0": G0, "out": out}


# --- network and cascade ----------------------------------------------------------------------
@pytest.mark.parametrize("step,total,stage", [(0, 30, 0), (9, 30, 0), (10, 30, 1), (19, 30, 1), (20, 30, 2), (29, 30, 2), (5, 3, 2), (0, 1, 0)])
def test_stage_schedule(step, total, stage):
    assert stage_of(step, total) == stage


def test_forward_backward_only_the_current_stage_cpu():
    cfg = ProvoGANConfig.tiny()
    torch.manual_seed(0)
    G, D = build_provogan(cfg)
    x = torch.rand(2, 2, 64, 64) * 2 - 1
    for step, s in ((0, 0), (10, 1), (25, 2)):
        G.zero_grad(set_to_none=True), D.zero_grad(set_to_none=True)
        G.set_train_step(step, 30), D.set_train_step(step, 30)
        y = G(x)
        assert y.shape == (2, 1, 64, 64) and int(G.stage) == s == int(D.stage)
        logits = D(x, y)
        assert logits.shape == (2, 1, 6, 6)
        (y.square().mean() + logits.mean()).backward()
        for i in range(3):
            used = [p.grad is not None for p in G.stages[i].parameters()]
            assert all(used) if i == s else not any(used), (s, i)
            assert all(p.grad is not None for p in D.stages[i].parameters()) == (i == s)
        if s > 0:  # residual refinement of the previous stage (authors: y_s = y_(s-1) - 2 G_s)
            with torch.no_grad():
                G.eval()  # dropout off (it is on while training)
                torch.testing.assert_close(G(x), x[:, 1:2] - 2 * G.stages[s](x))
                G.train()
    G.eval()
    with torch.no_grad():  # stage 1 ignores the "previous stage" channel
        G.set_train_step(0, 30)
        x2 = x.clone()
        x2[:, 1] = 0.3
        torch.testing.assert_close(G(x2), G(x))


@pytest.mark.parametrize("kw,match", [
    ({"order": (0, 0, 1)}, "order"), ({"order": (0, 3)}, "order"), ({"img_resolution": 62}, "multiple of 4"),
    ({"num_inputs": 2}, "num_inputs"), ({"interpolation": "nearest"}, "interpolation"), ({"norm": "group"}, "norm"),
])
def test_invalid_configs(kw, match):
    with pytest.raises(ValueError, match=match):
        ProvoGANConfig.tiny(**kw)
    with pytest.raises(ValueError, match="unknown ProvoGAN model key"):
        provogan_config({"preset": "tiny", "patch_size": 8})


def test_cascade_runs_each_stage_along_its_axis():
    cfg = ProvoGANConfig.tiny(order=(2, 0, 1))
    torch.manual_seed(0)
    G, _ = build_provogan(cfg, discriminator=False)
    vol = np.random.default_rng(0).random((12, 30, 20)).astype(np.float32)
    np.testing.assert_array_equal(provo_cascade(G, vol, 0), vol)
    one = provo_cascade(G, vol, 1, batch_size=7)
    assert one.shape == vol.shape and 0.0 <= one.min() and one.max() <= 1.0
    # stage 1 along axis 2: every cross-section vol[:, :, j] (12 x 30) through the network alone
    from unicoal.data import fit_inplane, from_network, restore_inplane, to_network

    j = 5
    x = np.stack([vol[:, :, j], vol[:, :, j]])[None]
    with torch.no_grad():
        G.eval()
        y = G.run_stage(0, torch.from_numpy(fit_inplane(to_network(x), 64, -1.0))).clamp(-1, 1)[0, 0].numpy()
    np.testing.assert_allclose(one[:, :, j], np.clip(restore_inplane(from_network(y), (12, 30)), 0, 1), atol=1e-5)
    three = provo_cascade(G, vol, 3)
    assert three.shape == vol.shape and not np.allclose(three, one)
    assert G.training is False or all(not m.training for m in G.stages)  # left as found (eval above)


# The authors' numbers: github.com/icon-lab/ProvoGAN models/networks.py instantiated with the
# defaults of its options/base_options.py (ngf = ndf = 24; sample_run.sh: resnet_9blocks, basic
# PatchGAN, --norm batch) for one source contrast (input_nc 1 / 2 / 2, output_nc 1): the three
# generators hold 4,811,235 and the three discriminators 1,175,595 trainable parameters.
AUTHORS_G, AUTHORS_D = 4_811_235, 1_175_595


def test_published_size_is_the_authors_ngf_24():
    cfg = ProvoGANConfig.paper()
    assert (cfg.ngf, cfg.ndf) == (24, 24)
    G, D = build_provogan(cfg)
    assert sum(p.numel() for p in G.parameters()) == AUTHORS_G
    assert sum(p.numel() for p in D.parameters()) == AUTHORS_D
    # stage 1 reads the source, stages 2-3 the source and the previous stage (+ 7 x 7 x 24 weights)
    assert [sum(p.numel() for p in g.parameters()) for g in G.stages] == [1_602_961, 1_604_137, 1_604_137]


def test_each_stage_restarts_adam_and_its_own_schedule():
    """The authors train each stage in its own run (50 + 50 epochs, a new Adam): every stage
    starts at the full lr with empty Adam moments and decays linearly to 0 within the stage."""
    from unicoal.train.distributed import DistInfo
    from unicoal.train.loop import Trainer

    cfg = load_config("provogan_tiny", {"model": {"img_resolution": 32, "ngf": 2, "ndf": 2, "n_blocks": 1},
                                        "optim": {"total_steps": 12, "batch_size": 1}, "run": {"tensorboard": False}})
    assert cfg.optim.decay_start == 0.5 and cfg.optim.update_order == "d_then_g"
    torch.manual_seed(0)
    tr = Trainer(cfg, steps_per_epoch=4, info=DistInfo(device="cpu"))
    assert [p.start for p in tr.phases] == [0, 4, 8]
    g = torch.Generator().manual_seed(0)
    batch = {"x_in": torch.rand(1, 2, 32, 32, generator=g) * 2 - 1, "y": torch.rand(1, 1, 32, 32, generator=g) * 2 - 1,
             "delta": torch.zeros(1), "c_out": torch.zeros(1, dtype=torch.long)}
    lrs, adam_steps = [], []
    for step in range(12):
        lrs.append(tr.opt_G.param_groups[0]["lr"])
        tr.train_step(batch)
        stage = int(tr.G.stage)
        first = next(iter(tr.G.stages[stage].parameters()))
        adam_steps.append(int(tr.opt_G.state[first]["step"]))
        if step in (4, 8):  # the first step of a stage: the earlier stages' moments are gone too
            earlier = next(iter(tr.G.stages[stage - 1].parameters()))
            assert earlier not in tr.opt_G.state or not tr.opt_G.state[earlier]
    base = cfg.optim.lr_g
    per_stage = [base, base, base * 1.0, base * 0.5]  # 2 steps constant, then 2 of linear decay
    assert lrs == pytest.approx(per_stage * 3)
    assert adam_steps == [1, 2, 3, 4] * 3


# --- training, data, synthesis, checkpoints -------------------------------------------------------
def test_training_lowers_heldout_l1(trained, sheet):
    cfg, run = trained["cfg"], trained["run"]
    G1, _ = build_provogan(provogan_config(cfg.model), discriminator=False)
    G1.load_state_dict(torch.load(run / "model.pt", weights_only=True)["state_dict"])
    assert int(G1.stage) == 2  # all three stages trained
    before, after = _heldout_l1(trained["G0"], cfg, sheet), _heldout_l1(G1, cfg, sheet)
    print(f"held-out volume L1 before {before:.4f} after {after:.4f}")
    assert after < 0.75 * before, (before, after)
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and all(np.isfinite(float(r["G_l1"])) for r in rows)


def test_items_follow_the_step_and_carry_the_previous_stage(trained, sheet):
    trainer = trained["out"]["trainer"]
    ds = build_dataset(trained["cfg"], sheet)
    ds.bind_trainer(trainer)
    assert trainer.step == 60 and ds.current_stage() == 2
    item = ds[3]
    assert item["x_in"].shape == (2, 64, 64) and int(item["stage"]) == 2
    subject, j = ds.locate(3)
    prev = provo_cascade(trainer.G, ds.source(subject), 2)
    np.testing.assert_allclose(ds.previous(subject, 2), prev, atol=1e-6)
    # stage 3 reads sagittal-like cross-sections (axis 2 of the slice-first volume)
    k = int(item["k"])
    from unicoal.data import fit_inplane, to_network

    np.testing.assert_allclose(item["x_in"][1].numpy(), fit_inplane(to_network(prev[:, :, k]), 64, -1.0), atol=1e-6)


def test_dataset_refuses_multi_task_data_and_workers(sheet):
    with pytest.raises(InputError, match="one model per task"):
        build_dataset(load_config("provogan_tiny", {"model": {"modalities": ["T1", "T2"]}, "data": {"task": None, "ratios": [1, 2]}}), sheet)
    with pytest.raises(InputError, match="num_workers: 0"):
        build_dataset(_cfg(4, num_workers=2), sheet)


@pytest.mark.parametrize("source,target,ratio,task", [("T1", "T2", 2, "cmsr"), ("T1", "T1", 2, "sr"), ("T1", "T2", 1, "cms")])
def test_synthesize_writes_the_target_grid_for_every_task(trained, sheet, tmp_path, source, target, ratio, task):
    from unicoal.geometry import Grid, thick_slice_grid
    from unicoal.infer import synthesize
    from unicoal.io import load_volume, save_volume
    from unicoal.preprocess.degrade import degrade_array

    paths = _val_paths(sheet)
    if task == "cmsr":
        ckpt = trained["run"] / "model.pt"
    else:  # the grid does not depend on training: an untrained model of that task
        cfg = _cfg(3, source=source, target=target, ratio=ratio)
        G, _ = build_provogan(provogan_config(cfg.model), discriminator=False)
        G.stage.fill_(2)
        ckpt = _export(G, cfg, tmp_path)
    hr_src, hr_img = load_volume(paths[source])
    hr = Grid.from_image(hr_img)
    inp = paths[source]
    if ratio != 1:
        lr, _ = degrade_array(hr_src, float(ratio), axis=hr.slice_axis)
        inp = tmp_path / "lr.nii.gz"
        save_volume(inp, lr, thick_slice_grid(hr, ratio * hr.thickness).matrix)
    out = tmp_path / f"{task}.nii.gz"
    meta = synthesize([inp], out, to=target, like=paths[target], source_modalities=[source], checkpoint=ckpt, progress=False)
    data, img = load_volume(out)
    ref, ref_img = load_volume(paths[target])
    assert meta["task"] == task and meta["method"] == "provogan"
    assert data.shape == ref.shape and np.allclose(img.affine, ref_img.affine, atol=1e-5)
    assert 0.0 <= data.min() and data.max() <= 1.0
    if task == "cmsr":  # a trained model beats a constant guess on the held-out subject
        assert np.abs(data - ref).mean() < np.abs(ref.mean() - ref).mean()
    # a task-specific model refuses another target modality
    other = "T1" if target == "T2" else "T2"
    with pytest.raises(InputError, match="synthesizes|unknown target modality"):
        synthesize([inp], tmp_path / "other.nii.gz", to=other, like=paths[other], source_modalities=[source], checkpoint=ckpt, progress=False)
    assert not (tmp_path / "other.nii.gz").exists()


def test_resume_across_stage_changes_matches_uninterrupted_run(tmp_path, sheet):
    cfg = _cfg(6)  # stages at steps 0-1, 2-3, 4-5

    def losses(run):
        with open(run / "log.csv") as fh:
            return {int(r["step"]): float(r["G_loss"]) for r in csv.DictReader(fh)}

    a = train(cfg, sheet, tmp_path / "a", progress=False)
    train(cfg, sheet, tmp_path / "b", progress=False, stop_after=3)  # killed in stage 2
    ck = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 3 and int(ck["G"]["stage"]) == 1
    b = train(cfg, sheet, tmp_path / "b", resume=True, progress=False)
    assert b["step"] == 6 and int(b["trainer"].G.stage) == 2
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(lb) == list(range(1, 7))
    for s in la:
        assert lb[s] == pytest.approx(la[s], rel=1e-5, abs=1e-6), s
    for k, v in a["trainer"].G.state_dict().items():
        assert torch.allclose(v.float(), b["trainer"].G.state_dict()[k].float(), atol=1e-6), k


def test_registry_row_is_table5():
    from unicoal.methods import get_method

    spec = get_method("provogan")
    assert [spec.capability(t) for t in ("cms", "sr", "cmsr")] == ["spec", "spec", "spec"]
    assert spec.predictor == "provogan" and spec.dataset == "provogan" and spec.display == "ProvoGAN"
    pred = ProvoPredictor(build_provogan(ProvoGANConfig.tiny(), discriminator=False)[0], target="T2", modalities=("T1", "T2"))
    assert pred.stages == 1 and pred.modalities == ("T2",)


def test_plan_rows_train_one_tiny_model_per_task_in_the_test_profile(tmp_path):
    from unicoal.cohort.samplesheet import SampleRow
    from unicoal.plan import build_plan, load_experiment

    rows = []
    for i, split in enumerate(["test", "train", "train", "val"]):
        for m in ("T1", "T2", "PD", "FLAIR"):
            (tmp_path / f"s{i}_{m}.nii.gz").touch()
            rows.append(SampleRow(f"s{i}", m, tmp_path / f"s{i}_{m}.nii.gz", None, split))
    plan = build_plan([load_experiment(t) for t in ("table1", "table3", "table4")], rows, profile="test", methods=["provogan"])
    cells = sorted((j.config["data"]["input_modalities"][0], j.config["data"]["output_modalities"][0], j.config["data"]["ratios"][0]) for j in plan.train)
    # Table I CMS (merged with Table IV's), Table IV SR x2 and CMSR x2, Table III FLAIR -> T1 CMSR x5 (ADNI)
    assert cells == [("FLAIR", "T1", 5.0), ("T1", "T1", 2.0), ("T1", "T2", 1.0), ("T1", "T2", 2.0)]
    assert all(j.max_steps == 18 and j.config["base"] == "provogan_tiny" for j in plan.train)
    assert {s.table for s in plan.synthesize} == {"table1", "table3", "table4"}

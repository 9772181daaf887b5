"""SC-GAN (Lan et al. 2021): network, training through the shared trainer on 3D patches, synthesis
for CMS / SR / CMSR with task-specific models, weights-only checkpoints and resume."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from unicoal.cli import main
from unicoal.geometry import Grid, thick_slice_grid
from unicoal.io import load_volume, save_volume, sidecar_path
from unicoal.methods import METHODS, TASKS
from unicoal.models.baselines.scgan import ScganConfig, ScganGenerator, SelfAttention3d, build_scgan, scgan_config
from unicoal.preprocess.degrade import degrade_array
from unicoal.train.config import load_config
from unicoal.train.loop import build_dataset, train
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)
HR_THICK = 1.25


def _cfg(steps: int, source: str, target: str, ratio: float, **extra):
    over = {
        "model": {"modalities": sorted({source, target}, key=["T1", "T2", "PD"].index)},
        "data": {"input_modalities": [source], "output_modalities": [target], "ratios": [ratio]},
        "optim": {"total_steps": steps},
        "run": {"log_every": 1, "tensorboard": False, "checkpoint_every": 10},
    }
    for k, v in extra.items():
        over.setdefault(k, {}).update(v)
    return load_config("scgan_tiny", over)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scgan")
    sheet = make_synthetic_cohort(tmp / "cohort", subjects=3, shape=(36, 36, 24), splits=["train", "train", "test"])
    return tmp, sheet


@pytest.fixture(scope="module")
def models(cohort):
    """Task-specific tiny models: CMS T1->T2 (30 steps, held-out L1 before / after), SR T1 2x and
    CMSR T1->T2 2x (2 steps each: enough for grids and refusals)."""
    tmp, sheet = cohort
    out = {}
    for name, (src, tgt, ratio, steps) in {"cms": ("T1", "T2", 1.0, 30), "sr": ("T1", "T1", 2.0, 2), "cmsr": ("T1", "T2", 2.0, 2)}.items():
        cfg = _cfg(steps, src, tgt, ratio)
        run = tmp / f"run_{name}"
        if name == "cms":
            test_ds = build_dataset(cfg, sheet, split="test")
            batch = torch.utils.data.default_collate([test_ds[i] for i in range(len(test_ds))])

            def held_out(G) -> float:
                with torch.no_grad():
                    return float((G.eval()(batch["x_in"], batch["delta"], batch["c_out"]) - batch["y"]).abs().mean())

            torch.manual_seed(cfg.run.seed)
            before = held_out(ScganGenerator(scgan_config(cfg.model)))  # the trainer's initialisation (same seed)
        res = train(cfg, sheet, run, progress=False)
        out[name] = {"run": run, "cfg": cfg, "trainer": res["trainer"]}
        if name == "cms":
            out[name].update(before=before, after=held_out(res["trainer"].ema.model))
    return out


# --- network ---------------------------------------------------------------------------------
def test_registry_row_is_table_v():
    spec = METHODS["scgan"]
    assert spec.display == "SC-GAN" and spec.dims == "3D" and spec.trainable
    assert [spec.capability(t) for t in TASKS] == ["spec", "spec", "spec"]  # task-specific for CMS, SR, CMSR
    assert spec.predictor == "volume" and spec.dataset == "patch3d"


def test_published_size():
    cfg = ScganConfig.paper()
    G, D = build_scgan(cfg)
    # 8-level U-Net 64..512 (kernels 5,5,5,5,3,3,3,2), three self-attentions; 4-level PatchGAN
    assert sum(p.numel() for p in G.parameters()) == 132_857_354
    assert sum(p.numel() for p in D.parameters()) == 21_668_674
    tiny_g, tiny_d = build_scgan(ScganConfig.tiny())
    assert sum(p.numel() for p in tiny_g.parameters()) < 30_000 and sum(p.numel() for p in tiny_d.parameters()) < 10_000


def test_forward_backward_cpu_spectral_norm_and_attention():
    cfg = ScganConfig.tiny()
    torch.manual_seed(0)
    G, D = build_scgan(cfg)
    x = torch.randn(2, 1, *cfg.patch_shape)
    y = G(x, None, None)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1.0  # tanh output
    logits = D(x, y, None, None)
    assert logits.shape == (2, 1, 2, 4, 4)  # one logit per patch
    (logits.mean() + y.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters() if p.requires_grad)
    # every convolution is spectrally normalised; its largest singular value is about 1
    convs = [m for m in list(G.modules()) + list(D.modules()) if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    G.train()
    for _ in range(30):  # power iterations converge
        G(x, None, None)
    w = G.down[1][0].weight.detach().flatten(1)
    assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, abs=0.05)
    # three attentions in G (encoder, decoder, output), one in D; sigma = 0 at start -> identity
    assert sum(isinstance(m, SelfAttention3d) for m in G.modules()) == 3
    assert sum(isinstance(m, SelfAttention3d) for m in D.modules()) == 1
    att = SelfAttention3d(8).eval()
    h = torch.randn(1, 8, 4, 4, 4)
    assert torch.allclose(att(h), h)
    with torch.no_grad():
        att.sigma.fill_(0.5)
    assert not torch.allclose(att(h), h)


def test_wrong_patch_sizes_are_errors():
    G = ScganGenerator(ScganConfig.tiny())
    with pytest.raises(ValueError, match="multiples of 8"):
        G(torch.zeros(1, 1, 8, 12, 16))
    with pytest.raises(ValueError, match=r"\[B, 1, D, H, W\]"):
        G(torch.zeros(1, 2, 8, 16, 16))


@pytest.mark.parametrize("bad,msg", [
    ({"patch_size": [8, 12, 16]}, "multiples of 2\\*\\*3"), ({"channels": [8, 16]}, "equal length"),
    ({"attention_level": 4}, "attention_level"), ({"num_inputs": 2}, "num_inputs"), ({"dropout": 1.0}, "dropout"),
    ({"window": [8, 12, 16]}, "window"), ({"interpolation": "nearest"}, "interpolation"), ({"nope": 1}, "unknown SC-GAN model key"), ({"preset": "huge"}, "preset"),
])
def test_invalid_configs(bad, msg):
    with pytest.raises(ValueError, match=msg):
        scgan_config({"preset": "tiny", **bad})


# --- training --------------------------------------------------------------------------------
def test_training_lowers_held_out_l1(models):
    m = models["cms"]
    assert m["after"] < 0.85 * m["before"], (m["before"], m["after"])
    rows = list(csv.DictReader(open(m["run"] / "log.csv")))
    assert len(rows) == 30 and {"D_loss", "G_adv", "G_l1"} <= set(rows[0])


def test_checkpoints_load_weights_only(models):
    run = models["sr"]["run"]
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and ck["D"] and any("parametrizations" in k for k in ck["G"])
    model = torch.load(run / "model.pt", weights_only=True)
    assert model["method"] == "scgan" and list(model["train_config"]["data"]["ratios"]) == [2.0]
    G = ScganGenerator(scgan_config(model["model_config"]))
    G.load_state_dict(model["state_dict"])


def test_resume_continues_a_killed_run(cohort):
    tmp, sheet = cohort
    cfg = _cfg(12, "T1", "T2", 1.0)
    a = train(cfg, sheet, tmp / "straight", progress=False)
    b1 = train(cfg, sheet, tmp / "killed", progress=False, stop_after=10)  # killed after the step-10 checkpoint
    assert b1["step"] == 10
    b2 = train(cfg, sheet, tmp / "killed", resume=True, progress=False)
    assert b2["step"] == 12
    load = lambda p: {r["step"]: (float(r["G_loss"]), float(r["D_loss"])) for r in csv.DictReader(open(p / "log.csv"))}  # noqa: E731
    la, lb = load(tmp / "straight"), load(tmp / "killed")
    assert la.keys() == lb.keys()
    for s in la:
        assert lb[s] == pytest.approx(la[s], rel=1e-5, abs=1e-6), s
    for (k, pa), pb in zip(a["trainer"].G.state_dict().items(), b2["trainer"].G.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), k


# --- synthesis -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def volumes(cohort):
    """The test subject's HR T1 / T2 (1.25 mm slices) and the 2x thick-slice T1."""
    tmp, sheet = cohort
    rows = list(csv.DictReader(open(sheet)))
    out = {}
    for mod in ("T1", "T2"):
        data, img = load_volume(sheet.parent / next(r["path"] for r in rows if r["split"] == "test" and r["modality"] == mod))
        aff = img.affine.copy()
        aff[:3, 2] *= HR_THICK / np.linalg.norm(aff[:3, 2])
        out[mod] = tmp / f"hr_{mod}.nii.gz"
        save_volume(out[mod], data, aff)
        out[f"{mod}_data"] = data
    grid = Grid(out["T1_data"].shape, aff, 2)
    lr, _ = degrade_array(out["T1_data"], 2.0, axis=2)
    out["T1_2x"] = tmp / "lr_T1_2x.nii.gz"
    save_volume(out["T1_2x"], lr, thick_slice_grid(grid, 2 * HR_THICK).matrix)
    out["grid"] = grid
    return out


@pytest.mark.parametrize("task,src,source,target", [
    ("cms", "T1", "T1", "T2"), ("sr", "T1_2x", "T1", "T1"), ("cmsr", "T1_2x", "T1", "T2"),
])
def test_synthesize_each_task_on_the_target_grid(models, volumes, tmp_path, task, src, source, target):
    out = tmp_path / f"{task}.nii.gz"
    assert main(["synthesize", "--checkpoint", str(models[task]["run"] / "model.pt"), "--input", str(volumes[src]), "--from", source,
                 "--to", target, "--like", str(volumes[target]), "--out", str(out), "--no-progress"]) == 0
    img = nib.load(str(out))
    assert img.shape == volumes["grid"].shape and np.allclose(img.affine, volumes["grid"].matrix, atol=1e-4)
    pred = np.asarray(img.dataobj, dtype=np.float32)
    assert np.all(np.isfinite(pred)) and pred.min() >= 0.0 and pred.max() <= 1.0
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["task"] == task and meta["method"] == "scgan"
    if task == "cms":  # the 30-step model is closer to the target than its initial output (0.5 everywhere)
        err = float(np.abs(pred - volumes["T2_data"]).mean())
        assert err < float(np.abs(0.5 - volumes["T2_data"]).mean()), err


def test_a_model_refuses_a_target_it_was_not_trained_for(models, volumes, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main(["synthesize", "--checkpoint", str(models["cms"]["run"] / "model.pt"), "--input", str(volumes["T1_2x"]), "--from", "T1",
                 "--to", "T1", "--thickness", str(HR_THICK), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unicoal: error:") and "T1" in err[0], err
    assert not out.exists()


def test_chunked_attention_is_exact(monkeypatch):
    import unicoal.models.baselines.scgan as scgan

    torch.manual_seed(1)
    att = SelfAttention3d(8, 2).eval()
    with torch.no_grad():
        att.sigma.fill_(0.7)
    x = torch.randn(2, 8, 8, 8, 8)
    with torch.no_grad():
        whole = att(x)
        monkeypatch.setattr(scgan, "_CHUNK", 100)  # 3 query locations per chunk
        chunked = att(x)
    assert torch.allclose(whole, chunked, atol=1e-6)

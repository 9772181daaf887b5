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


def _authors_parameters() -> tuple[int, int]:
    """Trainable variables of the authors' TensorFlow graph at img_size 256, one source channel,
    counted from their layer table (Haoyulance/SC-GAN src/utils/generator.py ``_build_encoder``
    line 31 / ``_build_decoder`` line 61, src/utils/discriminator.py ``_build_discriminator`` line 31, src/utils/util.py
    ``snconv3d`` (filters, no bias), ``sn_attention`` (four 1x1x1 projections + sigma_ratio),
    ``batch_norm`` (gamma, beta); the spectral-norm ``u`` vectors are not trainable)."""
    def attn(c):
        ck, cv = c // 8 or 4, c // 2 or 16
        return 2 * c * ck + c * cv + cv * c + 1

    enc = [(5, 1, 64), (5, 64, 128), (5, 128, 256), (5, 256, 512), (3, 512, 512), (3, 512, 512), (3, 512, 512), (2, 512, 512)]
    dec = [(2, 512, 512), (3, 1024, 512), (3, 1024, 512), (3, 1024, 512), (5, 1024, 256), (5, 512, 128), (5, 256, 64), (5, 128, 1)]
    g = sum(k**3 * i * o for k, i, o in enc) + sum(2 * o for _, _, o in enc[1:]) + attn(512)  # l1 has no batch norm
    g += sum(k**3 * i * o + 2 * o for k, i, o in dec) + attn(256) + 3**3 * 1 * 1 + attn(1)  # dl1..dl8, decoder attention, final
    d = sum(5**3 * i * o for i, o in ((2, 64), (64, 128), (128, 256), (256, 512))) + 2 * (128 + 256 + 512) + attn(256)
    d += 5**3 * 512 * 1 + 2  # l5: conv to one channel, batch norm
    return g, d


def test_published_size_matches_the_authors_code():
    cfg = ScganConfig.paper()
    G, D = build_scgan(cfg)
    g, d = _authors_parameters()
    assert (g, d) == (132_851_848, 21_667_715)
    assert sum(p.numel() for p in G.parameters()) == g
    # our discriminator leaves out the final batch norm on the logit map (2 parameters; module doc)
    assert sum(p.numel() for p in D.parameters()) == d - 2
    # batch norm with TensorFlow's defaults; instance norm as the option
    bns = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 15 and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    G_in = build_scgan(ScganConfig.tiny(norm="instance"))[0]
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in G_in.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in G_in.modules())
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


# --- the authors' recipe -----------------------------------------------------------------------
def test_config_is_the_authors_recipe(capsys):
    """lr 1e-3 for G and D, constant (their optimisers get the initial float; the cosine decay
    only feeds a summary), beta1 0.5, the four extra loss weights; `--dry-run` prints it."""
    from unicoal.train.schedule import lr_factor

    cfg = load_config("scgan")
    o = cfg.optim
    assert (o.lr_g, o.lr_d, o.betas[0], o.decay_start) == (1e-3, 1e-3, 0.5, 1.0)
    assert all(lr_factor(s, 1000, o.decay_start) == 1.0 for s in range(0, 1000, 7))  # constant to the end
    m = scgan_config(cfg.model)
    assert (m.norm, m.feature_matching_weight, m.rmse_weight, m.weight_decay_g, m.weight_decay_d) == ("batch", 20.0, 200.0, 1e-3, 1e-3)
    assert cfg.loss.l1_weight == 200 and cfg.optim.update_order == "g_then_d"  # G step, then D step (training.py)
    assert main(["train", "--config", "scgan", "--dry-run"]) == 0
    printed = capsys.readouterr()
    shown = json.loads(printed.out)
    assert shown["optim"]["lr_g"] == shown["optim"]["lr_d"] == 1e-3 and shown["optim"]["decay_start"] == 1.0
    assert "lr G 0.001, D 0.001: constant (no decay)" in printed.err
    # parity official: the Uni-COAL authors' scgan_model.py (L1 + GAN only, D first, lr 2e-4 decaying)
    off_cfg = load_config("scgan", {"parity": "official"})
    off = scgan_config(off_cfg.model)
    assert off.feature_matching_weight == 0 and off.rmse_weight == 0 and off.weight_decay_g == 1e-3
    assert (off_cfg.loss.gan, off_cfg.loss.l1_weight, off_cfg.optim.update_order, off_cfg.optim.lr_g, off_cfg.optim.decay_start) == ("vanilla", 100, "d_then_g", 2e-4, 0.5)


def _terms_setup(seed=0):
    from unicoal.train.config import LossConfig
    from unicoal.train.losses import UniCoalLoss

    torch.manual_seed(seed)
    cfg = ScganConfig.tiny()
    G, D = build_scgan(cfg)
    G.eval(), D.eval()  # no dropout, no power iterations: repeated passes agree exactly
    loss_cfg = LossConfig(r1_gamma=0, l1_weight=200, sam_weight=0, blur_sigma=0)
    x = torch.rand(2, 1, *cfg.patch_shape) * 2 - 1
    y = torch.rand(2, 1, *cfg.patch_shape) * 2 - 1
    y[:, :, :, :4] = -1.0  # background rows: outside the brain area
    batch = {"x_in": x, "y": y, "mask": (y != -1).float(), "delta": torch.zeros(2, cfg.patch_shape[0]), "c_out": torch.zeros(2, dtype=torch.long)}
    return G, D, UniCoalLoss(G, D, loss_cfg), batch


def test_generator_loss_has_the_authors_terms():
    from unicoal.train.losses import gan_loss
    from unicoal.train.losses_volume import weight_l2

    G, D, loss, batch = _terms_setup()
    assert loss.terms is not None and D.keep_features
    total, stats = loss.generator_loss(batch, None, 0.0)
    with torch.no_grad():
        fake = G(batch["x_in"], None, None)
        D(batch["x_in"], fake)
        f_fake = D.features  # the authors' _perceptual_fmap of the generated pair
        D(batch["x_in"], batch["y"])
        f_real = D.features
        assert len(f_fake) == 3  # tiny D: two conv levels + the attention (published: 4 levels + attention = 5)
        fm = torch.stack([(r - f).abs().mean() for r, f in zip(f_real, f_fake)]).mean()
        m = batch["mask"].bool()
        rmse = torch.sqrt(((fake - batch["y"])[m]).square().mean())
        l1 = (fake - batch["y"]).abs().mean()
        reg = 1e-3 * weight_l2(G)
        adv = gan_loss(D(batch["x_in"], fake), True)
    assert float(stats["G_rmse"]) == pytest.approx(float(rmse), rel=1e-4)
    assert float(stats["G_fm"]) == pytest.approx(float(fm), rel=1e-4)
    assert float(stats["G_l2reg"]) == pytest.approx(float(reg), rel=1e-4)
    want = adv + 200 * l1 + 200 * rmse + 20 * fm + reg
    assert float(total.detach()) == pytest.approx(float(want), rel=1e-4)
    # the RMSE ignores the background: changing the output there leaves it unchanged
    fake2 = fake.clone()
    fake2[~m] = 0.3
    with torch.no_grad():
        D(batch["x_in"], fake2)
        assert float(loss.terms.generator(batch, fake2, batch["y"])[1]["G_rmse"]) == pytest.approx(float(rmse), rel=1e-5)
    # the discriminator's loss carries its own L2 term
    _, d_stats = loss.discriminator_loss(batch, None, 0.0, False)
    assert float(d_stats["D_l2reg"]) == pytest.approx(float(1e-3 * weight_l2(D)), rel=1e-4)


def test_terms_vanish_below_the_authors_floors():
    from unicoal.train.losses_volume import D_REG_FLOOR, FM_FLOOR, G_REG_FLOOR, _floored

    assert float(_floored(torch.tensor(FM_FLOOR * 0.99), FM_FLOOR)) == 0.0
    assert float(_floored(torch.tensor(FM_FLOOR * 1.01), FM_FLOOR)) == pytest.approx(FM_FLOOR * 1.01)
    assert (FM_FLOOR, G_REG_FLOOR, D_REG_FLOOR) == (2e-4, 1e-5, 5e-5)  # src/net.py
    G, D, loss, batch = _terms_setup()
    with torch.no_grad():  # identical real and generated pairs: no feature-matching loss, no gradient
        D(batch["x_in"], batch["y"])
    stats = loss.terms.generator(batch, batch["y"].clone(), batch["y"])[1]
    assert float(stats["G_fm"]) == 0.0


def test_rmse_needs_the_mask_and_fm_needs_d():
    from unicoal.train.config import LossConfig
    from unicoal.train.losses_volume import ScganTerms

    G, D, loss, batch = _terms_setup()
    with pytest.raises(KeyError, match="mask"):
        loss.generator_loss({k: v for k, v in batch.items() if k != "mask"}, None, 0.0)
    with pytest.raises(ValueError, match="feature-matching"):
        ScganTerms(G, None, LossConfig(adversarial=False))


@pytest.mark.parametrize("bad,msg", [
    ({"patch_size": [8, 12, 16]}, "multiples of 2\\*\\*3"), ({"channels": [8, 16]}, "equal length"),
    ({"attention_level": 4}, "attention_level"), ({"num_inputs": 2}, "num_inputs"), ({"dropout": 1.0}, "dropout"),
    ({"window": [8, 12, 16]}, "window"), ({"interpolation": "nearest"}, "interpolation"), ({"nope": 1}, "unknown SC-GAN model key"), ({"preset": "huge"}, "preset"),
    ({"norm": "group"}, "norm"), ({"rmse_weight": -1}, "rmse_weight"),
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


def test_single_value_maps_pass_the_norm_in_training_and_synthesis_alike():
    """The 256^3 bottleneck at batch 1 has one value per channel: batch norm passes it through
    (module doc), in training and at synthesis; trained on a larger batch, synthesis normalises."""
    from unicoal.models.baselines.scgan import _Norm

    norm = _Norm(3, "batch")
    x = torch.randn(1, 3, 1, 1, 1)
    assert torch.equal(norm.train()(x), x) and torch.equal(norm.eval()(x), x)
    norm.train()(torch.randn(2, 3, 1, 1, 1) * 3 + 1)
    assert not torch.equal(norm.eval()(x), x)
    assert torch.equal(_Norm(3, "instance")(x), x)

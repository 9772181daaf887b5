"""ResViT baseline: network shapes and checks, the two-phase schedule, ImageNet ViT weights,
training on the synthetic cohort, synthesis on the target grid, checkpoints and resume."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unicoal.errors import InputError
from unicoal.models.baselines.resvit import ResViTConfig, build_resvit, resvit_config
from unicoal.train.config import load_config
from unicoal.train.loop import build_dataset, train
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)
THICK = 1.25


def _cfg(steps: int, **model):
    over = {
        "model": {"modalities": ["T1", "T2"], **model},
        "data": {"input_modalities": ["T1", "T2"], "output_modalities": ["T1", "T2"]},
        "optim": {"total_steps": steps},
        "run": {"checkpoint_every": 2, "log_every": 1, "tensorboard": False},
    }
    return load_config("resvit_tiny", over)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    # 3 train subjects, 1 validation subject (held out), 64 x 64 slices, 1.25 mm slice axis
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort"), subjects=4, shape=(64, 64, 16), spacing=(1.0, 1.0, THICK),
                                 modalities=("T1", "T2"), splits=["train", "train", "train", "val"])


def _heldout_l1(G, sheet, cfg) -> float:
    """Mean |G(x) - y| in [0, 1] units over fixed validation items (CMS, both directions)."""
    ds = build_dataset(cfg, sheet, split="val")
    G = G.eval()
    errs = []
    with torch.no_grad():
        for i in range(0, len(ds), 2):
            item = ds[i]
            y = G(item["x_in"][None], item["delta"][None], item["c_out"][None])
            errs.append(float((y - item["y"][None]).abs().mean()) / 2.0)
    return float(np.mean(errs))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sheet):
    """A tiny ResViT trained for 36 steps (transformer on from step 24) and its untrained twin."""
    cfg = _cfg(36)
    torch.manual_seed(cfg.run.seed)
    G0, _ = build_resvit(resvit_config(cfg.model))
    run = tmp_path_factory.mktemp("resvit") / "run"
    out = train(cfg, sheet, run, progress=False)
    return {"cfg": cfg, "run": run, "G0": G0, "out": out}


# --- network -----------------------------------------------------------------------------------
def test_forward_backward_and_phases_cpu():
    cfg = ResViTConfig.tiny(modalities=("T1", "T2", "PD"))
    torch.manual_seed(0)
    G, D = build_resvit(cfg)
    x, c = torch.randn(2, 1, 64, 64), torch.tensor([0, 2])
    assert G.phase == "pretrain"
    y = G(x, None, c)
    assert y.shape == (2, 1, 64, 64) and float(y.detach().abs().max()) <= 1.0
    logits = D(x, y, None, c)
    assert logits.shape == (2, 1, 6, 6)  # 70 x 70-style PatchGAN at 64 x 64
    (y.square().mean() + logits.mean()).backward()
    vit = list(G.transformer.parameters())
    assert all(p.grad is None for p in vit)  # CNN pre-training: the transformer is not used
    assert all(torch.isfinite(p.grad).all() for p in G.encoder.parameters())
    G.zero_grad(set_to_none=True)
    G.set_train_step(5, 9)  # boundary round(2/3 * 9) = 6: still pre-training
    assert G.phase == "pretrain"
    G.set_train_step(6, 9)
    assert G.phase == "finetune" and int(G.transformer_on) == 1
    y2 = G(x, None, c)
    assert not torch.allclose(y2, y)  # the transformer branch changes the output
    y2.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vit)
    # the target modality conditions the output
    assert not torch.allclose(G(x, None, torch.tensor([0, 0])), G(x, None, torch.tensor([1, 1])))


def test_published_size_and_layout():
    cfg = ResViTConfig.paper()
    G, D = build_resvit(cfg)
    assert cfg.grid == 16 and cfg.transformer_blocks == (1, 6) and cfg.num_art == 9
    assert [b.with_transformer for b in G.art] == [True, False, False, False, False, True, False, False, False]
    assert len(G.transformer.blocks) == 12 and G.art[0].pos_embed.shape == (1, 256, 768)
    # The authors' numbers: github.com/icon-lab/ResViT models/residual_transformers.py ResViT(CONFIGS
    # ['Res-ViT-B_16'], img_size=256, output_dim=1) instantiated with input_dim 1 (resvit_one) holds
    # 123,441,537 parameters (Res_CNN, the pre-training network: 11,370,881); their NLayerDiscriminator
    # (--norm batch, ndf 64) on 1 + 1 channels 2,764,609. Ours without conditioning is that network.
    one, d_one = build_resvit(ResViTConfig.paper(condition=False))
    assert sum(p.numel() for p in one.parameters()) == 123_441_537
    assert sum(p.numel() for p in d_one.parameters()) == 2_764_609
    # the unified model reads 3 one-hot planes more: 3 x 7 x 7 x 64 weights
    assert sum(p.numel() for p in G.parameters()) == 123_441_537 + 3 * 49 * 64


@pytest.mark.parametrize("kw,match", [
    ({"img_resolution": 72}, "multiple of 16"),
    ({"num_inputs": 4}, "num_inputs must be 1"),
    ({"transformer_blocks": (1, 12)}, "transformer_blocks"),
    ({"vit_dim": 30, "vit_heads": 4}, "divisible"),
    ({"pretrain_fraction": 1.5}, "pretrain_fraction"),
    ({"modalities": ("T1", "T1")}, "distinct"),
])
def test_invalid_configs(kw, match):
    with pytest.raises(ValueError, match=match):
        ResViTConfig.tiny(**kw)


def test_model_section_presets_and_unknown_keys():
    assert resvit_config({"preset": "tiny"}).ngf == 8 and resvit_config({}).ngf == 64
    with pytest.raises(ValueError, match="unknown ResViT model key"):
        resvit_config({"preset": "tiny", "num_layers": 3})
    with pytest.raises(ValueError, match="preset"):
        resvit_config({"preset": "huge"})


# --- ImageNet ViT weights ---------------------------------------------------------------------
def _timm_vit(cfg: ResViTConfig):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    return VisionTransformer(img_size=32, patch_size=16, embed_dim=cfg.vit_dim, depth=cfg.vit_depth + 1, num_heads=cfg.vit_heads,
                             mlp_ratio=cfg.vit_mlp_dim / cfg.vit_dim, num_classes=0)


def _to_npz(vit, path, depth: int):
    """Google's ViT .npz layout (the inverse of the loader's mapping, written out independently)."""
    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    dim = sd["norm.weight"].shape[0]
    heads = vit.blocks[0].attn.num_heads
    w = {"Transformer/encoder_norm/scale": sd["norm.weight"], "Transformer/encoder_norm/bias": sd["norm.bias"],
         "Transformer/posembed_input/pos_embedding": sd["pos_embed"]}
    for i in range(depth):
        b, r = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        a = r + "MultiHeadDotProductAttention_1/"
        q, k, v = np.split(sd[b + "attn.qkv.weight"], 3)
        qb, kb, vb = np.split(sd[b + "attn.qkv.bias"], 3)
        for name, wt, bias in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            w[a + f"{name}/kernel"] = wt.T.reshape(dim, heads, dim // heads)
            w[a + f"{name}/bias"] = bias.reshape(heads, dim // heads)
        w[a + "out/kernel"] = sd[b + "attn.proj.weight"].T.reshape(heads, dim // heads, dim)
        w[a + "out/bias"] = sd[b + "attn.proj.bias"]
        w[r + "LayerNorm_0/scale"], w[r + "LayerNorm_0/bias"] = sd[b + "norm1.weight"], sd[b + "norm1.bias"]
        w[r + "LayerNorm_2/scale"], w[r + "LayerNorm_2/bias"] = sd[b + "norm2.weight"], sd[b + "norm2.bias"]
        for j in (0, 1):
            w[r + f"MlpBlock_3/Dense_{j}/kernel"] = sd[b + f"mlp.fc{j + 1}.weight"].T
            w[r + f"MlpBlock_3/Dense_{j}/bias"] = sd[b + f"mlp.fc{j + 1}.bias"]
    np.savez(path, **w)


@pytest.mark.parametrize("fmt", ["pth", "npz"])
def test_imagenet_vit_weights_loaded_at_the_switch(tmp_path, fmt, caplog):
    cfg = ResViTConfig.tiny()
    vit = _timm_vit(cfg)
    path = tmp_path / f"vit.{fmt}"
    if fmt == "pth":
        torch.save({"model": vit.state_dict()}, path)
    else:
        _to_npz(vit, path, cfg.vit_depth)
    G, _ = build_resvit(ResViTConfig.tiny(vit_weights=str(path), pretrain_steps=3), discriminator=False)
    before = G.transformer.blocks[0].attn.qkv.weight.clone()
    G.set_train_step(2, 10)
    assert torch.equal(G.transformer.blocks[0].attn.qkv.weight, before)  # nothing read before the switch
    with caplog.at_level("WARNING"):
        G.set_train_step(3, 10)
    assert "ImageNet ViT weights" in caplog.text and str(path) in caplog.text
    for i in range(cfg.vit_depth):
        for name, p in vit.blocks[i].state_dict().items():
            torch.testing.assert_close(G.transformer.blocks[i].state_dict()[name], p, atol=1e-6, rtol=0)
    torch.testing.assert_close(G.transformer.norm.weight, vit.norm.weight)
    # 2 x 2 source grid (+ class token) resampled to the 4 x 4 token grid of a 64 x 64 input
    assert G.art[0].pos_embed.shape == (1, 16, cfg.vit_dim) and torch.equal(G.art[0].pos_embed, G.art[2].pos_embed)
    assert float(G.art[0].pos_embed.abs().sum()) > 0


def test_missing_or_mismatched_vit_weights(tmp_path, caplog):
    G, _ = build_resvit(ResViTConfig.tiny(vit_weights=str(tmp_path / "absent.npz")), discriminator=False)
    with pytest.raises(InputError, match="ImageNet ViT weights not found"):
        G.enable_transformer()
    vit = _timm_vit(ResViTConfig.tiny(vit_dim=64, vit_heads=2, vit_mlp_dim=128))
    torch.save(vit.state_dict(), tmp_path / "wide.pth")
    G, _ = build_resvit(ResViTConfig.tiny(vit_weights=str(tmp_path / "wide.pth")), discriminator=False)
    with pytest.raises(ValueError, match="vit_dim"):
        G.enable_transformer()
    G, _ = build_resvit(ResViTConfig.tiny(), discriminator=False)
    with caplog.at_level("WARNING"):
        G.enable_transformer(7)
    assert "from scratch" in caplog.text and "step 7" in caplog.text


# --- training, synthesis, checkpoints ------------------------------------------------------------
def test_training_lowers_heldout_l1(trained, sheet):
    cfg, run = trained["cfg"], trained["run"]
    G1, _ = build_resvit(resvit_config(cfg.model), discriminator=False)
    G1.load_state_dict(torch.load(run / "model.pt", weights_only=True)["state_dict"])
    assert G1.phase == "finetune"  # the switch at round(2/3 * 36) = 24 happened and was saved
    before, after = _heldout_l1(trained["G0"], sheet, cfg), _heldout_l1(G1, sheet, cfg)
    print(f"held-out L1 before {before:.4f} after {after:.4f}")
    assert after < 0.75 * before, (before, after)
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 36 and all(np.isfinite(float(r["G_l1"])) for r in rows)


def test_synthesize_cms_on_the_target_grid_and_refuse_sr_cmsr(trained, sheet, tmp_path):
    from unicoal.cohort.samplesheet import read_samplesheet
    from unicoal.infer import synthesize
    from unicoal.io import load_volume

    rows = {r.modality: r.path for r in read_samplesheet(sheet) if r.split == "val"}
    ckpt = trained["run"] / "model.pt"
    out = tmp_path / "t2.nii.gz"
    meta = synthesize([rows["T1"]], out, to="T2", thickness=THICK, source_modalities=["T1"], checkpoint=ckpt, batch_size=8, progress=False)
    data, img = load_volume(out)
    ref, ref_img = load_volume(rows["T2"])
    assert meta["task"] == "cms" and meta["method"] == "resvit"
    assert data.shape == ref.shape and np.allclose(img.affine, ref_img.affine, atol=1e-5)
    assert 0.0 <= data.min() and data.max() <= 1.0
    with pytest.raises(InputError, match="cannot perform SR"):
        synthesize([rows["T1"]], tmp_path / "sr.nii.gz", to="T1", thickness=THICK / 2, source_modalities=["T1"], checkpoint=ckpt, progress=False)
    with pytest.raises(InputError, match="cannot perform CMSR"):
        synthesize([rows["T1"]], tmp_path / "cmsr.nii.gz", to="T2", thickness=THICK / 2, source_modalities=["T1"], checkpoint=ckpt, progress=False)
    assert not (tmp_path / "sr.nii.gz").exists() and not (tmp_path / "cmsr.nii.gz").exists()


def test_resume_across_the_phase_switch_matches_uninterrupted_run(tmp_path, sheet):
    cfg = _cfg(4, pretrain_steps=2)

    def losses(run):
        with open(run / "log.csv") as fh:
            return {int(r["step"]): float(r["G_loss"]) for r in csv.DictReader(fh)}

    a = train(cfg, sheet, tmp_path / "a", progress=False)
    train(cfg, sheet, tmp_path / "b", progress=False, stop_after=2)  # killed after the step-2 checkpoint
    ck = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and int(ck["G"]["transformer_on"]) == 0
    b = train(cfg, sheet, tmp_path / "b", resume=True, progress=False)
    assert b["step"] == 4 and int(b["trainer"].G.transformer_on) == 1
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(lb) == [1, 2, 3, 4]
    for s in la:
        assert lb[s] == pytest.approx(la[s], rel=1e-5, abs=1e-6), s
    for k, v in a["trainer"].G.state_dict().items():
        assert torch.allclose(v.float(), b["trainer"].G.state_dict()[k].float(), atol=1e-6), k
    model = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert model["method"] == "resvit" and int(model["state_dict"]["transformer_on"]) == 1


def test_registry_row_is_table5():
    from unicoal.methods import get_method, methods_table

    spec = get_method("resvit")
    assert (spec.capability("cms"), spec.capability("sr"), spec.capability("cmsr")) == ("spec+in+out", "-", "-")
    assert spec.display == "ResViT" and spec.predictor == "slice" and spec.dims == "2D"
    line = next(l for l in methods_table().splitlines() if l.startswith("resvit"))
    assert "spec+in+out" in line


def _sheet_rows(tmp_path):
    from unicoal.cohort.samplesheet import SampleRow

    rows = []
    for i, split in enumerate(["test", "train", "train", "val"]):
        for m in ("T1", "T2", "PD", "FLAIR"):
            p = tmp_path / f"s{i}_{m}.nii.gz"
            p.touch()
            rows.append(SampleRow(f"s{i}", m, p, None, split))
    return rows


def test_plan_rows_train_one_tiny_model_per_dataset_in_the_test_profile(tmp_path):
    from unicoal.plan import build_plan, load_experiment
    from unicoal.train.config import load_config as load

    plan = build_plan([load_experiment("table1"), load_experiment("table4")], _sheet_rows(tmp_path), profile="test", methods=["resvit"])
    assert [j.method for j in plan.train] == ["resvit"]  # table1 (BraTS) and table4 (IXI) CMS T1 -> T2: one identical model
    job = plan.train[0]
    assert job.max_steps == 30 and job.config["base"] == "resvit_tiny" and sorted(job.tables) == ["table1", "table4"]
    cfg_path = tmp_path / "job.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(job.config))
    cfg = load(cfg_path)
    assert cfg.model["img_resolution"] == 64 and cfg.loss.gan == "lsgan" and cfg.optim.batch_size == 4
    assert {(s.cell.source, s.cell.target, s.cell.scale) for s in plan.synthesize} == {("T1", "T2", 1.0)}
    assert any("ResViT: cannot perform SR" in r for r in plan.skipped) and any("cannot perform CMSR" in r for r in plan.skipped)
    full = build_plan([load_experiment("table4")], _sheet_rows(tmp_path), profile="full", methods=["resvit"])
    assert full.train[0].max_steps is None and full.train[0].config["base"] == "resvit"
    explicit = build_plan([load_experiment("table4")], _sheet_rows(tmp_path), profile="test", methods=["resvit"], max_steps=7)
    assert explicit.train[0].max_steps == 7


# --- the authors' recipe: directions, fine-tuning restart, patch embedding, dropout, init ------
def test_unified_model_trains_only_the_directions_its_cells_evaluate(tmp_path):
    """Table I evaluates T1->T2, T2->FLAIR, FLAIR->T1 with one ResViT: its items are those three
    directions (not the six of inputs x outputs, nor the three identity copies)."""
    from unicoal.cohort.samplesheet import SampleRow
    from unicoal.plan import build_plan, load_experiment

    rows = []
    for i in range(5):
        for m in ("T1", "T2", "PD", "FLAIR"):
            (tmp_path / f"s{i}_{m}.nii.gz").touch()
            rows.append(SampleRow(f"s{i}", m, tmp_path / f"s{i}_{m}.nii.gz", None, "test" if i == 0 else "train"))
    plan = build_plan([load_experiment("table1")], rows, profile="full", methods=["resvit"])
    (job,) = plan.train
    cfg = load_config("resvit", job.config)
    assert {(a, b) for a, b, _ in cfg.data.draws()} == {("T1", "T2"), ("T2", "FLAIR"), ("FLAIR", "T1")}


def _fixed_batch(cfg, seed=0):
    s = cfg.model["img_resolution"]
    g = torch.Generator().manual_seed(seed)
    return {"x_in": torch.rand(1, 1, s, s, generator=g) * 2 - 1, "y": torch.rand(1, 1, s, s, generator=g) * 2 - 1,
            "delta": torch.zeros(1), "c_out": torch.tensor([1])}


def test_finetuning_restarts_adam_at_1e3_with_a_fresh_discriminator(caplog):
    """The authors' second run: a new Adam at lr 1e-3 (25 + 25 epochs: constant, then linear decay)
    for G and D, and a newly initialised discriminator."""
    from unicoal.train.distributed import DistInfo
    from unicoal.train.loop import Trainer

    cfg = load_config("resvit_tiny", {"model": {"modalities": ["T1", "T2"], "pretrain_steps": 4},
                                       "data": {"input_modalities": ["T1", "T2"], "output_modalities": ["T1", "T2"]},
                                       "optim": {"total_steps": 8, "batch_size": 1}, "run": {"tensorboard": False}})
    assert cfg.optim.update_order == "d_then_g" and cfg.model["finetune_lr"] == 1e-3
    torch.manual_seed(0)
    tr = Trainer(cfg, steps_per_epoch=4, info=DistInfo(device="cpu"))
    resets = []
    reset = tr.D.reset_parameters
    tr.D.reset_parameters = lambda: (resets.append(tr.step), reset())[1]
    batch = _fixed_batch(cfg)
    lr_g, lr_d, steps = [], [], []
    enc = tr.G.encoder[1].weight
    with caplog.at_level("WARNING"):
        for _ in range(8):
            lr_g.append(tr.opt_G.param_groups[0]["lr"])
            lr_d.append(tr.opt_D.param_groups[0]["lr"])
            d_before = tr.D.patch.net[0].weight.detach().clone() if tr.step == 4 else None
            tr.train_step(batch)
            steps.append(int(tr.opt_G.state[enc]["step"]))
            if d_before is not None:  # D was re-drawn N(0, 0.02), then took one step of lr 1e-3
                w = tr.D.patch.net[0].weight.detach()
                assert not torch.allclose(w, d_before, atol=1e-2)
                assert abs(float(w.std()) - 0.02) < 0.006
    assert resets == [4]
    assert "transformer fine-tuning" in caplog.text and "Adam restarted" in caplog.text
    assert lr_g == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4, 1e-3, 1e-3, 1e-3, 5e-4])
    assert lr_d == pytest.approx(lr_g)
    assert steps == [1, 2, 3, 4, 1, 2, 3, 4]  # Adam's step count restarts with the phase


def test_r50_vit_patch_embedding_is_loaded_into_both_transformer_blocks(tmp_path):
    cfg = ResViTConfig.tiny()
    vit = _timm_vit(cfg)
    path = tmp_path / "r50_vit.npz"
    _to_npz(vit, path, cfg.vit_depth)
    w = dict(np.load(path))
    rng = np.random.default_rng(0)
    w["embedding/kernel"] = rng.standard_normal((1, 1, cfg.vit_in_channels, cfg.vit_dim)).astype(np.float32)  # R50+ViT-B_16 layout
    w["embedding/bias"] = rng.standard_normal(cfg.vit_dim).astype(np.float32)
    np.savez(path, **w)
    G, _ = build_resvit(ResViTConfig.tiny(vit_weights=str(path)), discriminator=False)
    G.enable_transformer()
    want = torch.from_numpy(w["embedding/kernel"]).permute(3, 2, 0, 1)
    for blk in (G.art[0], G.art[2]):
        torch.testing.assert_close(blk.patch_embed.weight.detach(), want)
        torch.testing.assert_close(blk.patch_embed.bias.detach(), torch.from_numpy(w["embedding/bias"]))


def test_transformer_dropout_and_initialisation_are_the_authors():
    torch.manual_seed(0)
    G, D = build_resvit(ResViTConfig.paper())
    blk = G.transformer.blocks[0]
    assert blk.attn.attn_drop.p == 0.0 and blk.attn.proj_drop.p == 0.0  # attention_dropout_rate feeds both
    assert blk.mlp.drop1.p == 0.1 and blk.mlp.drop2.p == 0.1
    fan = G.cfg.vit_dim
    # attention: PyTorch's Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    assert float(blk.attn.qkv.weight.abs().max()) <= 1 / fan ** 0.5 and float(blk.attn.qkv.bias.abs().max()) > 0.5 / fan ** 0.5
    # MLP: Xavier-uniform weights, N(0, 1e-6) biases (the authors' Mlp._init_weights)
    bound = (6 / (fan + G.cfg.vit_mlp_dim)) ** 0.5
    assert float(blk.mlp.fc1.weight.abs().max()) <= bound and float(blk.mlp.fc1.weight.abs().max()) > 0.9 * bound
    assert float(blk.mlp.fc1.bias.abs().max()) < 1e-5
    # CNN layers: PyTorch's default (no init_weights in the authors' define_G), D: N(0, 0.02)
    conv = G.encoder[1].weight
    assert abs(float(conv.std()) - 1 / (3 * conv[0].numel()) ** 0.5) < 0.01
    assert abs(float(D.patch.net[0].weight.std()) - 0.02) < 0.003

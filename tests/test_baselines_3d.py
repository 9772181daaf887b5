"""DCSRN, DeepResolve and SynthSR at their tiny size: networks, training, resume, synthesis, tasks."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from unicoal.errors import InputError
from unicoal.geometry import Grid
from unicoal.methods import get_method
from unicoal.train.config import load_config
from unicoal.train.loop import train

torch.set_num_threads(1)
METHODS = ("deepresolve", "dcsrn", "synthsr")
#: trainable parameters at the published size, from the authors' code (stated in each module's docstring):
#: SynthSR: BBillot/SynthSR ext/neuron/models.py unet(nb_features=24, nb_levels=5, feat_mult=2,
#: nb_conv_per_level=2, batch_norm=-1) as SynthSR/training.py builds it (line 339: batch_norm=-1);
#: DeepResolve: the Uni-COAL authors' DeepResolve(1, 1, n_feats=64, n_blocks=18) (zhiyuns/UniCOAL
#: models/networks/deepresolve.py, models/deepresolve_model.py line 14); DCSRN: no public code of the
#: paper (k = 24, 4 units, a 1x1x1 output convolution, counted here)
PUBLISHED_PARAMS = {"deepresolve": 1_995_329, "dcsrn": 219_985, "synthsr": 13_239_841}


def _tiny(name, **model):
    spec = get_method(name)
    return spec, spec.model_config({"preset": "tiny", "modalities": ["T1"], **model})


@pytest.mark.parametrize("name", METHODS)
def test_forward_backward_step_on_cpu(name):
    spec, cfg = _tiny(name)
    torch.manual_seed(0)
    G, D = spec.build_models(cfg, discriminator=True)
    assert D is None  # pixel losses only
    x = torch.rand(2, 1, *cfg.patch_size) * 2 - 1
    y = torch.rand(2, 1, *cfg.patch_size) * 2 - 1
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    losses, moved = [], {n: False for n, _ in G.named_parameters()}
    for _ in range(3):
        opt.zero_grad()
        out = G(x, torch.zeros(2, cfg.patch_size[0]), torch.zeros(2, dtype=torch.long), None)
        assert out.shape == y.shape
        loss = (out - y).abs().mean()
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in G.parameters())
        for n, p in G.named_parameters():
            moved[n] |= p.grad is not None and float(p.grad.abs().sum()) > 0
        opt.step()
        losses.append(float(loss))
    # every parameter takes part (DeepResolve's from the second step: its last layer starts at zero)
    assert all(moved.values()), [n for n, v in moved.items() if not v]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", METHODS)
def test_published_size(name):
    spec = get_method(name)
    G, _ = spec.build_models(spec.model_config({}), discriminator=False)
    assert sum(p.numel() for p in G.parameters()) == PUBLISHED_PARAMS[name]
    assert f"{PUBLISHED_PARAMS[name]:,}" in __import__(f"unicoal.models.baselines.{name}", fromlist=["x"]).__doc__


@pytest.mark.parametrize("name", METHODS)
def test_receptive_radius_bounds_the_dependence(name):
    """The centre output voxel does not depend on inputs farther than ``receptive_radius``."""
    spec, cfg = _tiny(name)
    torch.manual_seed(1)
    G, _ = spec.build_models(cfg, discriminator=False)
    with torch.no_grad():
        for p in G.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.1)
    G.eval()
    r = G.receptive_radius
    n = 2 * r + 4 * G.size_multiple
    n = -(-n // G.size_multiple) * G.size_multiple
    x = torch.randn(1, 1, n, n, n, requires_grad=True)
    c = n // 2
    G(x)[0, 0, c, c, c].backward()
    g = x.grad[0, 0].abs()
    idx = torch.nonzero(g > 0)
    assert int((idx - c).abs().max()) <= r
    assert int((idx - c).abs().max()) >= r // 2  # the bound is not vacuous


def test_registry_rows_follow_table_v(capsys):
    """SynthSR as Table V states it (reports/reference/table5.csv); DCSRN and DeepResolve (not in
    Table V) as their papers: SR only, one model per modality and scale."""
    from pathlib import Path

    from unicoal.cli import main

    ref = Path(__file__).resolve().parents[1] / "reports" / "reference" / "table5.csv"
    cells = {(r["task"].lower(), r["metric"]): r["mean"] == "1" for r in csv.DictReader(ref.open()) if r["method"] == "SynthSR"}
    spec = get_method("synthsr")
    for task in ("cms", "sr", "cmsr"):
        assert (task in spec.tasks) == cells[(task, "Spec.")]
        assert (task in spec.arbitrary_in) == cells[(task, "Arb. In")]
        assert (task in spec.arbitrary_out) == cells[(task, "Arb. Out")]
    for name in ("dcsrn", "deepresolve"):
        m = get_method(name)
        assert m.tasks == {"sr"} and not m.arbitrary_in and not m.arbitrary_out
    for name in METHODS:
        m = get_method(name)
        assert m.dims == "3D" and m.predictor == "volume" and m.dataset == "patch3d" and m.trainable
    assert main(["methods", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert [rows["synthsr"][t] for t in ("cms", "sr", "cmsr")] == ["spec+in"] * 3
    assert [rows["deepresolve"][t] for t in ("cms", "sr", "cmsr")] == ["-", "spec", "-"]
    assert rows["dcsrn"]["display"] == "DCSRN" and rows["dcsrn"]["sr"] == "spec"


def test_synthsr_batch_norm_and_skips_as_the_authors():
    """Batch norm (Keras defaults) after every encoder and decoder level; the skip carries a
    level's last convolution *before* its batch norm, first in the concatenation (conv_dec)."""
    spec, cfg = _tiny("synthsr")
    G, _ = spec.build_models(cfg)
    bns = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 2 * cfg.levels - 1 and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    seen = {}
    G.down[0].register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o.detach()))
    G.up[0].register_forward_pre_hook(lambda m, i: seen.__setitem__("up_in", i[0].detach()))
    G.train()(torch.randn(2, 1, *cfg.patch_size))
    c = cfg.features
    torch.testing.assert_close(seen["up_in"][:, :c], seen["conv"])
    # the Uni-COAL authors' U-Net (parity official): no normalisation, 13,237,633 parameters
    off = load_config("synthsr", {"parity": "official"})
    G_off, _ = spec.build_models(spec.model_config(off.model))
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in G_off.modules())
    assert sum(p.numel() for p in G_off.parameters()) == 13_237_633
    m = spec.model_config(load_config("synthsr").model)
    assert (m.batch_norm, m.pad_multiple, m.pad_centred, m.flip_axis) == (True, 32, True, 1)  # predict_command_line.py
    assert (off.model["flip_axis"], off.model["pad_centred"]) == (None, False)


def test_deepresolve_trains_with_the_papers_l2_loss():
    from unicoal.train.losses import UniCoalLoss

    cfg = load_config("deepresolve")
    assert cfg.loss.mse_weight == 1 and cfg.loss.l1_weight == 0  # L1: the option (l1_weight 1, mse_weight 0)
    spec, mcfg = _tiny("deepresolve")
    G, _ = spec.build_models(mcfg)
    loss = UniCoalLoss(G, None, cfg.loss)
    x = torch.rand(2, 1, *mcfg.patch_size) * 2 - 1
    y = torch.rand(2, 1, *mcfg.patch_size) * 2 - 1
    total, stats = loss.generator_loss({"x_in": x, "y": y, "delta": torch.zeros(2, 8), "c_out": torch.zeros(2, dtype=torch.long)}, None, 0.0)
    assert float(total.detach()) == pytest.approx(float(((x - y) * 0.5).square().mean()), rel=1e-5)  # untrained: G(x) = x


def test_dcsrn_official_parity_is_the_unicoal_authors_network():
    """zhiyuns/UniCOAL models/networks/dcsrn.py DCSRN(1, 1, layers=4, n_feats=24): a 3x3x3 output
    convolution and a global residual (223,729 parameters)."""
    spec = get_method("dcsrn")
    off_cfg = load_config("dcsrn", {"parity": "official"})
    off = spec.model_config(off_cfg.model)
    assert off.tail_kernel == 3 and off.residual and (off_cfg.loss.mse_weight, off_cfg.loss.l1_weight) == (1, 0)
    G, _ = spec.build_models(off)
    assert sum(p.numel() for p in G.parameters()) == 223_729
    with torch.no_grad():
        G.out.weight.zero_(), G.out.bias.zero_()
    x = torch.randn(1, 1, 6, 8, 8)
    assert torch.equal(G.eval()(x), x)  # output = input + network
    assert spec.model_config(load_config("dcsrn").model).tail_kernel == 1


def test_untrained_deepresolve_is_its_interpolation():
    spec, cfg = _tiny("deepresolve")
    G, _ = spec.build_models(cfg)
    x = torch.randn(1, 1, 6, 10, 12)
    assert torch.equal(G(x), x)


def test_bad_model_sections_fail_clearly():
    with pytest.raises(ValueError, match="multiples of 4"):
        get_method("synthsr").model_config({"preset": "tiny", "patch_size": [10, 16, 16]})
    with pytest.raises(ValueError, match="interpolation"):
        get_method("dcsrn").model_config({"interpolation": "nearest"})
    with pytest.raises(ValueError, match="unknown model key"):
        get_method("deepresolve").model_config({"depth": 3})


# ---------------------------------------------------------------------------------------------
# the embedded cohort (phantom T2 volumes, normalised to [0, 1]; its modalities are not
# registered to each other, so cross-modality cases use the synthetic cohort below)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from unicoal.cohort.phantom import simulate_subject
    from unicoal.cohort.samplesheet import SampleRow, write_samplesheet
    from unicoal.io import load_volume, save_volume
    from unicoal.preprocess.normalize import normalize_array

    root = tmp_path_factory.mktemp("phantom3d")
    rows, hr = [], {}
    for i, split in ((1, "train"), (2, "train"), (3, "test")):
        paths = simulate_subject(root / "raw", i, preset="tiny", seed=0)
        for m in ("T2",):
            data, img = load_volume(paths[m])
            norm, _ = normalize_array(data)
            out = root / "prep" / f"s{i}_{m}.nii.gz"
            save_volume(out, norm, img.affine)
            rows.append(SampleRow(f"s{i}", m, out, None, split))
            hr[(i, m)] = out
    return {"sheet": write_samplesheet(root / "samplesheet.csv", rows), "hr": hr, "root": root}


_SR = {"model": {"modalities": ["T2"]}, "data": {"input_modalities": ["T2"], "output_modalities": ["T2"], "ratios": [4]}}
#: SynthSR on the synthetic cohort: any of T2 / PD in, T2 out, CMS (1x) and 4x
_ANY_IN = {"model": {"modalities": ["T2", "PD"]}, "data": {"input_modalities": ["T2", "PD"], "output_modalities": ["T2"], "ratios": [1, 4]}}


def _config(name, steps, task=_SR, **extra):
    from unicoal.train.config import deep_merge

    over = deep_merge(task, {"optim": {"total_steps": steps}, "run": {"log_every": 1, "tensorboard": False, "checkpoint_every": 1000}})
    return load_config(f"{name}_tiny", deep_merge(over, extra))


def _heldout_l1(G, cfg, sheet, items=24) -> float:
    from dataclasses import replace

    from unicoal.data3d import PatchDataset3D

    ds = PatchDataset3D(sheet, replace(cfg.data, split="test"), seed=123, patch_size=(8, 32, 32), interpolation=cfg.model["interpolation"])
    G = G.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(items):
            it = ds.make_item(ds.sample_params(i % len(ds), epoch=i // len(ds)))
            total += float((G(it["x_in"][None]) - it["y"][None]).abs().mean()) / 2.0  # [0, 1] units
    return total / items


@pytest.fixture(scope="module")
def trained(phantom, tmp_path_factory):
    """Each method trained for 40 steps (tiny, batch 4) on the phantom; the untrained network too."""
    from unicoal.train.loop import seed_everything

    out = {}
    for name in METHODS:
        cfg = _config(name, 40)
        spec = get_method(name)
        seed_everything(cfg.run.seed)
        G0, _ = spec.build_models(spec.model_config(cfg.model), discriminator=False)
        run = tmp_path_factory.mktemp(f"run_{name}")
        res = train(cfg, phantom["sheet"], run, progress=False)
        out[name] = {"cfg": cfg, "run": run, "G0": G0, "G": res["trainer"].ema.model, "res": res}
    return out


@pytest.mark.parametrize("name", METHODS)
def test_training_lowers_heldout_l1(name, trained, phantom):
    t = trained[name]
    before = _heldout_l1(t["G0"], t["cfg"], phantom["sheet"])
    after = _heldout_l1(t["G"], t["cfg"], phantom["sheet"])
    assert t["res"]["step"] == 40
    assert after < before, (before, after)


def _check_synthesis(ckpt, hr, lr, src, dst, ratio, tmp_path, tag):
    from unicoal.infer import synthesize

    out = tmp_path / f"{tag}_{src}_{dst}_{ratio}.nii.gz"
    meta = synthesize([lr], out, to=dst, like=hr, source_modalities=[src], checkpoint=ckpt, progress=False)
    img, ref = nib.load(str(out)), nib.load(str(hr))
    assert img.shape == ref.shape and np.allclose(img.affine, ref.affine, atol=1e-4), (src, dst, ratio)
    assert meta["task"] == ("sr" if src == dst else "cms" if ratio == 1 else "cmsr")
    data = np.asarray(img.dataobj)
    assert np.isfinite(data).all() and 0 <= data.min() and data.max() <= 1
    # --thickness: the source's target grid, floor(N_lr * ratio) slices of the HR thickness
    out2 = tmp_path / f"{tag}_{src}_{dst}_{ratio}_thick.nii.gz"
    synthesize([lr], out2, to=dst, thickness=Grid.from_image(ref).thickness, source_modalities=[src], checkpoint=ckpt, progress=False)
    assert nib.load(str(out2)).shape[2] == int(np.floor(nib.load(str(lr)).shape[2] * ratio + 1e-6))
    return data


@pytest.mark.parametrize("name", METHODS)
def test_synthesize_writes_the_target_grid_and_refuses_other_tasks(name, trained, phantom, tmp_path):
    from unicoal.infer import synthesize
    from unicoal.preprocess.degrade import degrade_file

    ckpt = trained[name]["run"] / "model.pt"
    model = torch.load(ckpt, weights_only=True)
    assert model["method"] == name and model["format"] == "unicoal-model/3"
    hr = phantom["hr"][(3, "T2")]
    lr = tmp_path / "lr_T2_4x.nii.gz"
    degrade_file(hr, lr, factor=4.0)
    _check_synthesis(ckpt, hr, lr, "T2", "T2", 4, tmp_path, name)
    if name != "synthsr":  # SR only: CMS (and CMSR) are refused
        with pytest.raises(InputError, match="cannot perform CMS"):
            synthesize([hr], tmp_path / "x.nii.gz", to="T2", like=hr, source_modalities=["PD"], checkpoint=ckpt, progress=False)
    # a target modality the model does not produce
    with pytest.raises(InputError, match="PD"):
        synthesize([lr], tmp_path / "y.nii.gz", to="PD", like=hr, source_modalities=["PD"], checkpoint=ckpt, progress=False)
    assert not (tmp_path / "x.nii.gz").exists() and not (tmp_path / "y.nii.gz").exists()


def test_synthsr_any_input_modality_and_resolution(small_sheet, tmp_path):
    """SynthSR (arbitrary in, fixed out): one model does CMS, SR and CMSR into T2, and refuses --to PD."""
    from unicoal.cohort.samplesheet import read_samplesheet
    from unicoal.infer import synthesize
    from unicoal.preprocess.degrade import degrade_file

    run = tmp_path / "run"
    train(_config("synthsr", 6, task=_ANY_IN), small_sheet, run, progress=False)
    ckpt = run / "model.pt"
    paths = {r.modality: r.path for r in read_samplesheet(small_sheet) if r.subject == "syn002"}
    for src, ratio in (("PD", 1), ("T2", 4), ("PD", 4)):
        lr = paths[src]
        if ratio != 1:
            lr = tmp_path / f"lr_{src}.nii.gz"
            degrade_file(paths[src], lr, factor=float(ratio))
        _check_synthesis(ckpt, paths["T2"], lr, src, "T2", ratio, tmp_path, "synthsr")
    with pytest.raises(InputError, match="unknown target modality 'PD'.*it knows T2"):
        synthesize([paths["T2"]], tmp_path / "z.nii.gz", to="PD", like=paths["PD"], source_modalities=["T2"], checkpoint=ckpt, progress=False)


# ---------------------------------------------------------------------------------------------
# checkpoints and --resume (a small synthetic cohort: seconds)


@pytest.fixture(scope="module")
def small_sheet(tmp_path_factory):
    from unicoal.train.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("c3d"), subjects=2, shape=(36, 36, 24), modalities=("T2", "PD"), splits=["train", "train"])


def _log(run):
    with open(run / "log.csv") as fh:
        return {int(r["step"]): float(r["G_l1"]) for r in csv.DictReader(fh)}


@pytest.mark.parametrize("name", METHODS)
def test_resume_continues_a_killed_run(name, small_sheet, tmp_path):
    cfg = _config(name, 4, run={"checkpoint_every": 2})
    a = train(cfg, small_sheet, tmp_path / "straight", progress=False)
    b1 = train(cfg, small_sheet, tmp_path / "resumed", progress=False, stop_after=2)
    assert b1["step"] == 2
    ck = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and ck["D"] == {} and json.loads(json.dumps(ck["model_config"]))["patch_size"]
    b2 = train(cfg, small_sheet, tmp_path / "resumed", resume=True, progress=False)
    assert b2["step"] == 4
    la, lb = _log(tmp_path / "straight"), _log(tmp_path / "resumed")
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]
    for s in la:
        assert lb[s] == pytest.approx(la[s], rel=1e-6, abs=1e-7)
    for (k, pa), (_, pb) in zip(a["trainer"].G.state_dict().items(), b2["trainer"].G.state_dict().items()):
        assert torch.allclose(pa.float(), pb.float(), atol=1e-7, rtol=0), k

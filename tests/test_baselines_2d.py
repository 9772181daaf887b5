"""Slice-wise baselines of Table I (pix2pix, pGAN, AutoGAN-Synthesizer): published sizes, a CPU
training step, a short training run that lowers the held-out L1, synthesis on the right grid,
refusals, weights-only checkpoints and --resume. One table row per method."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unicoal.cli import main
from unicoal.io import load_volume
from unicoal.methods import get_method
from unicoal.train.config import load_config
from unicoal.train.loop import build_dataset, train
from unicoal.train.synthetic import make_synthetic_cohort

torch.set_num_threads(1)

#: method -> tiny config, input slices, published parameter counts (G, D), training steps for the L1 test
CASES = {
    "pix2pix": dict(config="pix2pix_tiny", m=1, params=(54_407_873, 2_764_609), steps=40),
    "pgan": dict(config="pgan_tiny", m=3, params=(11_371_905, 2_765_761), steps=24),
    # AutoGAN: no published count (it depends on the unreleased cell sequence); +160 for the k-space channel
    "autogan": dict(config="autogan_tiny", m=1, params=(6_542_560, 2_762_689), steps=24),
}
RUN = {"log_every": 1, "tensorboard": False, "checkpoint_every": 1000}


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    return make_synthetic_cohort(tmp_path_factory.mktemp("cohort2d"), subjects=3, shape=(40, 40, 24), modalities=("T1", "T2"), splits=["train", "train", "test"])


@pytest.fixture(scope="module")
def trained(sheet, tmp_path_factory):
    """One short training run per method (shared by the L1, synthesis and checkpoint tests)."""
    runs = {}

    def get(method):
        if method not in runs:
            case = CASES[method]
            cfg = load_config(case["config"], {"optim": {"total_steps": case["steps"], "batch_size": 4}, "run": RUN})
            out = tmp_path_factory.mktemp(f"run_{method}")
            result = train(cfg, sheet, out, progress=False)
            runs[method] = (cfg, out, result["trainer"])
        return runs[method]

    return get


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("method", sorted(CASES))
def test_published_size_and_capabilities(method):
    spec = get_method(method)
    assert spec.tasks == {"cms"} and not spec.arbitrary_in and not spec.arbitrary_out and spec.predictor == "slice"
    cfg = spec.model_config({"preset": "paper"})
    assert cfg.img_resolution == 256 and cfg.num_inputs == CASES[method]["m"]
    G, D = spec.build_models(cfg)
    assert (_params(G), _params(D)) == CASES[method]["params"]
    G, D = spec.build_models(spec.model_config({"preset": "paper"}), discriminator=False)
    assert D is None
    with pytest.raises(ValueError, match="preset"):
        spec.model_config({"preset": "huge"})
    with pytest.raises(ValueError, match="unknown"):
        spec.model_config({"preset": "tiny", "bogus": 1})


@pytest.mark.parametrize("method", sorted(CASES))
def test_forward_backward_on_cpu_at_tiny_size(method):
    from unicoal.train.losses import UniCoalLoss

    cfg = load_config(CASES[method]["config"])
    spec = get_method(method)
    torch.manual_seed(0)
    G, D = spec.build_models(spec.model_config(cfg.model))
    m, s = CASES[method]["m"], cfg.data.resolution
    batch = {"x_in": torch.rand(2, m, s, s) * 2 - 1, "y": torch.rand(2, 1, s, s) * 2 - 1, "delta": torch.zeros(2), "c_out": torch.zeros(2, dtype=torch.long)}
    fake = G(batch["x_in"], batch["delta"], batch["c_out"], None)
    assert fake.shape == (2, 1, s, s) and torch.isfinite(fake).all()
    assert D(batch["x_in"], fake, batch["delta"], batch["c_out"]).shape[:2] == (2, 1)  # patch logits
    loss = UniCoalLoss(G, D, cfg.loss, perceptual=(lambda a, b: (a - b).abs().mean()) if cfg.loss.perceptual_weight else None)
    total, stats = loss.generator_loss(batch, None, 0.0)
    total.backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    d_total, d_stats = loss.discriminator_loss(batch, None, 0.0, do_r1=True)
    d_total.backward()
    assert all(p.grad is not None for p in D.parameters()) and "D_r1" not in d_stats


def _held_out_l1(G, cfg, sheet, count=16) -> float:
    ds = build_dataset(cfg, sheet, split="test")
    ds.set_epoch(0)
    idx = np.linspace(0, len(ds) - 1, count).astype(int)
    G.eval()
    with torch.no_grad():
        items = [ds[int(i)] for i in idx]
        x = torch.stack([torch.as_tensor(it["x_in"]) for it in items])
        y = torch.stack([torch.as_tensor(it["y"]) for it in items])
        fake = G(x, torch.zeros(len(idx)), torch.zeros(len(idx), dtype=torch.long), None)
    return float((fake - y).abs().mean())


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_few_dozen_steps_lower_the_held_out_l1(method, trained, sheet):
    cfg, run, trainer = trained(method)
    spec = get_method(method)
    torch.manual_seed(cfg.run.seed)  # the trainer's initialisation
    G0, _ = spec.build_models(spec.model_config(cfg.model), discriminator=False)
    before, after = _held_out_l1(G0, cfg, sheet), _held_out_l1(trainer.G, cfg, sheet)
    assert after < 0.85 * before, (before, after)
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == CASES[method]["steps"] and float(rows[-1]["ema_beta"]) == 0.0
    assert ("G_perc" in rows[0]) == (method == "pgan")


@pytest.mark.parametrize("method", sorted(CASES))
def test_synthesize_writes_the_target_grid_and_refuses_other_tasks(method, trained, sheet, tmp_path, capsys):
    cfg, run, _ = trained(method)
    subject = sheet.parent / "syn003"
    t1, t2 = subject / "syn003_T1.nii.gz", subject / "syn003_T2.nii.gz"
    out = tmp_path / "t2.nii.gz"
    base = ["synthesize", "--checkpoint", str(run / "model.pt"), "--no-progress"]
    assert main(base + ["--input", str(t1), "--from", "T1", "--to", "T2", "--like", str(t2), "--out", str(out)]) == 0
    data, img = load_volume(out)
    ref, ref_img = load_volume(t1)
    assert data.shape == ref.shape == (40, 40, 24)
    np.testing.assert_allclose(img.affine, ref_img.affine, atol=1e-6)
    assert 0.0 <= data.min() and data.max() <= 1.0 and data.std() > 0
    assert main(base + ["--input", str(t1), "--from", "T1", "--to", "T2", "--thickness", "1.25", "--out", str(tmp_path / "t2b.nii.gz")]) == 0
    assert load_volume(tmp_path / "t2b.nii.gz")[0].shape == (40, 40, 24)  # CMS: same slice count
    capsys.readouterr()
    refusals = [
        (["--input", str(t1), "--from", "T1", "--to", "T1", "--thickness", "0.625"], "cannot perform SR"),
        (["--input", str(t1), "--from", "T1", "--to", "T2", "--thickness", "0.625"], "cannot perform CMSR"),
        (["--input", str(t2), "--from", "T2", "--to", "T1", "--thickness", "1.25"], "trained for T1 -> T2"),
    ]
    for args, msg in refusals:
        assert main(base + args + ["--out", str(tmp_path / "no.nii.gz")]) == 1, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("unicoal: error:") and msg in err[0], (args, err)
    assert not (tmp_path / "no.nii.gz").exists()


@pytest.mark.parametrize("method", sorted(CASES))
def test_weights_only_checkpoints_and_resume_after_a_kill(method, sheet, tmp_path):
    cfg = load_config(CASES[method]["config"], {"optim": {"total_steps": 4, "batch_size": 2}, "run": {**RUN, "checkpoint_every": 2}})
    straight = train(cfg, sheet, tmp_path / "straight", progress=False)["trainer"]
    train(cfg, sheet, tmp_path / "resumed", progress=False, stop_after=2)  # "killed" after the step-2 checkpoint
    last = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == 2 and last["config"]["method"] == method
    resumed = train(cfg, sheet, tmp_path / "resumed", resume=True, progress=False)["trainer"]
    assert resumed.step == 4
    for name, (a, b) in {"G": (straight.G, resumed.G), "D": (straight.D, resumed.D)}.items():
        for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(pa, pb, atol=1e-6, rtol=0), (name, k)
    model = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert model["method"] == method and model["num_inputs"] == CASES[method]["m"]
    for k, v in resumed.G.state_dict().items():  # EMA off: the export is the trained generator
        assert torch.equal(model["state_dict"][k], v), k


def test_patchgan_is_the_70x70_discriminator_and_validates():
    from unicoal.nn.patchgan import PatchDiscriminator

    assert PatchDiscriminator.receptive_field(3) == 70 and PatchDiscriminator.receptive_field(1) == 16
    D = PatchDiscriminator(2, ndf=8)
    assert D(torch.zeros(1, 1, 256, 256), torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)
    unconditional = PatchDiscriminator(1, ndf=8, norm="instance", conditional=False)
    assert unconditional(None, torch.zeros(2, 1, 64, 64)).shape == (2, 1, 6, 6)
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(2, norm="group")
    with pytest.raises(ValueError, match="in_channels"):
        PatchDiscriminator(1)
    with pytest.raises(ValueError, match="x_in"):
        D(torch.zeros(1, 2, 64, 64), torch.zeros(1, 1, 64, 64))


def test_pgan_neighbours_are_centred_on_the_target_slice():
    from unicoal.geometry import input_indices

    idx, inside = input_indices(np.array([0, 5, 9]), count=10, m=3)
    assert idx.tolist() == [[0, 0, 1], [4, 5, 6], [8, 9, 9]]
    assert inside.tolist() == [[False, True, True], [True, True, True], [True, True, False]]
    assert input_indices(np.array([5]), 10, 4)[0].tolist() == [[4, 5, 6, 7]]  # even m unchanged (Uni-COAL)


@pytest.mark.parametrize("method,bad,match", [
    ("pix2pix", {"img_resolution": 96}, "power of two"),
    ("pix2pix", {"norm": "layer"}, "norm"),
    ("pgan", {"img_resolution": 66}, "multiple of 4"),
    ("pgan", {"dropout": 1.0}, "dropout"),
    ("autogan", {"arch": "pfpf"}, "12 letters"),
    ("autogan", {"arch": "pfpfpfpfpfpx"}, "p \\(parallel\\)"),
    ("autogan", {"img_resolution": 100}, "multiple of 8"),
])
def test_invalid_model_configs_raise(method, bad, match):
    with pytest.raises(ValueError, match=match):
        get_method(method).model_config(bad)


def test_autogan_arch_selects_the_operations():
    from unicoal.models.baselines.autogan import FusionModule, ParallelModule, autogan_config, build_autogan

    cfg = autogan_config({"preset": "tiny", "arch": "ppffpf"})
    assert cfg.stage_arch(2) == "pp" and cfg.stage_arch(3) == "ff" and cfg.stage_arch(4) == "pf"
    G, _ = build_autogan(cfg, discriminator=False)
    kinds = [[type(op).__name__[0].lower() for op in stage] for stage in G.stages]
    assert kinds == [["p", "p"], ["f", "f"], ["p", "f"]]
    assert [len(op.blocks) if isinstance(op, ParallelModule) else len(op.paths[0]) for op in G.stages[2]] == [4, 4]
    assert isinstance(G.final_fuse, FusionModule) and G.final_fuse.outputs == 1


def test_autogan_kspace_channel_is_built_by_one_function_in_training_and_synthesis(trained, sheet):
    """The authors' generator reads each source slice and its log-magnitude k-space image
    (log|fftshift(fft2(x))|): G builds it itself, so a training step and the slice predictor
    feed the stem exactly [x | log_kspace(x)]."""
    from unicoal.models.baselines.autogan import log_kspace
    from unicoal.predictors.slices import SlicePredictor

    x = torch.rand(2, 1, 8, 8) * 2 - 1
    u = (x + 1) * 127.5
    k = torch.log1p(torch.fft.fftshift(torch.fft.fft2(u), dim=(-2, -1)).abs())
    lo, hi = k.amin(dim=(-2, -1), keepdim=True), k.amax(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(log_kspace(x), 2 * (k - lo) / (hi - lo) - 1)
    assert torch.equal(log_kspace(-torch.ones(1, 1, 8, 8)), -torch.ones(1, 1, 8, 8))  # empty slice

    cfg, _, trainer = trained("autogan")
    seen = []
    hook = trainer.G.stem.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        ds = build_dataset(cfg, sheet)
        batch = {k: v[None] for k, v in ds[0].items()}
        trainer.train_step(batch)
        pred = SlicePredictor(trainer.G, modalities=cfg.data.modalities, num_inputs=1, resolution=cfg.data.resolution)
        vol = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
        pred.predict(vol, np.arange(3), np.zeros(3), "T2")
    finally:
        hook.remove()
    assert len(seen) == 2 and all(s.shape[1] == 2 for s in seen)
    for s in seen:  # training (augmented item) and synthesis: the same function of the source channel
        torch.testing.assert_close(s[:, 1:], log_kspace(s[:, :1]))
    torch.testing.assert_close(seen[0][:, :1], batch["x_in"])

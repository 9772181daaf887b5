"""UniCoalConfig presets, validation and round trip."""
from __future__ import annotations

import dataclasses
import json

import pytest

from unicoal.models.config import UniCoalConfig


def test_presets_and_round_trip():
    paper, tiny = UniCoalConfig.paper(), UniCoalConfig.tiny()
    assert (paper.img_resolution, paper.num_inputs, paper.modalities, paper.z_dim) == (256, 4, ("T1", "T2", "PD"), 64)
    assert tiny.img_resolution == 64 and tiny.channel_max <= 32
    for cfg in (paper, tiny, dataclasses.replace(paper, alias_free_encoder=False, projection=False, num_inputs=1)):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert UniCoalConfig.from_dict(d) == cfg
    assert paper.modality_index("PD") == 2
    assert UniCoalConfig.tiny(modalities=["T1", "FLAIR"]).num_modalities == 2


@pytest.mark.parametrize("bad", [
    dict(img_resolution=100), dict(num_inputs=0), dict(modalities=()), dict(modalities=("T1", "T1")),
    dict(modalities=("T1", "CT")), dict(pad_mode="reflect"), dict(e_dropout=1.0), dict(lrelu_upsampling=3),
    dict(skip_placement="middle"),
    dict(conv_kernel=2), dict(w_dim=0),
])
def test_invalid_configs_raise(bad):
    with pytest.raises(ValueError):
        UniCoalConfig.tiny(**bad)


def test_unknown_keys_and_modalities_are_rejected():
    with pytest.raises(ValueError, match="unknown UniCoalConfig keys"):
        UniCoalConfig.from_dict({"img_resolution": 64, "bogus": 1})
    with pytest.raises(ValueError, match="unknown target modality"):
        UniCoalConfig.paper().modality_index("FLAIR")
    with pytest.raises(dataclasses.FrozenInstanceError):
        UniCoalConfig.paper().z_dim = 3


def test_new_fields_validate_and_round_trip():
    cfg = UniCoalConfig.tiny(e_region="core", delta_bias_init=1.0)
    assert UniCoalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert (UniCoalConfig.paper().e_region, UniCoalConfig.paper().delta_bias_init) == ("full", 0.0)
    with pytest.raises(ValueError, match="e_region"):
        UniCoalConfig.tiny(e_region="centre")


def test_paper_recipe_is_fp32_and_takes_the_sam_prior_from_the_checkpoint():
    """Issue #20: the authors train in fp32 (no autocast in their code): every packaged config
    inherits run.amp none (bf16 an option); the SAM prior is 'auto' (the checkpoint decides)."""
    from unicoal.train.config import load_config, packaged_configs

    for name in ("paper", "tiny", "task_cms", "task_sr", "task_cmsr", "task_one"):
        cfg = load_config(name)
        assert cfg.run.amp == "none", name
        assert cfg.loss.sam_encoder == "auto", name
    assert "paper" in packaged_configs()
    assert load_config("tiny", {"run": {"amp": "bf16"}}).run.amp == "bf16"

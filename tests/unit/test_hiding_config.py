"""Speaker-hiding defenses by name: unknown names and parameters, and impossible compositions, are clear errors."""

from __future__ import annotations

import types

import pytest
import torch

from speechfl.federated.server_opt import FedAvg, Scaffold
from speechfl.federated.setup import attach_bottleneck_stage
from speechfl.models.adversary import AdversarialObjective
from speechfl.privacy.adversarial import build_adversary, check_adversary_compatible, spread_out_spec
from speechfl.privacy.bottleneck import Bottleneck, VectorQuantizer, build_bottleneck
from speechfl.privacy.fedaws import SpreadOutServer, check_spread_out_compatible
from speechfl.registry import RegistryError

MAPS = {"speaker": {"a": 0, "b": 1, "c": 2}, "gender": {"F": 0, "M": 1}}


def test_bottleneck_builds_stages_in_order():
    bn = build_bottleneck(["instance_norm", {"name": "vq", "codes": 8, "groups": 2}, {"name": "projection", "dim": 3}],
                          rep_dim=8, seed=0, engine="inprocess")
    assert isinstance(bn, Bottleneck) and [type(s).__name__ for s in bn.stages] == [
        "InstanceNorm", "VectorQuantizer", "Projection"]
    y = bn(torch.randn(2, 5, 8), torch.tensor([1.0, 0.6]))
    assert y.shape == (2, 5, 8) and bn.aux_loss is not None


@pytest.mark.parametrize("spec, match", [
    ("bogus", "unknown bottleneck 'bogus'; valid bottlenecks: instance_norm, projection, vq"),
    ({"name": "vq", "codez": 4}, "unknown parameter.*'codez'.*valid parameters"),
    ({"name": "vq", "update": "kmeans"}, "unknown vq update 'kmeans'"),
    ({"name": "vq", "groups": 3}, "groups dividing rep_dim 8"),
    ({"name": "projection", "dim": 8}, r"projection dim must lie in \[1, 8\)"),
    ({"codes": 4}, "has no 'name' key"),
    (3, r"bottleneck\[0\] must be a name or a mapping"),
])
def test_bottleneck_errors(spec, match):
    with pytest.raises((ValueError, RegistryError), match=match):
        build_bottleneck(spec, rep_dim=8, seed=0, engine=None)


def test_bottleneck_refusals_under_federated_averaging():
    with pytest.raises(ValueError, match="update 'ema' keeps codebook statistics"):
        build_bottleneck({"name": "vq", "update": "ema"}, rep_dim=8, seed=0, engine="inprocess")
    with pytest.raises(ValueError, match="restart_every copies one client's frames"):
        build_bottleneck([{"name": "vq", "restart_every": 5}], rep_dim=8, seed=0, engine="inprocess")
    with pytest.raises(ValueError, match="engine 'centralized' neither averages nor checkpoints"):
        build_bottleneck({"name": "vq", "update": "ema"}, rep_dim=8, seed=0, engine="centralized")
    vq = build_bottleneck({"name": "vq", "restart_every": 5}, rep_dim=8, seed=0, engine="centralized")
    assert vq.stages[0].restart_every == 5  # one pooled client: restarts allowed
    vq = build_bottleneck({"name": "vq", "update": "ema", "restart_every": 5}, rep_dim=8, seed=0, engine=None)
    assert isinstance(vq.stages[0], VectorQuantizer)  # a custom loop: both allowed


def test_attach_bottleneck_stage_refusals():
    cfg = types.SimpleNamespace(engine="inprocess", seed=0)
    with pytest.raises(ValueError, match=r"has no attach_bottleneck \(speechfl.models.asr.CTCModel provides it\)"):
        attach_bottleneck_stage(torch.nn.Linear(2, 2), {"bottleneck": "vq"}, cfg)
    model = types.SimpleNamespace(attach_bottleneck=lambda b: None, rep_dim=8)
    with pytest.raises(ValueError, match="bottleneck with dp_sample"):
        attach_bottleneck_stage(model, {"bottleneck": "vq", "dp_sample": {"clip": 1.0}}, cfg)
    with pytest.raises(ValueError, match="update 'ema'"):
        attach_bottleneck_stage(model, {"bottleneck": {"name": "vq", "update": "ema"}}, cfg)


@pytest.mark.parametrize("spec, match", [
    ({"objective": "minimax"}, "unknown adversary objective 'minimax'; valid objectives: reversal, confusion"),
    ({"objectve": "confusion"}, r"unknown key\(s\) \['objectve'\] in adversary"),
    ({"warmup_steps": -1}, "warmup_steps must be an int >= 0"),
    ({"heads": ["xvektor"]}, "unknown adversary head 'xvektor'"),
    ({"heads": [{"name": "class_embedding", "negatives": "pool"}]}, "unknown negatives 'pool'"),
    ({"heads": [{"name": "xvector", "depth": 3}]}, "unknown parameter.*'depth'"),
])
def test_adversary_errors(spec, match):
    with pytest.raises((ValueError, RegistryError), match=match):
        build_adversary(spec, rep_dim=4, label_maps=MAPS, total_steps=10, seed=0)


def test_confusion_is_refused_with_dp_sample():
    check_adversary_compatible({"objective": "reversal"}, dp_sample=True)
    check_adversary_compatible({"objective": "confusion"}, dp_sample=False)
    with pytest.raises(ValueError, match="objective 'confusion' with dp_sample"):
        check_adversary_compatible({"objective": "confusion"}, dp_sample=True)


def test_spread_out_spec_and_refusals():
    assert spread_out_spec({"spread_out": {"margin": 2}}) == {"margin": 2.0, "lr": 0.1, "steps": 1}
    assert spread_out_spec({}) is None
    with pytest.raises(RegistryError, match=r"unknown key\(s\) \['nu'\] in adversary.spread_out"):
        spread_out_spec({"spread_out": {"nu": 1.0}})
    with pytest.raises(ValueError, match="needs a class_embedding adversary head"):
        SpreadOutServer(FedAvg(), [], margin=1.0, lr=0.1)
    with pytest.raises(ValueError, match="engine 'gossip' has no such step"):
        check_spread_out_compatible(FedAvg(), "gossip")
    with pytest.raises(ValueError, match="not combined with 'scaffold'"):
        check_spread_out_compatible(Scaffold(), "inprocess")


def test_built_adversary_carries_objective_and_warmup():
    adv = build_adversary({"heads": ["xvector", "class_embedding"], "objective": "confusion", "warmup_steps": 3},
                          rep_dim=4, label_maps=MAPS, total_steps=10, seed=0)
    assert isinstance(adv, AdversarialObjective) and adv.objective == "confusion" and adv.warmup_steps == 3
    out = adv(torch.randn(2, 7, 4), torch.ones(2), torch.tensor([0, 2]), step=5)
    assert out.uniform_ce == pytest.approx(torch.log(torch.tensor(3.0)).item())


def test_every_encoder_takes_a_bottleneck():
    """The bottleneck sits in CTCModel.encode, so the Conformer's head and attackers see it too."""
    from speechfl.models.encoders import build_model

    torch.manual_seed(0)
    cfg = types.SimpleNamespace(engine="inprocess", seed=0)
    for name, kw in (("conformer", {"conformer": {"preset": "tiny"}}), ("conv_rnn", {"conv_rnn": {"hidden": 16}})):
        model = build_model(name=name, vocab_size=29, n_mels=40, dropout=0.0, **kw).eval()
        feats, lens = torch.randn(2, 60, 40), torch.tensor([1.0, 0.7])
        plain, _ = model.encode(feats, lens)
        attach_bottleneck_stage(model, {"bottleneck": "instance_norm"}, cfg)
        normed, _ = model.encode(feats, lens)
        n = int(round(0.7 * normed.shape[1]))
        assert normed.shape == plain.shape and not torch.allclose(normed, plain)
        # per-utterance normalisation over the valid frames: zero mean per dimension
        torch.testing.assert_close(normed[1, :n].mean(0), torch.zeros(normed.shape[-1]), atol=1e-4, rtol=0)
        assert torch.equal(model(feats, lens).reps, normed)

"""The training objective (speechfl.models.objective): every term it promises reaches the loss."""

import types

import pytest
import torch

from speechfl.federated.setup import attach_bottleneck_stage
from speechfl.models.encoders import build_model
from speechfl.models.objective import ctc_objective, training_loss
from speechfl.privacy.adversarial import build_adversary

MAPS = {"speaker": {"s1": 0, "s2": 1}, "gender": {"F": 0, "M": 1}}


def _batch():
    torch.manual_seed(1)
    data = lambda x, lens: types.SimpleNamespace(data=x, lengths=lens)  # noqa: E731  (PaddedBatch's fields)
    return types.SimpleNamespace(feats=data(torch.randn(2, 60, 40), torch.tensor([1.0, 0.8])),
                                 tokens=data(torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([1.0, 2 / 3])),
                                 spk_id=["s1", "s2"], gender=["F", "M"])


def test_bottleneck_and_adversary_terms_are_both_in_the_loss():
    torch.manual_seed(0)
    model = build_model(name="conv_rnn", vocab_size=29, n_mels=40, dropout=0.0, conv_rnn={"hidden": 16}).train()
    attach_bottleneck_stage(model, {"bottleneck": {"name": "vq", "codes": 8}},
                            types.SimpleNamespace(engine="inprocess", seed=0))
    model.attach_adversary(build_adversary({"heads": ["linear"], "weight": 0.5}, rep_dim=model.rep_dim,
                                           label_maps=MAPS, total_steps=10, seed=0))
    out = training_loss(model, _batch(), step=3, label_maps=MAPS)
    aux = float(model.bottleneck.aux_loss)
    assert aux > 0 and out.adv_loss is not None
    # CTC + the VQ codebook/commitment terms + the adversary's term, none dropped
    assert out.loss.item() == pytest.approx(out.ctc + aux + out.adv_loss, rel=1e-6)


def test_group_dro_weights_the_loss_but_reports_the_plain_ctc():
    from speechfl.fairness.pooled import OnlineGroupDRO, PooledGroupSpec

    torch.manual_seed(0)
    model = build_model(name="conv_rnn", vocab_size=29, n_mels=40, dropout=0.0, conv_rnn={"hidden": 16}).eval()
    batch = _batch()
    plain = ctc_objective(model(batch.feats.data, batch.feats.lengths), batch.tokens.data, batch.tokens.lengths)
    dro = OnlineGroupDRO(PooledGroupSpec.parse({"rule": "afl", "eta": 5.0}), ["F", "M"])
    out = training_loss(model, batch, step=0, group_dro=dro)
    assert out.ctc == pytest.approx(plain.item(), rel=1e-6)  # train_loss stays the mean CTC, comparable across runs
    assert dro.lam[0].item() != 0.5 and out.loss.item() != pytest.approx(plain.item(), rel=1e-6)

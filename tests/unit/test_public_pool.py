"""The public pool of negatives (speechfl.privacy.public_pool): validation, draws, and the adversary's batch."""

import types

import pytest
import torch
import torch.nn.functional as F

from speechfl.models.encoders import build_model
from speechfl.models.objective import concat_padded, training_loss
from speechfl.privacy.adversarial import build_adversary
from speechfl.privacy.public_pool import PublicPool, check_public_pool, extend_speaker_map

MAPS = {"speaker": {"s1": 0, "s2": 1}, "gender": {"F": 0, "M": 1}}
POOL = {"data_folder": "/pool", "speakers": 3, "per_step": 2}


def _pool():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, 40, generator=g) for n in (30, 45, 50, 38, 41, 60)]
    return PublicPool(feats=feats, labels=[2, 2, 3, 3, 4, 4], speakers=["p1", "p2", "p3"], per_step=2)


def test_spec_validation_names_the_key():
    assert check_public_pool({"target": "speaker"}, dp_sample=False) is None
    spec = check_public_pool({"public_pool": POOL}, dp_sample=False, data_folder="/data")
    assert spec == {"data_folder": "/pool", "split": "train", "speakers": 3, "per_speaker": 10, "per_step": 2,
                    "synthetic": None}
    cases = [({"target": "gender", "public_pool": POOL}, False, "needs target: speaker"),
             ({"public_pool": POOL}, True, "dp_sample"),
             ({"public_pool": {**POOL, "data_folder": "/data"}}, False, "is the run's data_folder"),
             ({"public_pool": {**POOL, "speakers": 0}}, False, "public_pool.speakers must be a positive integer"),
             ({"public_pool": {**POOL, "per_step": "4"}}, False, "public_pool.per_step"),
             ({"public_pool": {k: v for k, v in POOL.items() if k != "data_folder"}}, False, "data_folder is required"),
             ({"public_pool": {**POOL, "size": 3}}, False, "size"),
             ({"public_pool": {**POOL, "synthetic": {"speakers": 4, "voices": 2}}}, False, "voices")]
    for adv, dp, message in cases:
        with pytest.raises(ValueError, match=message):
            check_public_pool(adv, dp_sample=dp, data_folder="/data")


def test_the_pool_adds_its_speakers_to_the_adversary_classes():
    adv = build_adversary({"heads": ["linear"], "public_pool": POOL}, rep_dim=8, label_maps=MAPS, total_steps=5,
                          seed=0)
    assert adv.n_classes == 2 + 3
    assert extend_speaker_map(MAPS["speaker"], 3, ["a", "b", "c"]) == {"s1": 0, "s2": 1, "public/a": 2,
                                                                      "public/b": 3, "public/c": 4}
    with pytest.raises(ValueError, match="has 2 speakers, the spec says 3"):
        extend_speaker_map(MAPS["speaker"], 3, ["a", "b"])


def test_draws_are_a_function_of_seed_round_client_and_step():
    pool = _pool()
    a = pool.draw(0, 1, "c1", 7)
    b = pool.draw(0, 1, "c1", 7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    feats, lens, labels = a
    assert feats.shape[0] == 2 and lens.max() == 1.0 and labels.dtype == torch.long
    for j in range(2):  # each drawn utterance is a pool utterance, zero-padded, with its own label
        n = round(float(lens[j]) * feats.shape[1])
        k = next(i for i, f in enumerate(pool.feats) if f.shape[0] == n)
        assert torch.equal(feats[j, :n], pool.feats[k]) and (feats[j, n:] == 0).all()
        assert labels[j] == pool.labels[k]
    others = {tuple(pool.draw(0, r, c, s)[2].tolist()) + (pool.draw(0, r, c, s)[0].shape[1],)
              for r, c, s in [(1, "c1", 8), (2, "c1", 7), (1, "c2", 7), (1, "c1", 9), (3, "c3", 1)]}
    assert len(others) > 1  # different steps, rounds and clients draw differently


def test_concat_padded_keeps_each_utterance_and_its_length():
    a, b = torch.randn(2, 5, 3), torch.randn(1, 8, 3)
    out, lens = concat_padded(a, torch.tensor([1.0, 0.6]), b, torch.tensor([0.5]))
    assert out.shape == (3, 8, 3)
    assert torch.equal(out[:2, :5], a) and (out[:2, 5:] == 0).all() and torch.equal(out[2], b[0])
    assert torch.allclose(lens * 8, torch.tensor([5.0, 3.0, 4.0]))


def test_training_loss_puts_the_pool_in_the_adversary_batch_and_not_in_ctc():
    torch.manual_seed(0)
    model = build_model(name="conv_rnn", vocab_size=29, n_mels=40, dropout=0.0, conv_rnn={"hidden": 16}).train()
    model.attach_adversary(build_adversary({"heads": ["linear"], "weight": 0.5, "schedule": {"kind": "constant"},
                                            "public_pool": POOL}, rep_dim=model.rep_dim, label_maps=MAPS,
                                           total_steps=10, seed=0))
    data = lambda x, lens: types.SimpleNamespace(data=x, lengths=lens)  # noqa: E731
    batch = types.SimpleNamespace(feats=data(torch.randn(2, 60, 40), torch.tensor([1.0, 0.8])),
                                  tokens=data(torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([1.0, 2 / 3])),
                                  spk_id=["s1", "s2"], gender=["F", "M"])
    public = _pool().draw(0, 1, "c1", 3)
    model.eval()  # no dropout and no head resets: the same function twice
    model.adversary.train()
    plain = training_loss(model, batch, step=3, label_maps=MAPS)
    pooled = training_loss(model, batch, step=3, label_maps=MAPS, public=public)
    assert pooled.ctc == pytest.approx(plain.ctc)  # the pool adds no CTC term
    # the oracle: the head's cross-entropy over own + pool representations, computed by hand
    own = model(batch.feats.data, batch.feats.lengths)
    pub = model(*public[:2])
    reps, lens = concat_padded(own.reps, own.lengths, pub.reps, pub.lengths)
    labels = torch.cat([torch.tensor([0, 1]), public[2]])
    logits = model.adversary.head_logits(reps, lens)[0]
    assert pooled.adv_ce == pytest.approx(float(F.cross_entropy(logits, labels).detach()), rel=1e-5)
    assert pooled.adv_uniform_ce == pytest.approx(float(torch.log(torch.tensor(5.0))), rel=1e-6)

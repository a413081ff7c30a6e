"""Every registered encoder implements the model protocol, federates as flat vectors, and learns a toy task."""

import pytest
import torch

from speechfl.federated.update import ParamLayout, flatten_params, load_flat_params
from speechfl.models.encoders import ENCODERS, build_model
from speechfl.models.objective import ctc_objective
from speechfl.models.protocol import ASRModelProtocol, check_model, split_buffers

VOCAB, N_MELS = 6, 24
SMALL = {"conv_rnn": {"channels": 8, "proj": 32, "hidden": 32, "layers": 1},
         "conformer": {"preset": "tiny", "d_model": 32, "layers": 1, "d_ffn": 64, "heads": 2, "channels": 8}}


def small(name, dropout=0.0):
    return build_model(name, VOCAB, N_MELS, dropout, **{name: SMALL[name]})


def test_every_registered_encoder_is_covered():
    assert set(ENCODERS.names()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_protocol_shapes_and_relative_lengths(name):
    torch.manual_seed(0)
    model = small(name).eval()
    assert isinstance(model, ASRModelProtocol)
    check_model(model, VOCAB)
    feats, lens = torch.randn(3, 41, N_MELS), torch.tensor([1.0, 0.8, 0.5])
    reps, rel = model.encode(feats, lens)
    out = model(feats, lens)
    t = ((41 - 3) // 2 + 1 - 3) // 2 + 1  # two valid 3x3 convs of stride 2
    assert reps.shape == (3, t, model.rep_dim) and torch.equal(rel, lens)
    assert out.log_probs.shape == (3, t, VOCAB) and torch.equal(out.reps, reps)
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(3, t), atol=1e-5)
    # padding does not leak into the valid frames: utterance 2 alone, unpadded, gives the same output
    n = int(round(0.5 * 41))
    alone = model(feats[2:3, :n], torch.tensor([1.0]))
    valid = alone.log_probs.shape[1]
    assert torch.allclose(alone.log_probs, out.log_probs[2:3, :valid], atol=1e-4)
    asr = {id(p) for p in model.asr_parameters()}
    assert asr == {id(p) for p in model.parameters()}
    model.attach_adversary(torch.nn.Linear(model.rep_dim, 2))
    assert len(model.asr_parameters()) == len(asr) and model.adversary is not None


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fedavg_of_two_copies_is_the_mean_of_their_flat_vectors(name):
    torch.manual_seed(1)
    a = small(name)
    torch.manual_seed(2)
    b = small(name)
    layout = ParamLayout.from_module(a)
    assert ParamLayout.from_module(b) == layout and not layout.buffers
    fa, fb = flatten_params(a, layout), flatten_params(b, layout)
    assert fa.numel() == sum(p.numel() for p in a.parameters()) and not torch.equal(fa, fb)
    load_flat_params(a, layout, (fa + fb) / 2)
    assert torch.allclose(flatten_params(a, layout), (fa + fb) / 2)
    # by name, not by position: every named parameter of the averaged copy is the mean of the two copies'
    torch.manual_seed(1)
    a0 = dict(small(name).named_parameters())
    for n, p in a.named_parameters():
        assert torch.allclose(p, (a0[n] + dict(b.named_parameters())[n]) / 2), n


def test_conformer_positional_tables_are_constants_batchnorm_is_refused():
    model = small("conformer")
    constants, stateful = split_buffers(model)
    assert "pos.inv_freq" in constants and not stateful
    assert "pos.inv_freq" not in model.state_dict()  # rebuilt by construction, not checkpointed
    assert ParamLayout.from_module(model).constants == constants
    model.extra = torch.nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match="running"):
        check_model(model, VOCAB)
    assert "extra.running_mean" in ParamLayout.from_module(model).buffers


def test_check_model_errors_name_what_is_wrong():
    with pytest.raises(TypeError, match="protocol.*encode"):
        check_model(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="tokenizer has 29"):
        check_model(small("conv_rnn"), 29)
    with pytest.raises(ValueError, match="unknown encoder 'lstm'.*conformer, conv_rnn"):
        build_model("lstm", VOCAB, N_MELS)
    with pytest.raises(ValueError, match="unknown conformer preset 'huge'"):
        build_model("conformer", VOCAB, N_MELS, conformer={"preset": "huge"})
    with pytest.raises(ValueError, match="unknown conformer parameter"):
        build_model("conformer", VOCAB, N_MELS, conformer={"depth": 3})
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model("conformer", VOCAB, N_MELS, transformer={})


def toy_batch(gen, n=8):
    """Token sequences rendered as features: token k lights mel bands 4k..4k+3 for 8 frames."""
    feats, tokens = torch.zeros(n, 48, N_MELS), torch.zeros(n, 4, dtype=torch.long)
    for i in range(n):
        seq = torch.randint(1, VOCAB, (4,), generator=gen)
        tokens[i] = seq
        for j, k in enumerate(seq.tolist()):
            feats[i, 4 + 10 * j: 12 + 10 * j, 4 * k: 4 * k + 4] = 3.0
    feats += 0.3 * torch.randn(feats.shape, generator=gen)
    return feats, torch.ones(n), tokens, torch.ones(n)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_encoder_learns_a_toy_task(name):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = small(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(120):
        feats, lens, tokens, tlens = toy_batch(gen)
        loss = ctc_objective(model(feats, lens), tokens, tlens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert end < 0.25 * start, (name, start, end)

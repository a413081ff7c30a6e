"""Local-model recovery, footprints, and run_reconstruction end to end on a tiny model."""

import pytest
import torch

from speechfl.attackers.reconstruction import (AttackedUpdate, MatchConfig, ReconstructionConfig,
                                               ReconstructionInput, run_reconstruction)
from speechfl.attackers.reconstruction.local_model import encoder_means, footprint_eer, recovery_error
from speechfl.federated.update import ParamLayout, flatten_params
from speechfl.models.asr import ASRModel


def test_recovery_error_hand_values():
    delta = torch.tensor([3.0, 4.0])
    rel, cos = recovery_error(torch.tensor([3.0, 0.0]), delta)
    assert rel == pytest.approx(4 / 5) and cos == pytest.approx(3 / 5)
    assert recovery_error(torch.zeros(2), delta) == (1.0, 0.0)
    with pytest.raises(ValueError, match="all zeros"):
        recovery_error(delta, torch.zeros(2))


def test_footprint_eer_separable_and_inverted():
    prints = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert footprint_eer(prints, ["a", "a", "b", "b"]) == (0.0, 2, 4)
    # target {0}, non-targets {1, 0}: ROC points (FPR, FNR) = (0, 1), (1/2, 1), (1, 0); the segment
    # interpolation crosses FPR = FNR at 1/2 + (1/3)(1/2) = 2/3 (speechfl.metrics.privacy.eer)
    prints = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert footprint_eer(prints, ["a", "a", "b"]) == (pytest.approx(2 / 3), 1, 2)
    with pytest.raises(ValueError, match="same- and different-speaker"):
        footprint_eer(prints, ["a", "b", "c"])


def _tiny():
    torch.manual_seed(0)
    model = ASRModel(n_mels=8, vocab_size=6, channels=2, proj=8, hidden=4, layers=1, dropout=0.0)
    return model, ParamLayout.from_module(model)


def test_encoder_means_restores_the_callers_parameters():
    model, layout = _tiny()
    before = flatten_params(model, layout).clone()
    out = encoder_means(model, layout, before + 1.0, [torch.randn(20, 8)])
    assert out.shape == (1, 8)
    assert torch.equal(flatten_params(model, layout), before)


def _input(model, layout, n_speakers=3):
    from speechfl.attackers.reconstruction.ctc import ctc_nll

    flat = flatten_params(model, layout)
    gen = torch.Generator().manual_seed(1)
    updates = []
    for rep in range(2):
        for s in range(n_speakers):
            feats = torch.randn(24, 8, generator=gen) + s  # speaker-dependent offset
            tokens = [[1 + s, 2 + s]]
            lp = model(feats.unsqueeze(0), torch.ones(1)).log_probs[0]
            grads = dict(zip([n for n, _ in model.named_parameters()],
                             torch.autograd.grad(ctc_nll(lp, tokens[0]), list(model.parameters()))))
            delta = -0.1 * torch.cat([grads[n].reshape(-1) for n in layout.names])
            updates.append(AttackedUpdate(f"c{s}", f"s{s}", delta, tokens, [feats] if rep == 0 and s == 0 else None))
    return ReconstructionInput(model=model, layout=layout, global_flat=flat, updates=updates,
                               indicator=[torch.randn(24, 8, generator=gen) for _ in range(2)])


def test_run_reconstruction_end_to_end():
    model, layout = _tiny()
    inp = _input(model, layout)
    cfg = ReconstructionConfig(compressors={"identity": None, "topk1": {"name": "topk", "fraction": 0.01}},
                               match=MatchConfig(iterations=5), max_inversions=1)
    rep = run_reconstruction(inp, cfg)
    assert set(rep.labels) == set(rep.local_model) == set(rep.inversion) == {"identity", "topk1"}
    assert rep.labels["identity"].sign_precision == 1.0  # the guarantee on uncompressed updates
    assert rep.local_model["identity"].relative_error == 0.0 and rep.local_model["identity"].cosine == pytest.approx(1.0)
    assert rep.local_model["topk1"].relative_error > 0.5  # 1 % of the coordinates
    lm = rep.local_model["identity"]
    assert (lm.n_target_trials, lm.n_nontarget_trials) == (3, 12)
    inv = rep.inversion["identity"]
    assert inv.n_utts == 1 and inv.cer is None and "cer" in inv.notes and inv.speaker_top1 is None
    assert int(rep.notes["bytes/topk1"].split()[0]) < int(rep.notes["bytes/identity"].split()[0])
    d = rep.to_dict()
    assert d["labels"]["identity"]["n_updates"] == 6


def test_run_reconstruction_refuses_bad_setups():
    model, layout = _tiny()
    inp = _input(model, layout)
    with pytest.raises(ValueError, match="unknown reconstruction threats"):
        run_reconstruction(inp, ReconstructionConfig(threats=("labels", "nope")))
    with pytest.raises(ValueError, match="compressor view 'x'"):
        run_reconstruction(inp, ReconstructionConfig(compressors={"x": {"name": "nope"}}))
    inp.true_updates = False
    with pytest.raises(ValueError, match="server's decoded view"):
        run_reconstruction(inp, ReconstructionConfig(compressors={"q": "fp16"}))
    inp.true_updates = True
    with pytest.raises(ValueError, match="decodes to a change"):
        run_reconstruction(inp, ReconstructionConfig(compressors={"e": {"name": "ef21", "inner": "sign"}},
                                                     threats=("labels",)))
    inp.updates[0].delta = inp.updates[0].delta[:-1]
    with pytest.raises(ValueError, match="update 0"):
        run_reconstruction(inp, ReconstructionConfig(threats=("labels",)))


def test_reconstruction_from_recorded_rounds():
    """Recorded rounds (each with its own global model): label sets per update, footprints across rounds."""
    from speechfl.attackers.reconstruction.recorded import reconstruction_from_recorded

    model, layout = _tiny()
    inp = _input(model, layout)
    g0 = inp.global_flat
    rounds = [{"global": g0, "updates": {u.client_id: u.delta.half() for u in inp.updates[:3]}},
              {"global": g0 + 0.01, "updates": {u.client_id: u.delta.half() for u in inp.updates[3:]}}]
    tokens = {u.client_id: u.tokens for u in inp.updates}
    rep = reconstruction_from_recorded(rounds, model, layout, tokens, {c: c for c in tokens}, inp.indicator)
    lab, lm = rep.labels["recorded"], rep.local_model["recorded"]
    assert lab.n_updates == 6 and lab.sign_precision == 1.0
    assert (lm.n_target_trials, lm.n_nontarget_trials) == (3, 12) and lm.footprint_eer is not None
    assert lm.relative_error is None and "relative_error" in lm.notes
    assert rep.inversion == {} and "inversion" in rep.notes
    with pytest.raises(ValueError, match="no recorded update"):
        reconstruction_from_recorded(rounds, model, layout, {}, {}, inp.indicator)


def test_local_model_recovery_degrades_monotonically_from_identity_to_top1pct():
    """Top-k keeps nested coordinate sets as k shrinks, so ||D(C(x)) - x|| can only grow: 0 for identity."""
    model, layout = _tiny()
    inp = _input(model, layout)
    specs = {"identity": None, "top10": {"name": "topk", "fraction": 0.1}, "top1": {"name": "topk", "fraction": 0.01}}
    rep = run_reconstruction(inp, ReconstructionConfig(compressors=specs, threats=("local_model",)))
    errs = [rep.local_model[n].relative_error for n in specs]
    assert errs[0] == 0.0 < errs[1] < errs[2] <= 1.0
    cos = [rep.local_model[n].cosine for n in specs]
    assert cos[0] == pytest.approx(1.0) and cos[0] > cos[1] > cos[2] > 0.0

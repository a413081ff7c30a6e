"""Centralized group DRO (speechfl.fairness.pooled): per-utterance CTC, the lambda step, length-matched batches."""

import math

import pytest
import torch

from speechfl.config import ConfigError
from speechfl.fairness.pooled import OnlineGroupDRO, PooledGroupSpec, length_matched_batches
from speechfl.models.asr import ASROutput
from speechfl.models.objective import ctc_objective, per_utterance_ctc


def test_per_utterance_ctc_averages_to_the_batch_objective():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 20, 6).log_softmax(-1)
    out = ASROutput(log_probs=log_probs, lengths=torch.tensor([1.0, 0.8, 0.6]), reps=None)
    tokens = torch.tensor([[1, 2, 3, 4], [2, 2, 5, 0], [3, 1, 0, 0]])
    token_lens = torch.tensor([1.0, 0.75, 0.5])
    per = per_utterance_ctc(out, tokens, token_lens)
    assert per.shape == (3,)
    assert per.mean().item() == pytest.approx(ctc_objective(out, tokens, token_lens).item(), rel=1e-6)
    # the first utterance by hand: torch's CTC on its own, divided by its 4 targets
    one = torch.nn.functional.ctc_loss(log_probs[:1].transpose(0, 1), tokens[:1], torch.tensor([20]),
                                       torch.tensor([4]), reduction="sum")
    assert per[0].item() == pytest.approx(one.item() / 4, rel=1e-6)


def test_afl_step_and_loss_by_hand():
    dro = OnlineGroupDRO(PooledGroupSpec.parse({"rule": "afl", "eta": 0.1}), ["M", "F", "M"])
    loss = dro.loss(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64), ["F", "M", "M"])
    lam_f = math.exp(0.1 * 3.0) / (math.exp(0.1 * 3.0) + math.exp(0.1 * 1.5))  # L_F = 3, L_M = 1.5
    assert dro.lam[0].item() == pytest.approx(lam_f) and dro.lam.sum().item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(lam_f * 3.0 + (1 - lam_f) * 1.5)


def test_ctc_dro_smoothing_and_absent_groups_keep_their_mass():
    dro = OnlineGroupDRO(PooledGroupSpec.parse({"rule": "ctc_dro", "eta": 0.5, "alpha": 0.1}), ["F", "M"])
    dro.loss(torch.tensor([2.0, 1.0]), ["F", "M"])
    gain_f, gain_m = 0.5 * 2.0 / 0.6, 0.5 * 1.0 / 0.6  # eta L_g / (lambda_g + alpha) at lambda = 0.5
    assert dro.lam[0].item() == pytest.approx(math.exp(gain_f) / (math.exp(gain_f) + math.exp(gain_m)))
    before = dro.lam.clone()
    loss = dro.loss(torch.tensor([4.0, 5.0]), ["M", "M"])  # no F in the batch: lambda unchanged, M's loss only
    assert torch.equal(dro.lam, before) and loss.item() == pytest.approx(4.5)


def test_group_reweight_gives_each_group_half_whatever_its_count():
    dro = OnlineGroupDRO(PooledGroupSpec.parse("group_reweight"), ["F", "M"])
    loss = dro.loss(torch.tensor([3.0, 1.0, 1.0, 1.0]), ["F", "M", "M", "M"])
    assert loss.item() == pytest.approx(0.5 * 3.0 + 0.5 * 1.0)  # the plain mean would be 1.5
    assert dro.lam.tolist() == [0.5, 0.5]


def test_refusals():
    with pytest.raises(ValueError, match="at least two"):
        OnlineGroupDRO(PooledGroupSpec.parse("afl"), ["M", "M"])
    with pytest.raises(ValueError, match="unknown rule 'dro'"):
        PooledGroupSpec.parse("dro")
    with pytest.raises(ValueError, match="unknown key"):
        PooledGroupSpec.parse({"rule": "afl", "step": 1})
    dro = OnlineGroupDRO(PooledGroupSpec.parse("afl"), ["F", "M"])
    with pytest.raises(ValueError, match=r"value\(s\) \['X'\]"):
        dro.loss(torch.tensor([1.0]), ["X"])


def test_length_matched_batches_hold_the_same_audio_per_group():
    durations = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 4.0]  # M: six short utterances, F: three long ones
    groups = ["M"] * 6 + ["F"] * 3
    budget = 4 * (sum(durations) / len(durations)) / 2  # batch_size 4: 4 s per group and batch
    batches = list(length_matched_batches(durations, groups, batch_size=4, seed=3, n_batches=6))
    assert batches == list(length_matched_batches(durations, groups, batch_size=4, seed=3, n_batches=6))
    for b in batches:
        for g in ("F", "M"):
            mine = [i for i in b if groups[i] == g]
            total = sum(durations[i] for i in mine)
            assert total >= budget and total - durations[mine[-1]] < budget  # stops at the first crossing
    # without replacement within a pass: the first 3 batches use 12 distinct M utterance slots = two passes
    m_seen = [i for b in batches[:3] for i in b if groups[i] == "M"]
    assert sorted(m_seen[:6]) == list(range(6))


def test_federated_group_dro_is_refused_naming_the_key():
    from speechfl.config.experiment import _client
    from speechfl.config.engine import Engine

    spec = {"client": {"local_epochs": 1, "group_dro": {"rule": "afl"}}}
    with pytest.raises(ConfigError, match="client.group_dro: .*engine=inprocess.*server_optimizer afl"):
        _client(spec, Engine.INPROCESS)
    assert _client(spec, Engine.CENTRALIZED).group_dro == {"rule": "afl"}


def test_stratified_sample_gives_each_group_an_equal_share():
    from collections import Counter

    from speechfl.federated.setup import stratified_sample

    groups = {f"f{i}": "F" for i in range(6)} | {f"m{i:02d}": "M" for i in range(26)}
    seen = Counter()
    for r in range(1, 41):
        got = stratified_sample(groups, 8, seed=3, round_=r)
        assert got == sorted(got) and len(set(got)) == 8
        assert Counter(groups[c] for c in got) == {"F": 4, "M": 4}
        seen.update(got)
    assert stratified_sample(groups, 8, 3, 5) == stratified_sample(groups, 8, 3, 5)
    assert stratified_sample(groups, 8, 3, 5) != stratified_sample(groups, 8, 3, 6)
    assert set(seen) == set(groups)  # every client is reachable
    # odd counts: the remainder goes to one group, chosen per round
    assert {Counter(groups[c] for c in stratified_sample(groups, 7, 3, r))["F"] for r in range(1, 30)} == {3, 4}
    # a group smaller than its share gives all it has; the others fill the round
    small = {"f0": "F", "f1": "F"} | {f"m{i}": "M" for i in range(10)}
    assert Counter(small[c] for c in stratified_sample(small, 8, 0, 1)) == {"F": 2, "M": 6}
    three = {"a0": "A", "b0": "B", "b1": "B", "c0": "C", "c1": "C", "c2": "C", "c3": "C"}
    assert Counter(three[c] for c in stratified_sample(three, 6, 0, 1)) == {"A": 1, "B": 2, "C": 3}
    with pytest.raises(ValueError, match="count=13 but there are 12 clients"):
        stratified_sample(small, 13, 0, 1)

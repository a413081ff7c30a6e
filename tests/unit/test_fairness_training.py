"""Fairness-aware server steps: q-FedAvg (bitwise FedAvg at q=0, hand-computed step), AFL/CTC-DRO lambda, refusals."""

import math

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, get_compressor
from speechfl.data.partition import Partition
from speechfl.fairness import (check_fairness_compatible, client_groups, group_losses, mixture_coefficients,
                               qfedavg_coefficients, reported_losses, update_lambda)
from speechfl.federated.server import Received, Server
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.registry import RegistryError
from speechfl.robustness import build_robust_pipeline

D = 7


def ctx(r=1):
    return CompressionContext(round=r, seed=0, layout=[("w", (D,))], dim=D)


def server(opt):
    return Server(global_flat=torch.zeros(D), optimizer=opt, uplink=get_compressor("identity"),
                  robust=build_robust_pipeline("weighted_mean", []))


def received(srv, cid, vec, n, loss, r=1):
    return Received(cid, srv.uplink.encode(vec, {"client_seed": 1}, ctx(r)), n, {"global_loss": loss})


def test_qfedavg_with_q0_is_fedavg_bitwise():
    gen = torch.Generator().manual_seed(0)
    fedavg = server(SERVER_OPTIMIZERS.build("fedavg"))
    qfed = server(SERVER_OPTIMIZERS.build("qfedavg", q=0.0, lipschitz=37.0))
    for r in range(1, 4):
        rows = [(f"c{i}", torch.randn(D, generator=gen), int(torch.randint(1, 50, (1,), generator=gen)),
                 float(torch.rand(1, generator=gen)) * 5) for i in range(5)]
        a = fedavg.aggregate([received(fedavg, c, v, n, f, r) for c, v, n, f in rows], ctx(r))
        b = qfed.aggregate([received(qfed, c, v, n, f, r) for c, v, n, f in rows], ctx(r))
        assert torch.equal(a.new_global, b.new_global)
        assert a.weights == pytest.approx(b.weights)


def test_qfedavg_step_by_hand():
    # delta_1 = [1, 0], delta_2 = [0, 2], F = [1, 4], q = 1, L = 2, equal weights.
    # Authors' form: Delta_k = L (w - w_k) = -2 delta_k; h_1 = q F^0 ||Delta_1||^2 + L F = 4 + 2 = 6,
    # h_2 = 16 + 8 = 24; w <- w - (1 * Delta_1 + 4 * Delta_2) / 30 = [2/30, 16/30].
    coef = qfedavg_coefficients(torch.tensor([1.0, 4.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64),
                                torch.tensor([1.0, 4.0], dtype=torch.float64), q=1.0, lipschitz=2.0)
    assert coef.tolist() == pytest.approx([1 / 15, 4 / 15], rel=1e-8)
    srv = server(SERVER_OPTIMIZERS.build("qfedavg", q=1.0, lipschitz=2.0))
    pad = [0.0] * (D - 2)
    out = srv.aggregate([received(srv, "a", torch.tensor([1.0, 0] + pad), 1, 1.0),
                         received(srv, "b", torch.tensor([0.0, 2] + pad), 1, 4.0)], ctx())
    assert out.new_global[:2].tolist() == pytest.approx([2 / 30, 16 / 30], rel=1e-6)
    assert out.weights == pytest.approx({"a": 0.2, "b": 0.8})


def _authors_step(deltas, losses, p, q, lipschitz):
    """Slow oracle: the authors' loop with sample weights p_k inside both sums (float64)."""
    num, den = np.zeros(deltas.shape[1]), 0.0
    for d, f, w in zip(deltas, losses, p):
        grad = lipschitz * (-d)  # L (w - w_k)
        f = f + 1e-10
        num += w * f ** q * grad
        den += w * (q * f ** (q - 1) * np.dot(grad, grad) + lipschitz * f ** q)
    return -num / den


@pytest.mark.parametrize("q", [0.5, 1.0, 3.0])
def test_qfedavg_matches_the_authors_loop(q):
    rng = np.random.default_rng(int(q * 10))
    deltas, losses, p = rng.normal(size=(6, D)) * 0.1, rng.uniform(0.5, 3, 6), rng.integers(1, 30, 6).astype(float)
    coef = qfedavg_coefficients(torch.tensor(losses), torch.tensor(p), torch.tensor((deltas ** 2).sum(1)), q, 10.0)
    np.testing.assert_allclose(coef.numpy() @ deltas, _authors_step(deltas, losses, p, q, 10.0), rtol=1e-10)
    # larger q moves weight toward the highest-loss client
    assert int(np.argmax(coef.numpy() / p)) == int(np.argmax(losses))


def test_missing_loss_and_bad_params_are_errors():
    with pytest.raises(ValueError, match="report_global_loss"):
        reported_losses(["a"], [{}])
    with pytest.raises(ValueError, match="finite"):
        reported_losses(["a"], [{"global_loss": float("nan")}])
    with pytest.raises(ValueError, match="q must be"):
        SERVER_OPTIMIZERS.build("qfedavg", q=-1)
    with pytest.raises(RegistryError, match="valid parameters"):
        SERVER_OPTIMIZERS.build("afl", alpha=0.1)


def test_afl_lambda_by_hand_stays_on_simplex_and_moves_to_the_worse_group():
    lam = torch.tensor([0.5, 0.5], dtype=torch.float64)
    new = update_lambda(lam, torch.tensor([2.0, 1.0], dtype=torch.float64), eta=0.5)
    assert new.tolist() == pytest.approx([math.e / (math.e + math.exp(0.5)), math.exp(0.5) / (math.e + math.exp(0.5))])
    smooth = update_lambda(lam, torch.tensor([2.0, 1.0], dtype=torch.float64), eta=0.5, alpha=0.5)
    # gains eta L / (lambda + alpha) = [1, 0.5]: same as AFL here; with lambda = [0.9, 0.1] the heavy group slows
    assert smooth.tolist() == pytest.approx(new.tolist())
    heavy = torch.tensor([0.9, 0.1], dtype=torch.float64)
    losses = torch.tensor([2.0, 1.0], dtype=torch.float64)
    ctc = update_lambda(heavy, losses, eta=0.5, alpha=0.1)
    afl = update_lambda(heavy, losses, eta=0.5)
    expected = np.array([0.9 * math.exp(1.0 / 1.0), 0.1 * math.exp(0.5 / 0.2)])
    assert ctc.tolist() == pytest.approx((expected / expected.sum()).tolist())
    assert ctc[0] < afl[0]

    srv = server(SERVER_OPTIMIZERS.build("afl", eta=1.0))
    groups = {"f1": "F", "m1": "M", "m2": "M", "m3": "M"}
    srv.optimizer.configure_fairness(groups=groups, local_lr=0.1)
    history = []
    for r in range(1, 6):  # the female client always has the larger loss
        rec = [received(srv, c, torch.ones(D) * (i + 1), 10, 3.0 if groups[c] == "F" else 1.0, r)
               for i, c in enumerate(sorted(groups))]
        srv.aggregate(rec, ctx(r))
        lam = srv.optimizer.lam
        assert bool((lam >= 0).all()) and float(lam.sum()) == pytest.approx(1.0)
        history.append(srv.optimizer.weights_by_group["F"])
    assert history == sorted(history) and history[0] > 0.5 and history[-1] > 0.99


def test_absent_group_keeps_its_mass_and_group_losses():
    lam = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    out = update_lambda(lam, torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64), eta=1.0)
    assert float(out[1]) == 0.3 and float(out.sum()) == pytest.approx(1.0) and float(out[2]) > 0.5
    losses = group_losses(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 2]), 3)
    assert float(losses[0]) == pytest.approx((1 + 9) / 4) and math.isnan(float(losses[1])) and float(losses[2]) == 5


def test_group_reweight_gives_each_group_equal_total_weight():
    coef = mixture_coefficients(torch.tensor([10.0, 10.0, 20.0, 5.0]), torch.tensor([0, 1, 1, 1]),
                                torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert coef.tolist() == pytest.approx([0.5, 0.5 * 10 / 35, 0.5 * 20 / 35, 0.5 * 5 / 35])
    srv = server(SERVER_OPTIMIZERS.build("group_reweight"))
    srv.optimizer.configure_fairness(groups={"a": "F", "b": "M", "c": "M"}, local_lr=0.1)
    out = srv.aggregate([received(srv, "a", torch.ones(D), 1, 9.0), received(srv, "b", torch.zeros(D), 1, 0.0),
                         received(srv, "c", torch.zeros(D), 1, 0.0)], ctx())
    assert torch.allclose(out.new_global, torch.full((D,), 0.5))
    state = srv.optimizer.state_dict()
    again = SERVER_OPTIMIZERS.build("group_reweight")
    again.configure_fairness(groups={"a": "F", "b": "M", "c": "M"}, local_lr=0.1)
    again.load_state_dict(state)
    assert torch.equal(again.lam, srv.optimizer.lam)


class _Robust:
    def __init__(self, name):
        self.name = name


@pytest.mark.parametrize("extra,engine,robust,reason", [
    ({"secagg": {}}, "inprocess", "weighted_mean", "masked sum"),
    ({"dp_user": {"clip": 1.0}}, "inprocess", "weighted_mean", "dp_user"),
    ({"dp_sample": {"noise_multiplier": 1.0}}, "inprocess", "weighted_mean", "dp_sample"),
    ({}, "inprocess", "krum", "aggregator 'krum'"),
    ({"malicious": {"count": 1}}, "inprocess", "weighted_mean", "reported loss"),
    ({}, "centralized", "weighted_mean", "pools every speaker"),
    ({}, "flower-sim", "weighted_mean", "engine 'flower-sim'"),
])
def test_refusals_name_the_reason(extra, engine, robust, reason):
    with pytest.raises(ValueError, match="cannot be combined with") as info:
        check_fairness_compatible({"server_optimizer": {"name": "qfedavg"}, **extra}, _Robust(robust), engine)
    assert reason in str(info.value)
    check_fairness_compatible({"server_optimizer": "afl"}, _Robust("weighted_mean"), "inprocess")


def test_client_groups_need_one_group_per_client():
    part = Partition(clients={"c1": ["s1"], "c2": ["s2", "s3"]}, utterances={})
    with pytest.raises(ValueError, match="one gender per client"):
        client_groups(part, {"s1": "F", "s2": "F", "s3": "M"}, "gender", None)
    part = Partition(clients={"c1": ["s1"], "c2": ["s2"]}, utterances={})
    assert client_groups(part, {"s1": "F", "s2": "M"}, "gender", None) == {"c1": "F", "c2": "M"}
    with pytest.raises(ValueError, match="two gender groups"):
        client_groups(part, {"s1": "F", "s2": "F"}, "gender", None)


def test_gender_gap_and_privacy_group_gaps_by_hand():
    from speechfl.fairness.tradeoff import gender_gap, privacy_group_gaps

    res = {"test": {"cer": 30.0, "by_group": {"gender": {"F": {"cer": 40.0}, "M": {"cer": 25.0}}}}}
    assert gender_gap(res) == {"F": 40.0, "M": 25.0, "gap": 15.0, "mean": 30.0}
    reports = {
        "speaker": {"families": {"linear": {"per_gender": {"F": {"top1": 0.9, "eer": 0.1},
                                                           "M": {"top1": 0.6, "eer": None}}}}},
        "membership": {"per_group": {"F": {"threshold": {"auc": 0.7}}, "M": {"threshold": {"auc": 0.55}}}},
        "source_inference": {"per_client_accuracy": {"c1": 1.0, "c2": 0.5, "c3": 0.25}},
    }
    out = privacy_group_gaps(reports, {"c1": "F", "c2": "M", "c3": "M"})
    assert out["speaker/linear"]["top1_gap"] == pytest.approx(0.3) and out["speaker/linear"]["eer_gap"] is None
    assert out["membership/threshold"]["auc_gap"] == pytest.approx(0.15)
    assert out["source_inference"]["groups"]["M"]["mean"] == pytest.approx(0.375)
    assert out["source_inference"]["abs_gap"] == pytest.approx(0.625)
    assert "fbank_speaker/linear" not in out


def test_accent_groups_come_from_speakers_txt(tmp_path):
    (tmp_path / "SPEAKERS.TXT").write_text(
        ";ID |SEX| SUBSET |MINUTES| NAME\n"
        "1001 | F | train | 1.00 | espeak-ng en-us+f1 pitch 50 range 50 rate 150\n"
        "1002 | M | train | 1.00 | espeak-ng en-gb-scotland+m3 pitch 40 range 50 rate 160\n")
    part = Partition(clients={"1001": ["1001"], "1002": ["1002"]}, utterances={})
    assert client_groups(part, {}, "accent", tmp_path) == {"1001": "en-us", "1002": "en-gb-scotland"}
    (tmp_path / "SPEAKERS.TXT").write_text("1001 | F | train | 1.00 | Kristin LeMoine\n")
    with pytest.raises(ValueError, match="not a synthetic corpus"):
        client_groups(part, {}, "accent", tmp_path)

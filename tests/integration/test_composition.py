"""Every pair of {dp_user, dp_sample, secagg, robust aggregator, uplink compressor, speaker adversary,
malicious clients} either runs with its documented maths (checked here) or is refused at setup with the
reason (issue 13 §2). One round on the tiny corpus, 4 clients, 1 local step; refusals build the setup only.
"""

import math

import pytest
import torch

from speechfl.experiment.run import run_federated
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from tests.integration.helpers import FED_HPARAMS, fed_hparams

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning",
                                        "ignore:Secure RNG turned off:UserWarning")

BASE = ("--rounds=1", "--eval_every=0", "--clients_per_round=4", "--augment=null", "--dropout=0.0",
        "--client={local_epochs: null, local_steps: 1, batch_size: 4, optimizer: {name: sgd, lr: 0.1}, "
        "max_grad_norm: null}")
C, Z = 0.5, 1.0
DPU = f"--dp_user={{clip: {C}, noise_multiplier: {Z}, delta: 1.0e-3}}"
DPS = ("--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}", "--rnn_type=dpgru")
SEC = "--secagg={}"
ROB = "--aggregator={name: trimmed_mean, f: 1}"
RANDK = "--uplink={name: randk, fraction: 0.1}"
ADV = "--adversary={target: speaker, heads: [linear], weight: 0.5}"
FLIP = "--malicious={count: 1, attack: {name: sign_flip, scale: 4.0}}"
NAN = "--malicious={count: 1, attack: {name: nonfinite}}"


def _flat(*parts):
    out = []
    for p in parts:
        out.extend([p] if isinstance(p, str) else p)
    return out


def one_round(overrides, out, *extra, clients=4):
    """Run round 1; return (setup, record, what the server received, its RoundAggregate)."""
    setup = build_setup(fed_hparams(overrides, out, *BASE, *_flat(*extra)), progress=False)
    sim = Simulation(setup, out, progress=False)
    seen = {}
    aggregate = sim.server.aggregate

    def spy(received, ctx, participants=None):
        seen["received"], seen["ctx"] = received, ctx
        seen["agg"] = aggregate(received, ctx, participants)
        return seen["agg"]

    sim.server.aggregate = spy
    record = sim.run_round()
    assert len(record["clients"]) == clients
    return setup, record, seen["received"], seen["agg"]


def refused(overrides, out, *extra):
    with pytest.raises(ValueError) as info:
        build_setup(fed_hparams(overrides, out, *BASE, *_flat(*extra)), progress=False)
    return str(info.value)


def off_support(setup, delta):
    """Number of non-zero coordinates outside this round's shared random-k mask."""
    outside = torch.ones(delta.numel(), dtype=torch.bool)
    outside[setup.uplink.support(_ctx(setup))] = False
    return int((delta[outside] != 0).sum())


def k_of(setup):
    return max(1, int(math.floor(0.1 * setup.layout.dim + 0.5)))


# -- dp_user -------------------------------------------------------------------------------------

def test_dp_user_with_dp_sample_both_account(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, DPU, DPS)
    assert rec["epsilon"] > 0 and rec["epsilon_sample_max"] > 0  # two guarantees, user- and sample-level
    assert agg.dp["clip"] == C


def test_dp_user_with_secagg_is_distributed_dp(tiny_hparams_overrides, tmp_path, monkeypatch):
    from speechfl.federated.server import Server

    seen = {}
    aggregate = Server.aggregate

    def spy(self, received, ctx, participants=None):
        seen.update(received=received, secagg=self.secagg)
        seen["agg"] = aggregate(self, received, ctx, participants)
        return seen["agg"]

    monkeypatch.setattr(Server, "aggregate", spy)
    extra = [*BASE, DPU, SEC]
    res = run_federated(fed_hparams(tiny_hparams_overrides, tmp_path, *extra), str(FED_HPARAMS), extra,
                        progress=False)
    (rec,) = res["rounds"]
    # the clipped sum (what the masks hide) vs what was released: the difference is the server's noise
    masked = {r.client_id: r.payload for r in seen["received"]}
    clipped_sum = seen["secagg"].unmask_sum(masked, rec["clients"], 1)
    noise = seen["agg"].delta * 4 - clipped_sum  # released = (sum + N(0, (zC)^2 I)) / m, m = 4
    assert float(noise.std()) == pytest.approx(Z * C, rel=0.05)
    assert float(clipped_sum.norm()) <= 4 * C + 1e-3  # each client's vector had norm <= C before masking
    assert rec["dp"]["clip"] == C and rec["dp"]["clipped_by"] == "clients"
    assert rec["epsilon"] > 0 and res["privacy_budget"]["user_level_epsilon"] == rec["epsilon"]
    assert rec["bytes_up"] == 4 * 8 * clipped_sum.numel()  # int64 masked vectors


def test_dp_user_adaptive_clipping_with_secagg_is_refused(tiny_hparams_overrides, tmp_path):
    why = refused(tiny_hparams_overrides, tmp_path, SEC,
                  f"--dp_user={{clip: {C}, noise_multiplier: 0.3, delta: 1.0e-3, adaptive: {{}}}}")
    assert "adaptive clipping needs each client's clipped-norm bit" in why


def test_dp_user_refuses_robust_aggregators(tiny_hparams_overrides, tmp_path):
    assert "sensitivity of a clipped mean" in refused(tiny_hparams_overrides, tmp_path, DPU, ROB)


def test_dp_user_with_randk_noises_only_the_shared_coordinates(tiny_hparams_overrides, tmp_path):
    setup, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, DPU, RANDK)
    k = k_of(setup)
    assert off_support(setup, agg.delta) == 0 and int((agg.delta != 0).sum()) == k  # noise on all k
    assert rec["epsilon"] > 0
    assert rec["bytes_up"] == 4 * (16 + 4 * k)


def test_dp_user_with_adversary(tiny_hparams_overrides, tmp_path):
    _, rec, _, _ = one_round(tiny_hparams_overrides, tmp_path, DPU, ADV)
    assert rec["epsilon"] > 0 and rec["adversary_train_accuracy"] is not None


def test_dp_user_bounds_a_malicious_client_by_the_clip(tiny_hparams_overrides, tmp_path):
    z = 0.01
    setup, rec, received, agg = one_round(tiny_hparams_overrides, tmp_path, FLIP,
                                          f"--dp_user={{clip: {C}, noise_multiplier: {z}, delta: 1.0e-3}}")
    assert rec["malicious"] and rec["epsilon"] > 0
    d = setup.layout.dim
    # ||sum of clipped|| <= 4 C; the noise adds about z C sqrt(d)
    assert float(agg.delta.norm()) * 4 <= 4 * C + 1.2 * z * C * math.sqrt(d)
    raw = torch.stack([setup.uplink.decode(r.payload, _ctx(setup)) for r in received])
    assert float(raw.norm(dim=1).max()) > C  # the attacker's update was larger than the clip


def _ctx(setup):
    from speechfl.federated.simulation import compression_context

    return compression_context(setup, 1)


# -- dp_sample -----------------------------------------------------------------------------------

def test_dp_sample_with_secagg(tiny_hparams_overrides, tmp_path):
    setup, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, DPS, SEC)
    assert rec["epsilon_sample_max"] > 0 and rec["rejected"] == {} and sorted(agg.accepted) == rec["clients"]
    assert rec["bytes_up"] == 4 * 8 * setup.layout.dim


def test_dp_sample_with_robust_aggregator(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, DPS, ROB)
    assert rec["epsilon_sample_max"] > 0 and len(agg.accepted) == 4


def test_dp_sample_with_randk(tiny_hparams_overrides, tmp_path):
    setup, rec, _, _ = one_round(tiny_hparams_overrides, tmp_path, DPS, RANDK)
    assert rec["epsilon_sample_max"] > 0 and rec["bytes_up"] == 4 * (16 + 4 * k_of(setup))


def test_dp_sample_with_adversary(tiny_hparams_overrides, tmp_path):
    _, rec, _, _ = one_round(tiny_hparams_overrides, tmp_path, DPS, ADV)
    assert rec["epsilon_sample_max"] > 0 and rec["adversary_train_accuracy"] is not None


def test_dp_sample_with_malicious_clients(tiny_hparams_overrides, tmp_path):
    _, rec, _, _ = one_round(tiny_hparams_overrides, tmp_path, DPS, FLIP)
    assert rec["epsilon_sample_max"] > 0 and len(rec["malicious"]) == 1


def test_dp_sample_trains_on_poisson_batches(tiny_hparams_overrides, tmp_path, monkeypatch):
    import speechfl.federated.client as client

    sizes = []
    loss = client.training_loss
    monkeypatch.setattr(client, "training_loss", lambda model, batch, **kw: (sizes.append(len(batch.id)),
                                                                            loss(model, batch, **kw))[1])
    one_round(tiny_hparams_overrides, tmp_path, DPS, "--clients_per_round=1", "--client={local_epochs: null, "
              "local_steps: 6, batch_size: 4, optimizer: {name: sgd, lr: 0.1}, max_grad_norm: null}", clients=1)
    # shuffled fixed-size batches of 4 from 12 utterances would all hold 4; Poisson(q = 1/3) sizes vary
    assert len(sizes) <= 6 and len(set(sizes)) > 1 and abs(sum(sizes) / len(sizes) - 4) < 2


# -- secagg --------------------------------------------------------------------------------------

def test_secagg_refuses_robust_aggregators(tiny_hparams_overrides, tmp_path):
    assert "individual client updates" in refused(tiny_hparams_overrides, tmp_path, SEC, ROB)


def test_secagg_with_randk_masks_k_values_and_equals_plain_randk(tiny_hparams_overrides, tmp_path):
    setup, rec, received, agg = one_round(tiny_hparams_overrides, tmp_path / "s", SEC, RANDK)
    _, _, _, plain = one_round(tiny_hparams_overrides, tmp_path / "p", RANDK)
    k = k_of(setup)
    assert all(r.payload.numel() == k for r in received) and rec["bytes_up"] == 4 * 8 * k
    assert off_support(setup, agg.delta) == 0
    assert torch.allclose(agg.delta, plain.delta, atol=1e-5)
    for spec, why in (("{name: topk, fraction: 0.1}", "not linear"),
                      ("{name: ef, inner: {name: randk, fraction: 0.1}}", "keeps client memory")):
        assert why in refused(tiny_hparams_overrides, tmp_path, SEC, f"--uplink={spec}")


def test_secagg_with_adversary(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, SEC, ADV)
    assert rec["adversary_train_accuracy"] is not None and len(agg.accepted) == 4


def test_secagg_nan_client_is_dropped_and_the_round_goes_on(tiny_hparams_overrides, tmp_path):
    setup, rec, received, agg = one_round(tiny_hparams_overrides, tmp_path, SEC, NAN)
    (bad,) = rec["malicious"]
    assert rec["dropped"] == [bad] and "non-finite" in rec["rejected"][bad]
    assert sorted(agg.accepted) == sorted(c for c in rec["clients"] if c != bad)
    assert bool(torch.isfinite(agg.new_global).all()) and float(agg.delta.norm()) > 0


def test_secagg_dropout_is_recovered(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, "--secagg={dropout: 0.4}")
    assert rec["dropped"] and len(rec["dropped"]) <= 2  # the seed drops some, min_survivors = 2 remain
    assert all("dropped out after masking" in rec["rejected"][c] for c in rec["dropped"])
    assert float(agg.delta.norm()) > 0


# -- robust aggregator ---------------------------------------------------------------------------

def test_robust_with_randk_aggregates_the_k_shared_values(tiny_hparams_overrides, tmp_path):
    setup, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, ROB, RANDK)
    assert off_support(setup, agg.delta) == 0 and int((agg.delta != 0).sum()) > 0.9 * k_of(setup)
    assert "keeps a [d] state" in refused(tiny_hparams_overrides, tmp_path, RANDK,
                                          "--aggregator={name: centered_clipping, tau: 0.5, iters: 3}")


def test_robust_with_adversary(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, ROB, ADV)
    assert rec["adversary_train_accuracy"] is not None and len(agg.accepted) == 4


def test_robust_with_malicious_is_the_coordinatewise_trimmed_mean(tiny_hparams_overrides, tmp_path):
    setup, rec, received, agg = one_round(tiny_hparams_overrides, tmp_path, ROB, FLIP)
    assert len(rec["malicious"]) == 1
    rows = torch.stack([setup.uplink.decode(r.payload, _ctx(setup)) for r in received])
    oracle = rows.sort(dim=0).values[1:3].mean(0)  # drop the largest and smallest of 4 per coordinate
    assert torch.allclose(agg.delta, oracle, atol=1e-6)


# -- uplink compressor ---------------------------------------------------------------------------

def test_randk_with_adversary(tiny_hparams_overrides, tmp_path):
    setup, rec, _, _ = one_round(tiny_hparams_overrides, tmp_path, RANDK, ADV)
    assert rec["bytes_up"] == 4 * (16 + 4 * k_of(setup)) and rec["adversary_train_accuracy"] is not None


def test_compressor_rejects_an_unencodable_malicious_update_and_goes_on(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, NAN, "--uplink={name: topk, fraction: 0.1}")
    (bad,) = rec["malicious"]
    assert "could not encode" in rec["rejected"][bad] and len(agg.accepted) == 3


# -- speaker adversary + malicious ---------------------------------------------------------------

def test_adversary_with_malicious_clients(tiny_hparams_overrides, tmp_path):
    _, rec, _, agg = one_round(tiny_hparams_overrides, tmp_path, ADV, FLIP)
    assert len(rec["malicious"]) == 1 and rec["adversary_train_accuracy"] is not None
    assert len(agg.accepted) == 4


def test_every_pair_is_covered():
    names = ("dp_user", "dp_sample", "secagg", "robust", "uplink", "adversary", "malicious")
    tests = " ".join(n for n in globals() if n.startswith("test_"))
    aliases = {"robust": ("robust",), "uplink": ("randk", "compressor", "uplink"),
               "malicious": ("malicious", "nan_client")}
    missing = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not any(all(any(x in t for x in aliases.get(n, (n,))) for n in (a, b)) for t in tests.split()):
                missing.append((a, b))
    assert not missing, missing

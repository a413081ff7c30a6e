"""One gossip round's mixing on plain vectors (local training replaced by a zero step): D-PSGD contracts
at the spectral-gap rate, CHOCO keeps the average and reaches consensus through a top-k compressor,
Byzantine dissensus messages stop plain gossip and ClippedGossip bounds them."""

from types import SimpleNamespace

import pytest
import torch

from speechfl.compression import build_compressor
from speechfl.decentralized import core
from speechfl.decentralized.config import GossipConfig
from speechfl.federated.update import Update
from speechfl.robustness import build_robust_pipeline, get_attack

D, N = 40, 8


class Layout:
    dim = D

    def as_list(self):
        return [("flat", (D,))]


def fake_setup(uplink=None, malicious=(), attack=None):
    ids = [f"n{i}" for i in range(N)]
    return SimpleNamespace(partition=SimpleNamespace(client_ids=ids), seed=0, layout=Layout(),
                           init_flat=torch.zeros(D), uplink=build_compressor(uplink), malicious=set(malicious),
                           update_attack=attack, robust=build_robust_pipeline("weighted_mean"), hparams={})


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    monkeypatch.setattr(core, "train_client", lambda setup, cid, x, r, state, off: Update(
        cid, torch.zeros_like(x), 1, {"steps": 0, "train_loss": 0.0, "seconds": 0.0}))


def spread(st, nodes):
    x = torch.stack([st.x[i] for i in nodes])
    return float((x - x.mean(0)).pow(2).sum(1).mean())


def start(gc):
    st = gc.initial_state()
    gen = torch.Generator().manual_seed(1)
    for i in st.x:
        st.x[i] = torch.randn(D, generator=gen)
    return st


def test_dpsgd_contracts_at_the_spectral_gap_rate():
    gc = core.GossipCore(fake_setup(), GossipConfig(topology="ring"))
    st = start(gc)
    mean0, s0 = torch.stack(list(st.x.values())).mean(0), spread(st, range(N))
    for _ in range(10):
        gc.run_round(st)
    # ||W^t x - xbar||^2 <= (1 - gap)^(2t) ||x - xbar||^2 for symmetric doubly stochastic W
    assert spread(st, range(N)) <= (1 - gc.gap) ** 20 * s0 * (1 + 1e-5)
    assert torch.allclose(torch.stack(list(st.x.values())).mean(0), mean0, atol=1e-6)


def test_choco_topk_keeps_the_average_and_reaches_consensus():
    gc = core.GossipCore(fake_setup({"name": "topk", "fraction": 0.25}),
                         GossipConfig(topology="ring", algorithm="choco", gamma=0.3))
    st = start(gc)
    mean0, s0 = torch.stack(list(st.x.values())).mean(0), spread(st, range(N))
    sent = 0
    for _ in range(150):
        out = gc.run_round(st)
        sent = max(sent, max(out["sent_bytes"].values()))
    assert spread(st, range(N)) < 1e-3 * s0
    # sum_i sum_j W_ij (x_hat_j - x_hat_i) = 0: CHOCO never moves the network average
    assert torch.allclose(torch.stack(list(st.x.values())).mean(0), mean0, atol=1e-5)
    assert sent < 2 * (12 + 4 * D)  # two neighbours, each sent a quarter of the coordinates (+ indices)


def test_dissensus_freezes_plain_gossip_and_clipped_gossip_bounds_it():
    setup = fake_setup(malicious={"n0"}, attack=get_attack("dissensus", eps=1.0))
    plain = core.GossipCore(setup, GossipConfig(topology="complete"))
    st = start(plain)
    honest = list(range(1, N))
    before = {i: st.x[i].clone() for i in honest}
    plain.run_round(st)
    # eps = 1 cancels every honest node's pull: honest models do not move at all
    assert all(torch.allclose(st.x[i], before[i], atol=1e-5) for i in honest)
    clipped = core.GossipCore(setup, GossipConfig(topology="complete", clipping={"radius": None}))
    st = start(clipped)
    s0 = spread(st, honest)
    for _ in range(5):
        clipped.run_round(st)
    assert spread(st, honest) < 0.5 * s0  # ClippedGossip still brings honest nodes together

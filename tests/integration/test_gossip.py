"""The in-process gossip engine on the tiny corpus: FedAvg and D-PSGD agree on a complete graph, CHOCO with
the identity compressor is D-PSGD, a killed run resumes bit-identically, attacks and refusals."""

import pytest
import torch

from speechfl.decentralized import dissensus  # noqa: F401  (registers the dissensus update attack)
from speechfl.decentralized.topologies import TopologyError
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, RECIPES, TINY_MODEL

pytestmark = pytest.mark.slow  # integration tests that train a model
GOSSIP_HPARAMS = RECIPES / "decentralized" / "hparams" / "synthetic_gossip.yaml"
COMMON = ("--eval_every=0", "--gossip={topology: ring, eval_nodes: 2}")


def client(steps: int, opt: str = "{name: adam, lr: 0.003}") -> str:
    return f"--client={{local_epochs: null, local_steps: {steps}, batch_size: 4, optimizer: {opt}}}"


# The equivalence tests use SGD: Adam divides by sqrt(v) and turns float-rounding differences in
# near-zero gradients into lr-sized steps, so "the same maths in another float order" would not stay close.
SGD = "{name: sgd, lr: 0.5}"
# the two recipes' model blocks pinned to one architecture (the FedAvg recipe's defaults may change)
SAME_MODEL = ("--encoder=conv_rnn", "--n_mels=80", "--dropout=0.15", "--rnn_type=gru")


def run(base, out, *extra, hparams=GOSSIP_HPARAMS):
    common = COMMON if hparams == GOSSIP_HPARAMS else COMMON[:1]
    argv = [*base, f"--output_folder={out}", *TINY_MODEL, "--rounds=2", *common, client(2), *extra]
    return run_federated(load_hparams(hparams, argv), str(hparams), argv, progress=False)


def nodes(folder):
    return torch.load(folder / "nodes.pt", weights_only=True)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_dpsgd_on_a_complete_graph_with_one_local_step_is_fedavg(tiny_hparams_overrides, tmp_path):
    # Complete graph: Metropolis-Hastings gives W = J/n, so after each round every node holds the
    # plain mean of the half-steps x + delta_i = FedAvg with an unweighted mean and server lr 1.
    g = run(tiny_hparams_overrides, tmp_path / "gossip", client(1, SGD), *SAME_MODEL,
            "--gossip={topology: complete, eval_nodes: 1}")
    f = run(tiny_hparams_overrides, tmp_path / "fedavg", client(1, SGD), *SAME_MODEL, "--engine=inprocess",
            "--aggregator=mean", hparams=FED_HPARAMS)
    got, fed = nodes(tmp_path / "gossip"), torch.load(tmp_path / "fedavg" / "model.pt", weights_only=True)
    ref = next(iter(got.values()))
    assert all(torch.equal(v, ref) for v in got.values())  # every node holds the same model
    from speechfl.federated.update import flatten_params

    setup_model = load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, *TINY_MODEL, *SAME_MODEL])["model"]
    setup_model.load_state_dict(fed)
    from speechfl.federated.update import ParamLayout

    fed_flat = flatten_params(setup_model, ParamLayout.from_module(setup_model))
    init = flatten_params(load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, *TINY_MODEL, *SAME_MODEL])["model"],
                          ParamLayout.from_module(setup_model))
    assert float((fed_flat - init).norm()) > 1e-2  # training moved the model
    # the same maths in a different float order (sum of models vs model + mean of deltas)
    assert torch.allclose(ref, fed_flat, atol=1e-6, rtol=0)
    assert g["rounds"][-1]["consensus_distance"] == pytest.approx(0.0, abs=1e-12)
    assert g["rounds"][0]["train_loss"] == f["rounds"][0]["train_loss"]  # round 1 starts from the same model


def test_choco_with_the_identity_compressor_is_dpsgd(tiny_hparams_overrides, tmp_path):
    # gamma = 1, Q = identity: x_hat_j = h_j after the update, so x_i' = h_i + sum_j W_ij (h_j - h_i) = sum_j W_ij h_j
    run(tiny_hparams_overrides, tmp_path / "dpsgd", client(2, SGD))
    c = run(tiny_hparams_overrides, tmp_path / "choco", client(2, SGD),
            "--gossip={topology: ring, algorithm: choco, gamma: 1.0, eval_nodes: 2}")
    a, b = nodes(tmp_path / "dpsgd"), nodes(tmp_path / "choco")
    assert a.keys() == b.keys()
    # same maths, other float order (x_hat + (h' - x_hat) is h' up to rounding); round 2 trains from
    # models that differ in the last bits, which a few coordinates amplify: bound the worst and the mean error
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert max(float((a[k] - b[k]).abs().mean()) for k in a) < 1e-7
    ckpt = torch.load(tmp_path / "choco" / "checkpoint.pt", weights_only=True)
    assert len(ckpt["gossip"]["x_hat"]) == 4  # the public copies are in the checkpoint
    sec = c["rounds"][0]
    assert sec["bytes_per_node"] == pytest.approx(2 * (12 + 4 * ckpt["gossip"]["x"][0].numel()))


def test_choco_topk_resumes_bit_identically_after_a_kill(tiny_hparams_overrides, tmp_path, monkeypatch):
    extra = ("--gossip={topology: ring, algorithm: choco, gamma: 0.5, eval_nodes: 1}",
             "--uplink={name: qsgd, levels: 4}")
    full = run(tiny_hparams_overrides, tmp_path / "full", *extra)

    from speechfl.decentralized import core

    original = core.GossipCore.run_round

    def killed(self, st):
        if st.round == 1:
            raise KeyboardInterrupt("killed after round 1")
        return original(self, st)

    monkeypatch.setattr(core.GossipCore, "run_round", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_hparams_overrides, tmp_path / "resumed", *extra)
    monkeypatch.setattr(core.GossipCore, "run_round", original)
    resumed = run(tiny_hparams_overrides, tmp_path / "resumed", *extra)
    a, b = nodes(tmp_path / "full"), nodes(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["bytes_up"] for r in full["rounds"]] == [r["bytes_up"] for r in resumed["rounds"]]
    assert full["rounds"][0]["bytes_per_node"] < 4 * a[next(iter(a))].numel()  # compressed


def test_dissensus_stalls_plain_gossip_and_clipped_gossip_runs(tiny_hparams_overrides, tmp_path):
    mal = "--malicious={count: 1, attack: {name: dissensus, eps: 1.0}}"
    clean = run(tiny_hparams_overrides, tmp_path / "clean", "--gossip={topology: complete, eval_nodes: 1}")
    plain = run(tiny_hparams_overrides, tmp_path / "plain", mal, "--gossip={topology: complete, eval_nodes: 1}")
    clipped = run(tiny_hparams_overrides, tmp_path / "clipped", mal,
                  "--gossip={topology: complete, clipping: {radius: null}, eval_nodes: 1}")
    trimmed = run(tiny_hparams_overrides, tmp_path / "trimmed", mal, "--aggregator={name: trimmed_mean, f: 1}",
                  "--gossip={topology: complete, eval_nodes: 1}")
    cd = lambda res: res["rounds"][-1]["consensus_distance"]  # noqa: E731
    # eps = 1 cancels each honest node's pull to its honest neighbours: they stay apart
    assert cd(plain) > 10 * cd(clean)
    assert clipped["rounds"][-1]["train_loss"] is not None
    assert cd(trimmed) < cd(plain)  # a trimmed mean over each neighbourhood drops the dissensus message
    assert len(plain["rounds"][0]["malicious"]) == 1


def test_recorded_messages_for_curious_neighbours(tiny_hparams_overrides, tmp_path):
    res = run(tiny_hparams_overrides, tmp_path / "rec", "--record_updates=[1]",
        "--gossip={topology: ring, noise: {clip: 1.0, noise_multiplier: 0.5}, eval_nodes: 1}")
    rec = torch.load(tmp_path / "rec" / "recorded" / "round_0001.pt", weights_only=True)
    assert len(rec["updates"]) == 4 and all(v.dtype == torch.float16 for v in rec["updates"].values())
    assert set(rec["models"]) == set(rec["updates"])
    assert all(len(v) == 2 for v in rec["neighbours"].values())
    sec = res["decentralized"]
    assert res["kind"] == "decentralized" and sec["topology"] == "ring" and len(sec["consensus_distance"]) == 2
    assert sec["node_test"]["evaluated"] == ["1001"] and "first 1 of 4" in sec["node_test"]["which"]
    hops = sec["muffliato"]["pairwise_rdp_max_by_hops"]
    assert hops["1"] > hops["2"] and sec["spectral_gap"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("extra, match", [
    (("--gossip={topology: {name: ring, n: 10}}",), "has 10 nodes but the partition has only 4"),
    (("--uplink={name: topk, fraction: 0.1}",), "D-PSGD sends full models"),
    (("--secagg={}",), "secagg masks cancel only in a sum at a server"),
    (("--gossip={topology: ring, algorithm: choco}", "--uplink={name: ef, inner: {name: topk, fraction: 0.1}}"),
     "keeps an error memory"),
    (("--clients_per_round=2",), "every gossip node trains every round"),
    (("--clients_per_round=1",), "every gossip node trains every round"),
    (("--engine=gossip-dist", "--record_updates=[1]"), "record with engine=gossip"),
    (("--aggregator={name: centered_clipping, tau: 1.0}",), "keeps one \\[d\\] state"),
    (("--aggregator={name: multi_krum, f: 0, m: 4}",), r"needs 4 rows but node\(s\) .* neighbourhoods of 3"),
])
def test_refusals(tiny_hparams_overrides, tmp_path, extra, match):
    with pytest.raises((ValueError, TopologyError), match=match):
        run(tiny_hparams_overrides, tmp_path / "r", *extra)


def test_random_pairings_send_at_most_one_model_per_node(tiny_hparams_overrides, tmp_path):
    res = run(tiny_hparams_overrides, tmp_path / "pairs", "--gossip={topology: complete, pairing: true, eval_nodes: 1}")
    model_bytes = 12 + 4 * next(iter(nodes(tmp_path / "pairs").values())).numel()
    # a maximal matching of the complete graph on 4 nodes pairs everyone: one model sent per node
    assert all(r["bytes_per_node"] == model_bytes for r in res["rounds"])
    assert res["decentralized"]["mixing"] == "random_pairing"
    assert 0 < res["decentralized"]["spectral_gap"] < 1  # the run's average pairing matrix, not W = J/4 (gap 1)
    # pairs differ between rounds (seeded by round), so after 2 rounds nodes are still not all equal
    assert len({tuple(v[:5].tolist()) for v in nodes(tmp_path / "pairs").values()}) > 1


def test_evaluate_attacks_what_curious_neighbours_received(tiny_hparams_overrides, tmp_path):
    """``speechfl evaluate`` on a gossip run: the representation attackers and the server-side ones run on the
    recorded messages (what each node's neighbours received) and say what they rest on."""
    from speechfl.experiment.evaluate import evaluate_run

    run(tiny_hparams_overrides, tmp_path / "g", "--record_updates=[1, 2]", "--rounds=2",
        "--gossip={topology: ring, eval_nodes: 1}")
    res = evaluate_run(tmp_path / "g", attackers=["linear"], progress=False)
    p = res["privacy"]
    assert res["kind"] == "decentralized" and p["representations"]["strongest"]["top1"] is not None
    # 4 ring nodes recorded in rounds 1 and 2: each node's messages are linked across rounds (chance 1/4), and
    # source inference scores the training utterances against the 4 received models (chance 1/4)
    assert p["linkage"]["n_clients"] == 4 and p["linkage"]["n_probes"] == 4 and p["linkage"]["chance"] == 0.25
    assert 0.0 <= p["linkage"]["accuracy"] <= 1.0
    assert p["source_inference"]["chance"] == 0.25 and p["source_inference"]["n_utts"] > 0
    assert p["update_gender"]["n_items"] == 8  # 4 nodes x 2 recorded rounds

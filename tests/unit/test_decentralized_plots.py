"""The report figure for decentralized runs: which numbers it draws, and that it skips other engines."""

from speechfl.decentralized.plots import plot_decentralized, series


def _run(topology, cds, cers):
    rounds = [{"round": r + 1, "consensus_distance": cd, "valid_cer": c} for r, (cd, c) in enumerate(zip(cds, cers))]
    return {"rounds": rounds, "decentralized": {"topology": topology, "algorithm": "dpsgd"}}


def test_series_and_figure(tmp_path):
    results = {
        "ring": _run("ring", [1.0, 0.5, 0.2], [90.0, 70.0, None]),
        "exp": _run("exponential", [1.0, 0.1, 0.01], [88.0, 60.0, 50.0]),
        "fedavg": {"rounds": [{"round": 1, "valid_cer": 80.0}]},  # not decentralized: skipped
    }
    s = series(results)
    assert set(s) == {"ring (ring, dpsgd)", "exp (exponential, dpsgd)"}
    topo, cer, cd = s["ring (ring, dpsgd)"]
    assert topo == "ring" and cer == [(1, 90.0), (2, 70.0)] and cd == [(1, 1.0), (2, 0.5), (3, 0.2)]
    png = plot_decentralized(results, tmp_path / "dec.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_decentralized({"fedavg": results["fedavg"]}, tmp_path / "none.png") is None

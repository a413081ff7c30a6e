"""VQ codebook initialisation from public utterances: k-means oracle and the checks made before any data."""

import pytest
import torch


def test_kmeans_finds_separated_cluster_means_and_is_seeded():
    from speechfl.privacy.bottleneck import kmeans

    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([m + 0.1 * torch.randn(50, 2, generator=gen) for m in means])
    c = kmeans(x, 3, iterations=10, seed=1)
    got = sorted(c.tolist())
    want = sorted(torch.stack([x[i * 50:(i + 1) * 50].mean(0) for i in range(3)]).tolist())
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-5)  # Lloyd converges to the means
    assert torch.equal(kmeans(x, 3, 10, seed=1), c)
    with pytest.raises(ValueError, match="at least k=5 rows"):
        kmeans(x[:4], 5)


def test_vq_init_is_checked_before_any_data():
    from speechfl.privacy.bottleneck import check_vq_init

    pool = {"data_folder": "pool", "speakers": 2}
    spec = [{"name": "instance_norm"}, {"name": "vq", "codes": 4, "init": {"public_pool": pool}}]
    (i, init), = check_vq_init(spec, engine="inprocess")
    assert i == 1 and init["iterations"] == 20 and init["public_pool"]["data_folder"] == "pool"
    assert check_vq_init([{"name": "vq"}], engine="inprocess") == []
    for bad, engine, message in [
        ({"public_pool": pool}, "gossip", "has no server"),
        ({"iterations": 3}, "inprocess", r"init.public_pool is required"),
        ({"public_pool": pool, "iterations": 0}, "inprocess", "iterations must be a positive integer"),
        ({"public_pool": pool, "bogus": 1}, "inprocess", r"unknown key\(s\) \['bogus'\] in bottleneck\[0\].init"),
        ({"public_pool": {"speakers": 2}}, "centralized", r"bottleneck\[0\].init.public_pool.data_folder is required"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_vq_init([{"name": "vq", "init": bad}], engine=engine)
    with pytest.raises(ValueError, match="is the run's data_folder"):
        check_vq_init([{"name": "vq", "init": {"public_pool": pool}}], engine="inprocess", data_folder="pool")

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


def _tiny_conformer(seed=0, **kw):
    from speechfl.models.encoders import build_model

    torch.manual_seed(seed)
    return build_model("conformer", vocab_size=7, n_mels=16, dropout=0.0,
                       conformer={"preset": "tiny", "d_model": 24, "heads": 2, "d_ffn": 32, "layers": 3, **kw}).eval()


def test_bottleneck_after_a_block_splits_the_encoder_exactly():
    """Blocks 1..k, the stages, blocks k+1.. and the final norm: with the stages replaced by the identity the
    split model is the unsplit one (same weights), and encode() is the stages applied to block k's output."""
    from speechfl.privacy.bottleneck import build_bottleneck

    whole, split = _tiny_conformer(), _tiny_conformer()
    bn = build_bottleneck({"stages": ["instance_norm"], "after_layer": 2}, rep_dim=24, seed=0, engine="inprocess")
    split.attach_bottleneck(bn)
    assert split.split == 2
    feats, lengths = torch.randn(3, 200, 16), torch.tensor([1.0, 0.8, 0.5])
    with torch.no_grad():
        ref, _ = whole.encode_frames(feats, lengths)
        mid, _ = split.encode_frames(feats, lengths)
        assert torch.allclose(split.decode_frames(mid, lengths), ref, atol=1e-5)
        # block k's output by hand, from SpeechBrain's layers
        x = whole.dropout(whole.proj(__import__("speechfl.models.conformer", fromlist=["subsample"]).subsample(
            whole, feats, lengths)))
        T = x.shape[1]
        n = (lengths * T).round().clamp(min=1, max=T)
        pad = torch.arange(T)[None, :] >= n[:, None]
        whole._pad = pad[:, None, :]
        h = x
        for layer in whole.encoder.layers[:2]:
            h, _ = layer(h, src_key_padding_mask=pad, pos_embs=whole.pos(x))
        whole._pad = None
        assert torch.allclose(mid, h, atol=1e-5)
        reps, _ = split.encode(feats, lengths)
        assert torch.allclose(reps, bn(h, lengths), atol=1e-5)  # attackers see the bottleneck output
        out = split(feats, lengths)
        assert torch.equal(out.reps, reps)
        assert torch.allclose(out.log_probs, split.head(split.decode_frames(reps, lengths)).log_softmax(-1))
        # an utterance's outputs do not depend on its batch's padding
        alone = split(feats[2:3, :100], torch.ones(1))
        t = alone.log_probs.shape[1]
        assert torch.allclose(alone.log_probs[0], out.log_probs[2, :t], atol=1e-4)


def test_bottleneck_placement_errors():
    from speechfl.models.encoders import build_model
    from speechfl.privacy.bottleneck import build_bottleneck, bottleneck_spec

    assert bottleneck_spec(["instance_norm"]) == (["instance_norm"], None)
    assert bottleneck_spec({"name": "vq"}) == ([{"name": "vq"}], None)
    assert bottleneck_spec({"stages": "instance_norm", "after_layer": 1}) == (["instance_norm"], 1)
    for bad, match in [({"stages": ["instance_norm"], "after_layer": 0}, "after_layer must be a positive integer"),
                       ({"stages": ["instance_norm"], "after_layer": True}, "after_layer must be a positive integer"),
                       ({"stages": ["instance_norm"], "where": 1}, r"unknown key\(s\) \['where'\]"),
                       ({"stages": []}, "at least one stage")]:
        with pytest.raises(ValueError, match=match):
            bottleneck_spec(bad)
    model = _tiny_conformer()
    with pytest.raises(ValueError, match=r"after_layer must lie in \[1, 2\] for a 3-block conformer, got 3"):
        model.attach_bottleneck(build_bottleneck({"stages": ["instance_norm"], "after_layer": 3}, rep_dim=24,
                                                 seed=0, engine=None))
    rnn = build_model("conv_rnn", vocab_size=7, n_mels=16, conv_rnn={"hidden": 16})
    with pytest.raises(ValueError, match="encoder 'conv_rnn' cannot place a bottleneck between its layers"):
        rnn.attach_bottleneck(build_bottleneck({"stages": ["instance_norm"], "after_layer": 1}, rep_dim=rnn.rep_dim,
                                               seed=0, engine=None))

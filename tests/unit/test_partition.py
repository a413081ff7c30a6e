import pytest

from speechfl.data.partition import partition_speakers, pooled_partition


def rows(spec):
    return [{"ID": f"{s}-1-{i}", "spk_id": s} for s, n in spec.items() for i in range(n)]


def test_one_speaker_per_client_is_default():
    p = partition_speakers(rows({"10": 3, "11": 2, "12": 4}))
    assert p.clients == {"10": ["10"], "11": ["11"], "12": ["12"]}
    assert p.utterances["11"] == ["11-1-0", "11-1-1"]


def test_k_speakers_per_client_covers_every_speaker_once_and_is_seeded():
    r = rows({str(s): 2 for s in range(7)})
    p = partition_speakers(r, speakers_per_client=3, seed=1)
    spk = sorted(s for v in p.clients.values() for s in v)
    assert spk == sorted(str(s) for s in range(7))
    assert sorted(len(v) for v in p.clients.values()) == [1, 3, 3]
    assert p.clients == partition_speakers(r, speakers_per_client=3, seed=1).clients
    assert p.clients != partition_speakers(r, speakers_per_client=3, seed=2).clients


def test_min_utterances_drops_and_records():
    p = partition_speakers(rows({"a": 5, "b": 1}), min_utterances=2)
    assert list(p.clients) == ["a"]
    assert "b" in p.dropped and "1 utterances" in p.dropped["b"]
    with pytest.raises(ValueError):
        partition_speakers(rows({"a": 1}), min_utterances=2)


def test_pooled_partition_holds_everything():
    r = rows({"a": 2, "b": 3})
    p = pooled_partition(r)
    assert p.client_ids == ["pooled"] and len(p.utterances["pooled"]) == 5

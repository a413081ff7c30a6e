import pytest

from speechfl.experiment.hparams import HparamsError, apply_overrides, load_hparams

DOC = """# a comment
seed: 3
uplink: null
client:
    local_epochs: 1
    batch_size: 8
# comment of the next block
model_size: !ref <seed>
tags: [a, b]
"""


def test_override_replaces_whole_values(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text(DOC)
    hp = load_hparams(f, ["--uplink={name: topk, fraction: 0.01}", "--client={local_steps: 2}", "--seed=7"])
    assert hp["uplink"] == {"name": "topk", "fraction": 0.01}
    assert hp["client"] == {"local_steps": 2}  # replaced, not merged
    assert hp["model_size"] == 7  # !ref sees the override
    assert hp["tags"] == ["a", "b"]


def test_unknown_key_lists_valid_keys(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text(DOC)
    with pytest.raises(HparamsError, match=r"unknown override key\(s\) \['upink'\].*uplink"):
        load_hparams(f, ["--upink=x"])
    with pytest.raises(HparamsError, match="--key=value"):
        load_hparams(f, ["rounds=3"])
    with pytest.raises(HparamsError, match="does not exist"):
        load_hparams(tmp_path / "nope.yaml")


def test_apply_overrides_keeps_comments_of_following_block():
    out = apply_overrides(DOC, {"client": "{local_steps: 2}"})
    assert "# comment of the next block" in out and "batch_size" not in out


def test_placeholder_must_be_given(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("data_folder: !PLACEHOLDER\nx: 1\n")
    with pytest.raises(Exception, match="data_folder|PLACEHOLDER|placeholder"):
        load_hparams(f)
    assert load_hparams(f, ["--data_folder=/d"])["data_folder"] == "/d"


def test_overridable_keys_are_the_top_level_keys_with_their_values():
    from speechfl.experiment.hparams import overridable_keys

    text = "__set: !apply:torch.manual_seed [1]\n" + DOC + "long: " + "x" * 70 + "\n"
    keys = overridable_keys(text)
    assert list(keys) == ["seed", "uplink", "client", "model_size", "tags", "long"]
    assert keys["seed"] == "3" and keys["uplink"] == "null" and keys["tags"] == "[a, b]"
    assert keys["client"] == "..." and keys["model_size"] == "!ref <seed>"
    assert keys["long"] == "x" * 57 + "..."

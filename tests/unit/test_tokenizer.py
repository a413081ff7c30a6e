import pytest

from speechfl.data.tokenizer import ALPHABET, CharTokenizer


def test_round_trip_librispeech_text():
    tok = CharTokenizer()
    text = "HE SAID THAT'S THE WAY IT IS"
    ids = tok.encode(text)
    assert 0 not in ids  # blank is never a target
    assert tok.decode(ids) == text
    assert len(tok) == len(ALPHABET) == 29


def test_normalizes_case_and_spaces():
    tok = CharTokenizer()
    assert tok.decode(tok.encode("  hello   World ")) == "HELLO WORLD"


def test_unknown_character_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"\['3'\]"):
        CharTokenizer().encode("ROOM 3")


def test_ctc_collapse():
    tok = CharTokenizer()
    a, b, sp = tok.index["A"], tok.index["B"], tok.index[" "]
    # A A _ A B B _ _ -> "AAB"; a space run becomes one space; blanks separate repeats
    assert tok.decode_ctc([a, a, 0, a, b, b, 0, sp, sp, b]) == "AAB B"
    with pytest.raises(ValueError):
        tok.decode([99])

"""Transcript normalisation to the LibriSpeech convention: A-Z, apostrophe, single spaces.

What is safe is normalised, and reported by the caller:

- upper case (``ß`` becomes ``SS``);
- accents folded by Unicode NFKD decomposition with the combining marks dropped
  (``Café naïve`` -> ``CAFE NAIVE``), plus the Latin letters NFKD leaves whole
  (``Æ Œ Ø Ł Đ Ð Þ ı``) spelled as LibriSpeech spells them;
- typographic apostrophes (``’ ‘ ʼ ´``) -> ``'``;
- punctuation (Unicode category ``P*``) and any whitespace -> a word break (the LibriSpeech
  transcripts have no punctuation); invisible format characters (``Cf``) dropped.

What cannot be mapped without guessing is refused (returned in ``unmappable``): digits,
symbols and punctuation that is read aloud (``3``, ``$``, ``%``, ``&``, ``@``: they need a
spoken form), letters of other scripts, control characters.
"""

import unicodedata
from dataclasses import dataclass
from typing import Tuple

LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
ALLOWED = LETTERS | {"'", " "}
_SPELLED = {"Æ": "AE", "Œ": "OE", "Ø": "O", "Ł": "L", "Đ": "D", "Ð": "D", "Þ": "TH", "ı": "I",
            "ſ": "S", "ĸ": "K"}
_APOSTROPHES = frozenset("\u2019\u2018\u02bc\u00b4\u0060\u02b9\u2032")
# punctuation-category characters that are read aloud ("percent", "and", "at"): never dropped
_SPOKEN = frozenset("%&#@*/\\§¶‰‱№†‡")


@dataclass(frozen=True)
class Normalized:
    """The result of :func:`normalize_transcript`.

    Attributes
    ----------
    text : str
        The normalised transcript ('' when nothing usable is left).
    changed : tuple of str
        Distinct original characters that were folded, mapped or dropped (sorted).
    unmappable : tuple of str
        Distinct characters that cannot be mapped safely (sorted); non-empty means refuse.
    """

    text: str
    changed: Tuple[str, ...]
    unmappable: Tuple[str, ...]


def _map_char(ch: str):
    """(replacement, ok): the text ``ch`` becomes, and whether that is a safe mapping."""
    if ch in _APOSTROPHES:
        return "'", True
    if ch.isspace():
        return " ", True
    category = unicodedata.category(ch)
    if ch in _SPOKEN:
        return "", False
    if category.startswith("P") and ch != "'":
        return " ", True
    if category == "Cf":
        return "", True
    upper = ch.upper()
    if all(c in ALLOWED for c in upper):
        return upper, True
    out = []
    for c in unicodedata.normalize("NFKD", upper):
        if unicodedata.combining(c):
            continue
        c = _SPELLED.get(c, c).upper()
        if not all(x in ALLOWED for x in c):
            return "", False
        out.append(c)
    return ("".join(out), True) if out else ("", False)


def normalize_transcript(text: str) -> Normalized:
    """Normalise ``text`` to upper-case A-Z, apostrophes and single spaces (see the module doc)."""
    pieces, changed, bad = [], set(), set()
    for ch in text:
        if ch in ALLOWED:
            pieces.append(ch)
            continue
        replacement, ok = _map_char(ch)
        if not ok:
            bad.add(ch)
            continue
        pieces.append(replacement)
        if replacement != ch and not (ch.isspace() and replacement == " ") and not (
                ch.isalpha() and ch.upper() == replacement and ch.upper() in LETTERS):
            changed.add(ch)
    return Normalized(" ".join("".join(pieces).split()), tuple(sorted(changed)), tuple(sorted(bad)))


def describe(chars) -> str:
    """``['é' (U+00E9), ...]``: characters with their code points, for reports."""
    return "[" + ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars) + "]"

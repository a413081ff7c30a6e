"""Character tokenizer for CTC: blank, space, apostrophe and A-Z.

LibriSpeech transcripts are upper-case letters, apostrophes and spaces. Any
other character is an error (naming the character and the text), never a
silent drop: a manifest with stray symbols means the data preparation is wrong.
"""

from __future__ import annotations

from typing import Iterable, List

BLANK = "<blank>"
ALPHABET = (BLANK, " ", "'") + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class CharTokenizer:
    """Maps transcripts to integer ids and back. Index 0 is the CTC blank."""

    def __init__(self, alphabet: Iterable[str] = ALPHABET):
        self.symbols = tuple(alphabet)
        if self.symbols[0] != BLANK:
            raise ValueError("the first symbol must be the CTC blank")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("duplicate symbols in the alphabet")
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.blank_id = 0

    def __len__(self) -> int:
        return len(self.symbols)

    @staticmethod
    def normalize(text: str) -> str:
        """Upper-case and collapse whitespace (the LibriSpeech convention)."""
        return " ".join(text.upper().split())

    def encode(self, text: str) -> List[int]:
        text = self.normalize(text)
        bad = sorted({c for c in text if c not in self.index or c == BLANK})
        if bad:
            raise ValueError(f"transcript has characters outside the alphabet {bad}: {text!r}")
        return [self.index[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text (blanks dropped). Does not collapse repeats: see :meth:`decode_ctc`."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"token id {i} outside vocabulary of size {len(self.symbols)}")
            if i != self.blank_id:
                out.append(self.symbols[i])
        return "".join(out)

    def decode_ctc(self, frame_ids: Iterable[int]) -> str:
        """Greedy CTC collapse of per-frame argmax ids: merge repeats, drop blanks."""
        collapsed, prev = [], None
        for i in frame_ids:
            i = int(i)
            if i != prev:
                collapsed.append(i)
            prev = i
        return " ".join(self.decode(collapsed).split())

"""SpecAugment (Park et al. 2019) from SpeechBrain's ``SpectrogramDrop``: time and frequency masks."""

from __future__ import annotations

import torch
from speechbrain.augment.freq_domain import SpectrogramDrop


class SpecAugment(torch.nn.Module):
    """Drop ``time_drops`` time bands and ``freq_drops`` frequency bands of a [B, T, F] batch.

    Parameters
    ----------
    time_drops, freq_drops : int
        Maximum number of masked bands (at least one each when > 0).
    time_width, freq_width : int
        Maximum width of each band, in frames / mel bins.
    """

    def __init__(self, time_drops: int = 2, time_width: int = 12, freq_drops: int = 2, freq_width: int = 10):
        super().__init__()
        self.time = (
            SpectrogramDrop(drop_length_low=1, drop_length_high=time_width, drop_count_low=1,
                            drop_count_high=time_drops, dim=1)
            if time_drops > 0 else None
        )
        self.freq = (
            SpectrogramDrop(drop_length_low=1, drop_length_high=freq_width, drop_count_low=1,
                            drop_count_high=freq_drops, dim=2)
            if freq_drops > 0 else None
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Masked copy of ``feats``; the input is never written to.

        SpeechBrain's ``SpectrogramDrop`` masks with ``masked_fill_`` (in place). A padded batch
        of one utterance shares memory with the cached features, so masking the input itself
        would corrupt the feature cache (and make a resumed run differ from an uninterrupted one).
        """
        feats = feats.clone()
        if self.time is not None:
            feats = self.time(feats)
        if self.freq is not None:
            feats = self.freq(feats)
        return feats

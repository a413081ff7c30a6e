"""Encoders by name: every registered model implements :class:`speechfl.models.protocol.ASRModelProtocol`.

hparams select one with ``encoder: <name>``; :func:`build_model` receives every encoder's
settings and uses the selected one's::

    model: !apply:speechfl.models.encoders.build_model
        name: !ref <encoder>
        vocab_size: !apply:len [!ref <tokenizer>]
        n_mels: !ref <n_mels>
        dropout: !ref <dropout>
        conv_rnn: {channels: ..., proj: ..., hidden: ..., layers: ..., rnn_type: ...}
        conformer: {preset: cpu}

* ``conv_rnn``: conv subsampling + bidirectional GRU/LSTM (:class:`speechfl.models.asr.ASRModel`).
* ``conformer``: conv subsampling + SpeechBrain ConformerEncoder, presets tiny/cpu/small
  (:class:`speechfl.models.conformer.ConformerASR`).
"""

from __future__ import annotations

from typing import Dict, Optional

from speechfl.models.asr import ASRModel
from speechfl.models.conformer import ConformerASR
from speechfl.models.protocol import check_model
from speechfl.registry import Registry

ENCODERS = Registry("encoder")
ENCODERS.register("conv_rnn")(ASRModel)
ENCODERS.register("conformer")(ConformerASR)


def build_model(name: str, vocab_size: int, n_mels: int, dropout: float = 0.1, **settings: Optional[Dict]):
    """Build encoder ``name`` with ``settings[name]`` (the other encoders' settings are not used).

    Raises ``ValueError`` (listing the valid names/parameters) for an unknown encoder or parameter.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS.names())}")
    unknown = sorted(set(settings) - set(ENCODERS.names()))
    if unknown:
        raise ValueError(f"settings given for unknown encoder(s) {unknown}; valid: {', '.join(ENCODERS.names())}")
    params = dict(settings.get(name) or {})
    model = ENCODERS.build(name, vocab_size=int(vocab_size), n_mels=int(n_mels), dropout=float(dropout), **params)
    model.encoder_name = name
    check_model(model, vocab_size)
    return model

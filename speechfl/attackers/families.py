"""Registry of speaker-attacker families, chosen by name.

``linear`` and ``mlp`` attack mean+std pooled statistics
(:mod:`speechfl.attackers.probes`); ``xvector`` and ``ecapa`` attack the frame
sequence with SpeechBrain TDNN lobes (:mod:`speechfl.attackers.xvector`).
``SPEAKER_ATTACKERS.build("mlp", hidden=256)`` builds one; unknown names or
parameters raise a ``RegistryError`` listing the valid ones.
"""

from __future__ import annotations

from speechfl.attackers.probes import LinearProbe, MlpProbe
from speechfl.attackers.xvector import SequenceAttacker
from speechfl.registry import Registry

SPEAKER_ATTACKERS = Registry("speaker attacker")

SPEAKER_ATTACKERS.register("linear")(LinearProbe)
SPEAKER_ATTACKERS.register("mlp")(MlpProbe)


@SPEAKER_ATTACKERS.register("xvector")
def _xvector(
    *,
    channels: int = 64,
    emb_dim: int = 128,
    epochs: int = 10,
    batch_size: int = 32,
    crop: int = 120,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
) -> SequenceAttacker:
    return SequenceAttacker(
        kind="xvector", channels=channels, emb_dim=emb_dim, epochs=epochs, batch_size=batch_size,
        crop=crop, lr=lr, weight_decay=weight_decay,
    )


@SPEAKER_ATTACKERS.register("ecapa")
def _ecapa(
    *,
    channels: int = 64,
    emb_dim: int = 128,
    epochs: int = 10,
    batch_size: int = 32,
    crop: int = 120,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
) -> SequenceAttacker:
    return SequenceAttacker(
        kind="ecapa", channels=channels, emb_dim=emb_dim, epochs=epochs, batch_size=batch_size,
        crop=crop, lr=lr, weight_decay=weight_decay,
    )

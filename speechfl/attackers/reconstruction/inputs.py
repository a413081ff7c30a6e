"""Typed inputs of :func:`~speechfl.attackers.reconstruction.run.run_reconstruction`, validated before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from speechfl.attackers.reconstruction.matching import MatchConfig
from speechfl.attackers.types import UtteranceSet
from speechfl.federated.update import ParamLayout

THREATS = ("labels", "inversion", "local_model")


@dataclass
class AttackedUpdate:
    """One client update and what it was trained on (the ground truth the attacks are scored against).

    Attributes
    ----------
    client_id, speaker : str
        The client and the speaker of its data (footprint targets: same speaker).
    delta : torch.Tensor
        float32 ``[d]``: the client's true update (``true_updates=True``), or the server's
        decoded view of it (``true_updates=False``, e.g. ``speechfl evaluate``'s recorded rounds).
    tokens : list of list of int
        Token ids of the transcripts of the utterances behind the update.
    features : list of torch.Tensor or None
        Their true features ``[T_i, F]`` (inversion's ground truth); None: not inverted.
    prior : list of torch.Tensor or None
        The attacker's own start features ``[T_i, F]`` for the inversion (e.g. text-to-speech of
        the known transcript in a public voice, stretched to the frame count); None: noise.
    """

    client_id: str
    speaker: str
    delta: torch.Tensor
    tokens: List[List[int]]
    features: Optional[List[torch.Tensor]] = None
    prior: Optional[List[torch.Tensor]] = None


@dataclass
class ReconstructionConfig:
    """What to attack and how.

    Attributes
    ----------
    compressors : dict
        View name -> compressor spec (``speechfl.compression.build_compressor``); each true
        update is encoded and decoded with it (per-client state kept across a client's
        updates, in input order) before the attacks. Must be ``{"identity": None}`` when
        the updates are already the server's view.
    threats : tuple of str
        Subset of ``labels``, ``inversion``, ``local_model``.
    match : MatchConfig
        Gradient-matching settings of the inversion.
    max_inversions : int
        Updates inverted per view (the first ones holding features).
    speaker_families : tuple of str
        Speaker attackers (``SPEAKER_ATTACKERS``) trained on the real reference features.
    seed : int
        Seeds compression (run seed), inversion starts and attackers.
    """

    compressors: Dict[str, Any] = field(default_factory=lambda: {"identity": None})
    threats: Tuple[str, ...] = THREATS
    match: MatchConfig = field(default_factory=MatchConfig)
    max_inversions: int = 2
    speaker_families: Tuple[str, ...] = ("xvector",)
    seed: int = 0

    def validate(self) -> None:
        from speechfl.attackers.families import SPEAKER_ATTACKERS
        from speechfl.compression import build_compressor

        if not self.compressors:
            raise ValueError("ReconstructionConfig.compressors is empty: give at least {'identity': None}")
        for name, spec in self.compressors.items():
            try:
                build_compressor(spec)
            except (ValueError, TypeError) as exc:  # registry/parameter errors: re-raise naming the view
                raise ValueError(f"compressor view {name!r}: {exc}") from None
        bad = [t for t in self.threats if t not in THREATS]
        if bad or not self.threats:
            raise ValueError(f"unknown reconstruction threats {bad}; valid: {', '.join(THREATS)}")
        unknown = [f for f in self.speaker_families if f not in SPEAKER_ATTACKERS]
        if unknown:
            raise ValueError(f"unknown speaker families {unknown}; valid: {', '.join(SPEAKER_ATTACKERS.names())}")
        if self.max_inversions < 0:
            raise ValueError(f"max_inversions must be >= 0, got {self.max_inversions}")


@dataclass
class ReconstructionInput:
    """Everything the curious server has, plus the ground truth.

    Attributes
    ----------
    model : torch.nn.Module
        The ASR model architecture (an ``ASRModel``-like module with ``encode``).
    layout : ParamLayout
    global_flat : torch.Tensor
        Parameters every update started from.
    updates : list of AttackedUpdate
    true_updates : bool
        Whether ``AttackedUpdate.delta`` is the client's true update (then compressors apply).
    reference : UtteranceSet or None
        Real features of the attacked speakers (excluding the attacked utterances): the
        speaker attackers' training data. None: no speaker identification of inversions.
    indicator : list of torch.Tensor
        The footprint attack's indicator utterances ``[T, F]``.
    tokenizer : CharTokenizer or None
        For CER of inversions decoded with the global model. None: no CER.
    """

    model: torch.nn.Module
    layout: ParamLayout
    global_flat: torch.Tensor
    updates: List[AttackedUpdate]
    true_updates: bool = True
    reference: Optional[UtteranceSet] = None
    indicator: Sequence[torch.Tensor] = ()
    tokenizer: Any = None

    def validate(self, config: ReconstructionConfig) -> None:
        d = self.layout.dim
        if self.global_flat.dim() != 1 or self.global_flat.numel() != d:
            raise ValueError(f"global_flat has shape {tuple(self.global_flat.shape)}, the layout needs [{d}]")
        if not self.updates:
            raise ValueError("no updates to attack")
        for k, u in enumerate(self.updates):
            where = f"update {k} (client {u.client_id!r})"
            if u.delta.dtype != torch.float32 or u.delta.dim() != 1 or u.delta.numel() != d:
                raise ValueError(f"{where}: delta must be float32 [{d}], got {u.delta.dtype} {tuple(u.delta.shape)}")
            if not bool(torch.isfinite(u.delta).all()):
                raise ValueError(f"{where}: delta has NaN/Inf values")
            if not u.tokens or any(not t for t in u.tokens):
                raise ValueError(f"{where}: every utterance needs a non-empty token sequence")
            if u.features is not None and len(u.features) != len(u.tokens):
                raise ValueError(f"{where}: {len(u.features)} feature tensors for {len(u.tokens)} transcripts")
        if not self.true_updates and set(config.compressors) != {"identity"}:
            raise ValueError("the updates are the server's decoded view (true_updates=False): compressing them "
                             "again would measure nothing; use compressors={'identity': None}")
        if "local_model" in config.threats and len(self.indicator) == 0:
            raise ValueError("the local_model threat needs an indicator set (ReconstructionInput.indicator)")
        if "labels" in config.threats and not {"head.w.bias", "head.w.weight"} <= set(self.layout.names):
            raise ValueError(f"label recovery reads the CTC head 'head.w.bias'/'head.w.weight', absent from the layout "
                             f"(names end with {list(self.layout.names)[-3:]})")
        if self.reference is not None:
            self.reference.validate()

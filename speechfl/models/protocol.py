"""The interface every ASR model in speechfl implements, and the setup-time check of it.

Engines, the training objective, privacy adversaries and the evaluation attackers
rely on exactly these members (and nothing else) of a model:

* ``vocab_size`` (int): CTC outputs including the blank, equal to the tokenizer's size;
* ``rep_dim`` (int): size of the per-frame representation adversaries and attackers probe;
* ``encode(feats [B, T, F], lengths [B]) -> (reps [B, T', rep_dim], rel_lengths [B])``;
* ``forward(feats, lengths) -> ASROutput`` (log-probabilities, relative lengths, reps);
* ``attach_adversary(module)`` and the attribute ``adversary`` (None when none is attached);
* ``asr_parameters()``: the parameters of the ASR part (everything but the adversary).

Federated averaging works on a flat vector of *parameters*. A buffer is either a constant
reproduced by construction (declared ``persistent=False``: SpeechBrain's positional-encoding
tables once :func:`mark_constant_buffers` has declared them) or trainable state that averaging
cannot handle (BatchNorm running statistics): the latter is refused by :func:`check_model`.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Protocol, Tuple, runtime_checkable

import torch

REQUIRED_MEMBERS = ("vocab_size", "rep_dim", "encode", "forward", "attach_adversary", "asr_parameters", "adversary")


@runtime_checkable
class ASRModelProtocol(Protocol):
    """What engines, objectives, adversaries and attackers may assume of a model."""

    vocab_size: int
    rep_dim: int
    adversary: Optional[torch.nn.Module]

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]: ...

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor): ...

    def attach_adversary(self, adversary: torch.nn.Module) -> None: ...

    def asr_parameters(self) -> List[torch.nn.Parameter]: ...


def mark_constant_buffers(module: torch.nn.Module, names: Iterable[str]) -> None:
    """Declare buffers of ``module`` as constants rebuilt by construction (PyTorch ``persistent=False``).

    Raises ``KeyError`` for a name that is not a buffer of ``module`` (a typo must not pass).
    """
    own = dict(module.named_buffers(recurse=False))
    for name in names:
        if name not in own:
            raise KeyError(f"{type(module).__name__} has no buffer {name!r}; buffers: {sorted(own)}")
        module._non_persistent_buffers_set.add(name)


def split_buffers(module: torch.nn.Module) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """``(constant, stateful)`` buffer names: non-persistent ones are constants, the rest are state."""
    constant, stateful = [], []
    for mod_name, mod in module.named_modules():
        for name, _ in mod.named_buffers(recurse=False):
            full = f"{mod_name}.{name}" if mod_name else name
            (constant if name in mod._non_persistent_buffers_set else stateful).append(full)
    return tuple(sorted(constant)), tuple(sorted(stateful))


def check_model(model, vocab_size: Optional[int] = None) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``model`` implements :class:`ASRModelProtocol` and can be federated.

    Parameters
    ----------
    vocab_size : int, optional
        The tokenizer's size; the model's CTC output must match it.
    """
    missing = [m for m in REQUIRED_MEMBERS if not hasattr(model, m)]
    if missing or not isinstance(model, torch.nn.Module):
        raise TypeError(f"model {type(model).__name__} does not implement the speechfl ASR model protocol "
                        f"(speechfl.models.protocol.ASRModelProtocol); missing: {missing or ['torch.nn.Module']}")
    for attr in ("vocab_size", "rep_dim"):
        value = getattr(model, attr)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TypeError(f"model.{attr} must be a positive int, got {value!r}")
    if vocab_size is not None and model.vocab_size != vocab_size:
        raise ValueError(f"model has {model.vocab_size} CTC outputs but the tokenizer has {vocab_size} symbols; "
                         "build the model with vocab_size = len(tokenizer)")
    _, stateful = split_buffers(model)
    if stateful:
        raise ValueError(f"model has trainable state buffers {list(stateful[:3])} (e.g. BatchNorm running "
                         "statistics) that federated averaging cannot average; use LayerNorm, or declare true "
                         "constants with speechfl.models.protocol.mark_constant_buffers")

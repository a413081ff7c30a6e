"""Client updates as flat float32 vectors, mapped to and from named parameters.

The mapping is by parameter *name* in a fixed (sorted) order, never by module
position, so two models built independently agree on the layout. Buffers are
not part of the update. :class:`ParamLayout` lists them in two groups: ``constants``
(non-persistent buffers such as SpeechBrain's positional-encoding tables, rebuilt
identically by every party's construction: allowed) and ``buffers`` (persistent
state such as BatchNorm running statistics, which averaging parameters would leave
out of sync: the federated setup refuses a model that has any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and offsets of the trainable parameters in the flat vector."""

    names: Tuple[str, ...]
    shapes: Tuple[Tuple[int, ...], ...]
    buffers: Tuple[str, ...] = ()  # persistent (stateful) buffers: not federated, refused by the setup
    constants: Tuple[str, ...] = ()  # non-persistent buffers: constants of the construction

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> "ParamLayout":
        from speechfl.models.protocol import split_buffers

        params = dict(module.named_parameters())
        names = tuple(sorted(n for n, p in params.items() if p.requires_grad))
        shapes = tuple(tuple(params[n].shape) for n in names)
        constants, buffers = split_buffers(module)
        return cls(names=names, shapes=shapes, buffers=buffers, constants=constants)

    @property
    def sizes(self) -> List[int]:
        out = []
        for s in self.shapes:
            n = 1
            for k in s:
                n *= k
            out.append(n)
        return out

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def slices(self) -> Dict[str, slice]:
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def as_list(self) -> List[Tuple[str, Tuple[int, ...]]]:
        return list(zip(self.names, self.shapes))


def flatten_params(module: torch.nn.Module, layout: ParamLayout) -> torch.Tensor:
    """Concatenate ``module``'s parameters (by name, in ``layout`` order) into float32 [d]."""
    params = dict(module.named_parameters())
    missing = [n for n in layout.names if n not in params]
    if missing:
        raise KeyError(f"model lacks parameters {missing[:5]} named in the layout")
    return torch.cat([params[n].detach().reshape(-1).to(torch.float32) for n in layout.names])


def load_flat_params(module: torch.nn.Module, layout: ParamLayout, flat: torch.Tensor) -> None:
    """Copy the flat vector into ``module``'s parameters, by name, in place."""
    if flat.dim() != 1 or flat.numel() != layout.dim:
        raise ValueError(f"flat vector has shape {tuple(flat.shape)}, layout needs [{layout.dim}]")
    params = dict(module.named_parameters())
    sl = layout.slices()
    with torch.no_grad():
        for name, shape in zip(layout.names, layout.shapes):
            p = params[name]
            p.copy_(flat[sl[name]].view(shape).to(p.dtype))


def unflatten(flat: torch.Tensor, layout: ParamLayout) -> Dict[str, torch.Tensor]:
    """Split a flat vector into a name -> tensor dict (views, no copy)."""
    if flat.numel() != layout.dim:
        raise ValueError(f"flat vector has {flat.numel()} values, layout needs {layout.dim}")
    sl = layout.slices()
    return {n: flat[sl[n]].view(s) for n, s in zip(layout.names, layout.shapes)}


@dataclass
class Update:
    """What one client returns in one round.

    Attributes
    ----------
    client_id : str
    delta : torch.Tensor
        float32 [d]: local model minus the global model the client started from.
    n_samples : int
        Number of training utterances seen (weight in the weighted mean).
    metadata : dict
        Free-form numbers (train_loss, seconds, steps, epsilon, ...).
    """

    client_id: str
    delta: torch.Tensor
    n_samples: int
    metadata: Dict[str, float] = field(default_factory=dict)


class UpdateRejected(ValueError):
    """An incoming update failed validation; the message says why."""


def validate_update(delta: torch.Tensor, dim: int) -> None:
    """Raise :class:`UpdateRejected` unless ``delta`` is a finite float vector of length ``dim``."""
    if not isinstance(delta, torch.Tensor):
        raise UpdateRejected(f"update is a {type(delta).__name__}, not a tensor")
    if delta.dim() != 1:
        raise UpdateRejected(f"update has shape {tuple(delta.shape)}, expected a 1-D vector")
    if delta.numel() != dim:
        raise UpdateRejected(f"update has {delta.numel()} values, model has {dim}")
    if not delta.is_floating_point():
        raise UpdateRejected(f"update dtype {delta.dtype} is not floating point")
    finite = torch.isfinite(delta)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(delta).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise UpdateRejected(f"update has {n_nan} NaN and {n_inf} Inf values")

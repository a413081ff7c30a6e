"""Error feedback around any contractive compressor: EF (memory of the residual) and EF21.

Both wrappers keep per-client memory in the client's ``state`` dict (one float32
tensor ``[d]``), which the engine keeps across rounds and saves in the round
checkpoint. They send exactly the inner compressor's payload (same wire format,
no extra bytes); the client decodes its own payload once to update its memory.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from speechfl.compression.base import (
    COMPRESSORS,
    CompressionContext,
    Compressor,
    Payload,
    build_nested,
    check_vector,
)


def _memory(state: dict, key: str, ctx: CompressionContext) -> torch.Tensor:
    mem = state.get(key)
    if mem is None:
        return torch.from_numpy(np.zeros(ctx.dim, np.float32))
    if not isinstance(mem, torch.Tensor) or mem.dtype != torch.float32 or tuple(mem.shape) != (ctx.dim,):
        raise ValueError(
            f"state[{key!r}] is {type(mem).__name__} {tuple(getattr(mem, 'shape', ()))}, expected float32 "
            f"[{ctx.dim}]: the model size changed or the state belongs to another run"
        )
    return mem.detach().cpu()


class _Wrapper(Compressor):
    nestable = False

    def __init__(self, inner: Any):
        self.inner = build_nested(inner, f"{self.name} inner")

    def _check(self, vector: torch.Tensor, state: dict, ctx: CompressionContext) -> np.ndarray:
        x = check_vector(vector, ctx, self.name, allow_nonfinite=False)  # NaN in memory would never leave it
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if not self.inner.is_contractive(ctx.dim):
            raise ValueError(
                f"{self.name} needs a contractive inner compressor (E||C(x)-x||^2 < ||x||^2); "
                f"{self.inner.name!r} is not at d = {ctx.dim} (e.g. use randk with unbiased=False, "
                "topk, sign, powersgd, or qsgd with more levels / smaller buckets)"
            )
        return x

    def decode(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        return self.inner.decode(payload, ctx)

    def is_contractive(self, dim: int) -> bool:
        return self.inner.is_contractive(dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


@COMPRESSORS.register("ef")
class ErrorFeedback(_Wrapper):
    """Error feedback (Seide et al., Interspeech 2014; Karimireddy et al., ICML 2019, EF-SGD).

    With memory ``e_0 = 0`` in ``state["ef_memory"]``, at each round the client sends::

        p_t = x_t + e_t,    payload = C(p_t),    e_{t+1} = p_t - D(C(p_t))

    The server decodes as usual (``decode`` = the inner decode); nothing is kept
    server-side. A shared-support inner (random-k) keeps its support API.

    Parameters
    ----------
    inner : spec
        The compressor to wrap (must be contractive at the vector's size).
    """

    name = "ef"
    MEMORY_KEY = "ef_memory"

    @property
    def shared_support(self) -> bool:  # type: ignore[override]
        return self.inner.shared_support

    @property
    def linear(self) -> bool:  # type: ignore[override]
        return self.inner.linear  # the payload is the inner payload of x + e

    def encode(self, vector: torch.Tensor, state: dict, ctx: CompressionContext) -> Payload:
        x = self._check(vector, state, ctx)
        corrected = np.add(x, _memory(state, self.MEMORY_KEY, ctx).numpy())
        payload = self.inner.encode(torch.from_numpy(corrected), state, ctx)
        np.subtract(corrected, self.inner.decode(payload, ctx).numpy(), out=corrected)  # becomes the new memory
        state[self.MEMORY_KEY] = torch.from_numpy(corrected)
        return payload

    def support(self, ctx: CompressionContext) -> torch.Tensor:
        return self.inner.support(ctx)

    def decode_values(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        return self.inner.decode_values(payload, ctx)

    def expand(self, values_k: torch.Tensor, ctx: CompressionContext) -> torch.Tensor:
        return self.inner.expand(values_k, ctx)


@COMPRESSORS.register("ef21")
class EF21(_Wrapper):
    """EF21 (Richtarik, Sokolov & Fatkhullina, NeurIPS 2021).

    Client ``i`` keeps ``g_i`` (``g_i^0 = 0``) in ``state["ef21_g"]`` and sends the
    compressed change of its estimate::

        c_i^t = C(x_i^t - g_i^t),    g_i^{t+1} = g_i^t + D(c_i^t)

    ``decode`` returns ``D(c_i^t)``, which is **not** the update: the server must
    keep the same ``g_i`` for every client and aggregate ``g_i^{t+1}`` (the mean of
    the ``g_i`` is EF21's estimate ``g^{t+1} = g^t + mean_i D(c_i^t)``). Use
    :class:`EF21ServerState`: ``g_i = server.update(client_id, decoded)``, and
    save ``server.state_dict()`` in the checkpoint. Server memory is ``n_clients x d``
    float32. No shared-support shortcut: the aggregated ``g_i`` are dense.
    """

    name = "ef21"
    MEMORY_KEY = "ef21_g"
    requires_server_state = True

    def encode(self, vector: torch.Tensor, state: dict, ctx: CompressionContext) -> Payload:
        x = self._check(vector, state, ctx)
        g = _memory(state, self.MEMORY_KEY, ctx).numpy()
        payload = self.inner.encode(torch.from_numpy(np.subtract(x, g)), state, ctx)
        state[self.MEMORY_KEY] = torch.from_numpy(np.add(g, self.inner.decode(payload, ctx).numpy()))
        return payload


class EF21ServerState:
    """Server-side EF21 memory: the estimate ``g_i`` of every client that has reported.

    ``update(client_id, decoded)`` applies ``g_i <- g_i + decoded`` (``g_i`` starts at
    0) and returns a copy of the new ``g_i``: the vector to aggregate for client ``i``.
    """

    def __init__(self) -> None:
        self._g: Dict[str, torch.Tensor] = {}

    def update(self, client_id: str, decoded: torch.Tensor) -> torch.Tensor:
        if not isinstance(decoded, torch.Tensor) or decoded.dim() != 1 or decoded.dtype != torch.float32:
            raise TypeError(f"decoded must be a float32 vector, got {getattr(decoded, 'dtype', type(decoded))}")
        old = self._g.get(client_id)
        if old is not None and old.shape != decoded.shape:
            raise ValueError(
                f"client {client_id!r}: decoded has shape {tuple(decoded.shape)}, memory {tuple(old.shape)}"
            )
        new = decoded.clone() if old is None else old + decoded
        self._g[client_id] = new
        return new.clone()

    def __contains__(self, client_id: str) -> bool:
        return client_id in self._g

    def __len__(self) -> int:
        return len(self._g)

    def state_dict(self) -> Dict[str, Dict[str, torch.Tensor]]:
        return {"g": {cid: g.clone() for cid, g in self._g.items()}}

    def load_state_dict(self, state: Dict[str, Dict[str, torch.Tensor]]) -> None:
        if set(state) != {"g"}:
            raise ValueError(f"EF21ServerState.load_state_dict expects keys ['g'], got {sorted(state)}")
        self._g = {str(cid): g.clone() for cid, g in state["g"].items()}

"""Per-client persistent state kept on the node: error-feedback memory, DP accountant, ...

The state never leaves the node: an error-feedback memory is the residual of the
client's own update, and the server could reconstruct the raw update from it and
the payload. Each stored state is tagged with the round that produced it. The
server names, in every train message, the round after which it last heard from
the client (``0``: never); the node loads exactly that state, so a server resumed
from its checkpoint (at most one round behind the node) continues bit-exactly, and
a node that lost the state is an error rather than a silent restart of the memory.

Storage: a folder (node-config ``state-dir``; survives a node restart) or the
node's Flower run ``Context.state`` (lives as long as the SuperNode).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Dict, Optional

import torch

from speechfl.federated.round import new_client_state

STATE_RECORD = "speechfl-client-state"


class ClientStateStore:
    """Load and save the states of the clients one node serves.

    Parameters
    ----------
    context : flwr.app.Context
        The node's run context (used when ``directory`` is None).
    directory : Path or None
        Folder for state files, one per client: ``<directory>/<experiment key>/<client>.pt``.
    experiment_key : str
        :attr:`ExperimentSpec.key`; separates experiments sharing a folder.
    """

    def __init__(self, context, directory: Optional[Path], experiment_key: str):
        self.context = context
        self.directory = Path(directory) / experiment_key[:16] if directory is not None else None
        self.key = experiment_key

    def load(self, client_id: str, seed: int, after_round: int) -> dict:
        """The state ``client_id`` had after ``after_round`` (a fresh state when it is 0)."""
        if after_round < 0:
            raise ValueError(f"after_round must be >= 0, got {after_round}")
        if after_round == 0:
            return new_client_state(seed, client_id)
        stored = self._read(client_id)
        if after_round not in stored:
            where = self.directory or "the SuperNode's run context (give it a state-dir to survive restarts)"
            raise RuntimeError(
                f"client {client_id}: the server expects its state after round {after_round}, but this node holds "
                f"states for rounds {sorted(stored) or 'none'} in {where}; the client's error-feedback memory / DP "
                "accountant is lost, so the run cannot continue exactly (restart it from scratch)")
        return _from_bytes(stored[after_round])

    def save(self, client_id: str, round_: int, after_round: int, state: dict) -> None:
        """Store the state produced in ``round_``; keep the one after ``after_round`` until the server confirms."""
        stored = self._read(client_id)
        kept = {r: b for r, b in stored.items() if r == after_round}
        kept[round_] = _to_bytes(state)
        self._write(client_id, kept)

    # -- storage ----------------------------------------------------------------------------
    def _read(self, client_id: str) -> Dict[int, bytes]:
        if self.directory is not None:
            path = self._path(client_id)
            return torch.load(path, weights_only=True) if path.exists() else {}
        record = self.context.state.get(STATE_RECORD)
        if record is None or record.get("experiment") != self.key:
            return {}
        prefix = f"{client_id}|"
        return {int(k[len(prefix):]): bytes(v) for k, v in record.items() if k.startswith(prefix)}

    def _write(self, client_id: str, states: Dict[int, bytes]) -> None:
        if self.directory is not None:
            from speechfl.io import atomic_torch_save

            atomic_torch_save(states, self._path(client_id))
            return
        from flwr.app import ConfigRecord

        record = self.context.state.get(STATE_RECORD)
        if record is None or record.get("experiment") != self.key:
            record = ConfigRecord({"experiment": self.key})
        prefix = f"{client_id}|"
        for k in [k for k in record.keys() if k.startswith(prefix)]:
            del record[k]
        for r, data in states.items():
            record[f"{prefix}{r}"] = data
        self.context.state[STATE_RECORD] = record

    def _path(self, client_id: str) -> Path:
        name = client_id if re.fullmatch(r"[\w.-]+", client_id) else hashlib.sha256(client_id.encode()).hexdigest()
        return self.directory / f"{name}.pt"


def _to_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _from_bytes(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), weights_only=True)

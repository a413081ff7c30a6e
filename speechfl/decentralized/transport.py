"""torch.distributed transport for gossip: gloo point-to-point between the ranks hosting the nodes.

Node ``i`` lives on rank ``i % world``. Each round every rank sends every other rank one
buffer with the messages addressed to its nodes (possibly none), framed as::

    count  uint32
    count x (sender uint32, receiver uint32, length uint64)
    the payload bytes, in the same order

first the buffer's length (an int64 tensor), then the bytes (a uint8 tensor), with ``isend``/
``irecv`` so no pair of ranks can deadlock. Every wait has a timeout: a rank that died or
hangs is reported as :class:`PeerFailure`, naming it and its nodes, instead of hanging the run.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import Dict, List, Set, Tuple

import torch
import torch.distributed as dist

Message = Tuple[int, int]
_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<IIQ")


class PeerFailure(RuntimeError):
    """A peer rank stopped answering (died, or exceeded the timeout)."""


def pack(messages: List[Tuple[Message, bytes]]) -> bytes:
    head = _COUNT.pack(len(messages)) + b"".join(_ENTRY.pack(s, r, len(b)) for (s, r), b in messages)
    return head + b"".join(b for _, b in messages)


def unpack(blob: bytes) -> Dict[Message, bytes]:
    (count,) = _COUNT.unpack_from(blob, 0)
    pos, entries = _COUNT.size, []
    for _ in range(count):
        entries.append(_ENTRY.unpack_from(blob, pos))
        pos += _ENTRY.size
    out = {}
    for s, r, n in entries:
        out[(s, r)] = bytes(blob[pos:pos + n])
        pos += n
    if pos != len(blob):
        raise ValueError(f"gossip frame has {len(blob) - pos} trailing bytes")
    return out


class DistTransport:
    """Deliver gossip messages between ranks (``torch.distributed`` initialised with gloo)."""

    def __init__(self, n_nodes: int, timeout_s: float):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.n_nodes = n_nodes
        self.timeout = timedelta(seconds=float(timeout_s))

    def owner(self, node: int) -> int:
        return node % self.world

    def hosted(self) -> List[int]:
        return [i for i in range(self.n_nodes) if self.owner(i) == self.rank]

    def _nodes_of(self, rank: int) -> List[int]:
        return [i for i in range(self.n_nodes) if self.owner(i) == rank]

    def _wait(self, works, peers, round_: int, what: str) -> None:
        for work, peer in zip(works, peers):
            try:
                ok = work.wait(self.timeout)
            except Exception as exc:  # gloo raises RuntimeError / DistBackendError: a closed socket or a timeout
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "timed out" not in text.lower():
                    raise PeerFailure(f"rank {self.rank}: rank {peer} (nodes {self._nodes_of(peer)}) failed during "
                                      f"round {round_} ({what}): {text}") from None
                ok = False
            if ok is False:
                raise PeerFailure(f"rank {self.rank}: rank {peer} (nodes {self._nodes_of(peer)}) sent nothing for "
                                  f"{self.timeout.total_seconds():.0f} s in round {round_} ({what})")

    def exchange(self, round_: int, outgoing: Dict[Message, bytes], incoming: Set[Message]) -> Dict[Message, bytes]:
        peers = [p for p in range(self.world) if p != self.rank]
        blobs = {p: pack(sorted((m, b) for m, b in outgoing.items() if self.owner(m[1]) == p)) for p in peers}
        sizes_out = {p: torch.tensor([len(blobs[p])], dtype=torch.int64) for p in peers}
        sizes_in = {p: torch.zeros(1, dtype=torch.int64) for p in peers}
        works = [dist.isend(sizes_out[p], p) for p in peers] + [dist.irecv(sizes_in[p], p) for p in peers]
        self._wait(works, peers + peers, round_, "message sizes")
        data_in = {p: torch.empty(int(sizes_in[p]), dtype=torch.uint8) for p in peers}
        works, who = [], []
        for p in peers:
            if len(blobs[p]):
                works.append(dist.isend(torch.frombuffer(bytearray(blobs[p]), dtype=torch.uint8), p))
                who.append(p)
            if int(sizes_in[p]):
                works.append(dist.irecv(data_in[p], p))
                who.append(p)
        self._wait(works, who, round_, "messages")
        got = {m: b for m, b in outgoing.items() if self.owner(m[1]) == self.rank}
        for p in peers:
            if int(sizes_in[p]):
                got.update(unpack(data_in[p].numpy().tobytes()))
        missing = sorted(incoming - set(got))
        if missing:
            raise PeerFailure(f"rank {self.rank}: round {round_} is missing messages {missing[:5]}")
        return {m: got[m] for m in incoming}

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        work = dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True)
        try:
            ok = work.wait(self.timeout)
        except Exception as exc:
            raise PeerFailure(f"rank {self.rank}: a peer failed during a network-wide sum: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if ok is False:
            raise PeerFailure(f"rank {self.rank}: a network-wide sum timed out after "
                              f"{self.timeout.total_seconds():.0f} s")
        return t

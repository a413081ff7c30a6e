"""Speakers -> clients.

Default: one speaker per client (client id = speaker id). With
``speakers_per_client = k > 1`` speakers are shuffled with ``seed`` and grouped
k at a time (client ids ``client000``...). Clients with fewer than
``min_utterances`` utterances are dropped and listed in ``dropped`` (never
silently). The partition is recorded in results.json.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List


@dataclass
class Partition:
    clients: Dict[str, List[str]]  # client id -> speaker ids
    utterances: Dict[str, List[str]]  # client id -> utterance ids
    dropped: Dict[str, str] = field(default_factory=dict)  # client id -> reason

    @property
    def client_ids(self) -> List[str]:
        return sorted(self.clients)

    def to_dict(self) -> Dict:
        return {
            "clients": self.clients,
            "n_utterances": {c: len(u) for c, u in self.utterances.items()},
            "dropped": self.dropped,
        }


def partition_speakers(
    rows: List[Dict[str, str]],
    speakers_per_client: int = 1,
    min_utterances: int = 1,
    seed: int = 0,
) -> Partition:
    """Partition manifest ``rows`` by speaker; see module docstring."""
    if speakers_per_client < 1:
        raise ValueError(f"speakers_per_client must be >= 1, got {speakers_per_client}")
    by_spk: Dict[str, List[str]] = {}
    for r in rows:
        by_spk.setdefault(r["spk_id"], []).append(r["ID"])
    if not by_spk:
        raise ValueError("no speakers to partition")
    speakers = sorted(by_spk)
    if speakers_per_client == 1:
        groups = {spk: [spk] for spk in speakers}
    else:
        shuffled = speakers[:]
        random.Random(seed).shuffle(shuffled)
        groups = {
            f"client{i // speakers_per_client:03d}": sorted(shuffled[i : i + speakers_per_client])
            for i in range(0, len(shuffled), speakers_per_client)
        }
    clients, utts, dropped = {}, {}, {}
    for cid, spks in groups.items():
        u = [x for s in spks for x in by_spk[s]]
        if len(u) < min_utterances:
            dropped[cid] = f"{len(u)} utterances < min_utterances={min_utterances}"
            continue
        clients[cid], utts[cid] = spks, u
    if not clients:
        raise ValueError(f"every client has fewer than {min_utterances} utterances")
    return Partition(clients=clients, utterances=utts, dropped=dropped)


def pooled_partition(rows: List[Dict[str, str]]) -> Partition:
    """A single client holding every speaker: the centralized reference on identical data."""
    spks = sorted({r["spk_id"] for r in rows})
    return Partition(clients={"pooled": spks}, utterances={"pooled": [r["ID"] for r in rows]})

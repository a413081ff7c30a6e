"""One client's step on a Flower node: local training, [local update attack], uplink encoding.

It calls the functions the in-process executor calls (``train_client``,
``encode_update``), so a client computes the same bytes under both engines.

Update attacks. The in-process engine corrupts the malicious clients' updates
jointly, seeing every honest update (``corrupt_updates``). On Flower a client only
has its own update, so only attacks that transform each malicious row on its own
(:data:`LOCAL_ATTACKS`) can run, on the node. To draw exactly what the in-process
engine draws, the malicious client calls the attack on the round's full
``[f, d]`` stack (every row its own update: the attacks in ``LOCAL_ATTACKS`` treat rows
independently) with the shared generator seeded by (seed, round, ``"<attack>"``) and
keeps its own row; the honest stack is passed by shape only (``scaling`` reads the
number of clients, no local attack reads honest values). Data-level attacks
(poisoned local data) need nothing special: the node builds the same poisoned
dataset.
"""

from __future__ import annotations

from typing import List

import torch

from speechfl.federated.client import client_seed
from speechfl.federated.round import encode_update, train_client
from speechfl.federated.server import Received
from speechfl.federated.update import Update

LOCAL_ATTACKS = ("sign_flip", "scaling", "gaussian", "nonfinite")


def check_attack_is_local(setup, engine: str = "Flower") -> None:
    """Raise if the experiment's update attack needs every honest update (an omniscient attacker)."""
    attack = setup.update_attack
    if attack is None:
        return
    name = getattr(attack, "name", type(attack).__name__)
    if name not in LOCAL_ATTACKS:
        raise ValueError(
            f"update attack {name!r} is omniscient (it needs every honest update of the round), which a "
            f"{engine} client does not have; run it with engine=inprocess, or use one of the attacks a "
            f"malicious client can compute alone: {', '.join(LOCAL_ATTACKS)}")


def apply_local_attack(setup, update: Update, participants: List[str], round_: int) -> None:
    """Replace a malicious client's delta by its row of the round's attack (see module docstring)."""
    check_attack_is_local(setup)
    malicious = sorted(c for c in participants if c in setup.malicious)
    if update.client_id not in malicious:
        raise ValueError(f"client {update.client_id} is not a malicious participant of round {round_}")
    d = update.delta.numel()
    honest = torch.zeros(1, d, dtype=update.delta.dtype).expand(len(participants) - len(malicious), d)
    own = update.delta[None].expand(len(malicious), d)
    gen = torch.Generator().manual_seed(client_seed(setup.seed, round_, "<attack>"))
    update.delta = setup.update_attack(honest, own, gen)[malicious.index(update.client_id)].clone()


def run_client(setup, client_id: str, client_view: torch.Tensor, round_: int, step_offset: int,
               participants: List[str], state: dict) -> Received:
    """Train ``client_id`` from ``client_view`` and encode what it sends the server (``state`` is updated)."""
    from speechfl.federated.simulation import compression_context

    if client_id not in participants:
        raise ValueError(f"client {client_id} is not among the round's participants {participants}")
    update = train_client(setup, client_id, client_view, round_, state, step_offset)
    if setup.update_attack is not None and client_id in setup.malicious:
        apply_local_attack(setup, update, participants, round_)
    return encode_update(setup, update, state, compression_context(setup, round_), list(participants))

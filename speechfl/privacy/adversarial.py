"""Build the adversarial speaker/gender-identity removal objective from an hparams spec.

Spec (``adversary:`` in hparams)::

    {target: speaker | gender, heads: [mlp, linear, attentive, ...], weight: 1.0,
     schedule: {kind: dann, lambda_max: 1.0, gamma: 10.0}, reinit_every: 200}

What the federated adversary can see: with one speaker per client, each client
trains the shared heads on its *own* utterances, all labelled with its own
speaker's global index, and the heads are averaged with the rest of the model.
A client never sees other speakers' audio or labels; the averaged heads learn to
separate speakers only through aggregation, so they are weaker than a
centralized adversary (each local step is a one-class problem). The evaluation
attackers (``speechfl evaluate``) are trained afresh and do not share this limit.
"""

from __future__ import annotations

from typing import Dict

from speechfl.models.adversary import AdversarialObjective
from speechfl.registry import require_keys

SPEC_KEYS = {"target", "heads", "weight", "schedule", "reinit_every"}


def build_adversary(spec: Dict, *, rep_dim: int, label_maps: Dict[str, Dict[str, int]], total_steps: int,
                    seed: int) -> AdversarialObjective:
    spec = dict(spec)
    require_keys(spec, SPEC_KEYS, "adversary")
    target = spec.get("target", "speaker")
    if target not in label_maps:
        raise ValueError(f"unknown adversary target {target!r}; valid: {sorted(label_maps)}")
    n_classes = len(label_maps[target])
    if target == "gender" and sorted(label_maps["gender"]) != ["F", "M"]:
        raise ValueError(f"a gender adversary needs exactly F and M training speakers, got {sorted(label_maps['gender'])}")
    return AdversarialObjective(
        rep_dim, n_classes, heads=list(spec.get("heads", ["mlp"])), target=target,
        weight=float(spec.get("weight", 1.0)), schedule=spec.get("schedule"), total_steps=max(1, int(total_steps)),
        reinit_every=spec.get("reinit_every"), seed=seed,
    )

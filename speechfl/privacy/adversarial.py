"""Build the adversarial speaker/gender-identity removal objective from an hparams spec.

Spec (``adversary:`` in hparams)::

    {target: speaker | gender, heads: [mlp, linear, attentive, xvector, class_embedding, ...], weight: 1.0,
     schedule: {kind: dann, lambda_max: 1.0, gamma: 10.0}, reinit_every: 200,
     objective: reversal | confusion, warmup_steps: 0,
     spread_out: {margin: 1.0, lr: 0.1, steps: 1},     # FedAwS server step, class_embedding heads only
     public_pool: {data_folder: ..., speakers: 16, per_step: 4, ...}}   # real negatives, see below

What the federated adversary can see: with one speaker per client, each client
trains the shared heads on its *own* utterances, all labelled with its own
speaker's global index, and the heads are averaged with the rest of the model.
A client never sees other speakers' audio or labels; the averaged heads learn to
separate speakers only through aggregation, so they are weaker than a
centralized adversary (each local step is a one-class problem). The evaluation
attackers (``speechfl evaluate``) are trained afresh and do not share this limit.
The ``class_embedding`` head (:mod:`speechfl.privacy.fedaws`) has no bias to solve that
one-class problem with and scores every utterance against all speakers' class rows (real
negatives); its rows are speaker embeddings the server holds (see that module).
``objective: confusion`` trains the encoder toward the heads' uniform output instead of reversing
their gradient (:mod:`speechfl.privacy.confusion`). ``public_pool`` gives every client the same public
voices as negatives: the heads get ``N + P`` classes and each local step adds ``per_step`` pool
utterances to the adversary's batch (:mod:`speechfl.privacy.public_pool`).
"""

from __future__ import annotations

from typing import Dict

from speechfl.models.adversary import AdversarialObjective
from speechfl.registry import optional_section, require_keys

SPEC_KEYS = {"target", "heads", "weight", "schedule", "reinit_every", "objective", "warmup_steps", "spread_out",
             "public_pool"}
SPREAD_OUT_KEYS = {"margin", "lr", "steps"}


def build_adversary(spec: Dict, *, rep_dim: int, label_maps: Dict[str, Dict[str, int]], total_steps: int,
                    seed: int) -> AdversarialObjective:
    spec = dict(spec)
    require_keys(spec, SPEC_KEYS, "adversary")
    target = spec.get("target", "speaker")
    if target not in label_maps:
        raise ValueError(f"unknown adversary target {target!r}; valid: {sorted(label_maps)}")
    from speechfl.privacy.public_pool import pool_speaker_count

    n_classes = len(label_maps[target]) + (pool_speaker_count(spec) if target == "speaker" else 0)
    if target == "gender" and sorted(label_maps["gender"]) != ["F", "M"]:
        raise ValueError(f"a gender adversary needs exactly F and M training speakers, got {sorted(label_maps['gender'])}")
    return AdversarialObjective(
        rep_dim, n_classes, heads=list(spec.get("heads", ["mlp"])), target=target,
        weight=float(spec.get("weight", 1.0)), schedule=spec.get("schedule"), total_steps=max(1, int(total_steps)),
        reinit_every=spec.get("reinit_every"), seed=seed, objective=spec.get("objective", "reversal"),
        warmup_steps=spec.get("warmup_steps", 0),
    )


def check_adversary_compatible(spec: Dict, *, dp_sample: bool) -> None:
    """Refuse compositions whose maths is not established.

    ``objective: confusion`` runs the heads twice (on detached representations, and with detached
    parameters for the encoder's term); Opacus' per-sample hooks would record both passes as the
    heads' per-sample gradients, so it is not combined with ``dp_sample``.
    """
    if dp_sample and spec.get("objective", "reversal") == "confusion":
        raise ValueError("adversary objective 'confusion' with dp_sample: Opacus' per-sample hooks would also record "
                         "the frozen-head pass as the heads' gradients; use objective: reversal with dp_sample")


def spread_out_spec(spec: Dict) -> Dict | None:
    """The adversary's ``spread_out`` mapping, validated (``None`` when absent)."""
    so = optional_section(spec, "spread_out", SPREAD_OUT_KEYS, "adversary.spread_out")
    if so is None:
        return None
    return {"margin": float(so.get("margin", 1.0)), "lr": float(so.get("lr", 0.1)), "steps": int(so.get("steps", 1))}

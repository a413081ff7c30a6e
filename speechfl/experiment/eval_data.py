"""Which utterances ``speechfl evaluate`` attacks, and in which role, when splits overlap or are missing.

A corpus without a dev split is often run with ``valid_split`` pointed at the
test split, and the CTC recipe's tests score ``test_split=train``: the same
utterance then appears under two roles. Every utterance is attacked once, under
its first role in the order train, valid, test (:func:`assign_roles`), and the
overlap is reported. Membership inference needs members (training utterances)
and non-members (utterances never trained on): a valid/test utterance that is
also a training utterance is a member, never a non-member
(:func:`membership_sets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

ROLES = ("train", "valid", "test")


@dataclass
class RoleAssignment:
    """Manifest rows of each role with every utterance ID kept once (first role wins).

    ``rows``: role -> its rows after deduplication (possibly empty);
    ``role_of``: utterance ID -> the role it is attacked under; ``notes``:
    what was deduplicated and which speakers span roles, in words.
    """

    rows: Dict[str, List[dict]]
    role_of: Dict[str, str]
    n_duplicates: Dict[str, int]
    shared_speakers: Dict[str, List[str]]
    notes: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n_utterances": {r: len(v) for r, v in self.rows.items()},
                "n_speakers": {r: len({x["spk_id"] for x in v}) for r, v in self.rows.items()},
                "n_duplicates": dict(self.n_duplicates),
                "shared_speakers": {k: len(v) for k, v in self.shared_speakers.items()},
                "notes": dict(self.notes)}


def assign_roles(rows: Mapping[str, Sequence[dict]]) -> RoleAssignment:
    """Deduplicate utterance IDs across roles (train, valid, test); see the module docstring."""
    role_of: Dict[str, str] = {}
    out: Dict[str, List[dict]] = {}
    dup: Dict[str, int] = {}
    for role in ROLES:
        out[role], dup[role] = [], 0
        for r in rows.get(role, ()):
            if r["ID"] in role_of:
                dup[role] += 1
                continue
            role_of[r["ID"]] = role
            out[role].append(r)
    notes: Dict[str, str] = {}
    for role in ROLES:
        if dup[role]:
            first = sorted({role_of[r["ID"]] for r in rows.get(role, ()) if role_of[r["ID"]] != role})
            notes[f"duplicates/{role}"] = (f"{dup[role]} of the {len(rows.get(role, ()))} {role} utterances are also "
                                           f"{'/'.join(first)} utterances (the splits overlap, e.g. valid_split = "
                                           f"test_split): each is attacked once, as {'/'.join(first)}")
    spk = {role: {r["spk_id"] for r in rows.get(role, ())} for role in ROLES}
    shared: Dict[str, List[str]] = {}
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1:]:
            s = sorted(spk[a] & spk[b])
            if s:
                shared[f"{a}/{b}"] = s
                notes[f"shared_speakers/{a}/{b}"] = f"{len(s)} speakers appear in both {a} and {b} (e.g. {s[:3]})"
    for role in ROLES:
        if not rows.get(role):
            notes[f"missing/{role}"] = f"no {role} utterances"
    return RoleAssignment(out, role_of, dup, shared, notes)


def cap_per_speaker(rows: Sequence[dict], cap: int) -> List[str]:
    """Up to ``cap`` utterance IDs per speaker (lowest IDs first), speakers in sorted order."""
    by: Dict[str, List[str]] = {}
    for r in sorted(rows, key=lambda r: r["ID"]):
        by.setdefault(r["spk_id"], []).append(r["ID"])
    return [u for spk in sorted(by) for u in by[spk][:cap]]


def membership_sets(roles: RoleAssignment, cap: int):
    """(members, non-members): capped training utterances, and capped valid/test utterances never trained on.

    Deduplication already made every training utterance a ``train`` row, so
    no utterance is both. Non-member speakers may still be member speakers
    (overlapping splits): the membership report then says it is utterance-level only.
    """
    members = cap_per_speaker(roles.rows["train"], cap)
    nonmembers = cap_per_speaker(roles.rows["valid"] + roles.rows["test"], cap)
    assert not set(members) & set(nonmembers)
    return members, nonmembers

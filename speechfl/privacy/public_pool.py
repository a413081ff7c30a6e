"""Real negatives for a local speaker adversary: a public pool of voices that belong to no client.

With one speaker per client, a client's speaker adversary only ever sees its own speaker's label: a
one-class problem that the heads solve from their bias, so the reversed (or confusion) gradient carries
no speaker information (issue 19). Every client here also holds the same *public* pool: utterances of
``speakers`` voices that are not in the training corpus (realistic: public recordings; for the embedded
corpus, synthetic voices of another seed). The adversary's classes become the training speakers followed
by the pool's speakers (``N + P``); at every local step the client draws ``per_step`` pool utterances,
runs them through the encoder beside its own batch, and the heads learn to tell its speaker from the
pool's voices; the encoder is trained against them (gradient reversal or confusion, as configured) on
both. The negatives are real voices, and the softmax denominator is no longer one class.

Spec (``adversary.public_pool``)::

    {data_folder: corpora/public_pool, split: train, speakers: 16, per_speaker: 10, per_step: 4,
     synthetic: {speakers: 24, utterances: 10, seed: 101}}    # synthetic: generated if absent

* ``speakers`` (P) fixes the adversary's class count before any data is read (the first ``P``
  speakers of the split in sorted order; fewer is an error), so a finished run's model can be rebuilt
  from its hparams alone;
* the pool is read through the LibriSpeech preparation code (any corpus in its layout) and featurised
  by the run's feature pipeline; its labels are ``public/<speaker id>``;
* the draw of step ``s`` of client ``c`` in round ``r`` is a function of ``(seed, r, c, s)`` only,
  so runs resume bit-identically.

What it costs and leaks. Each local step runs the encoder on ``per_step`` more utterances (about
``1 + per_step / batch_size`` times the compute). The heads are averaged with the model, as every
adversary here: a head's row for a training speaker is trained only by that speaker's client, so the
update carries a speaker embedding (as FedAwS' class rows do); ``speechfl evaluate``'s update attackers
(linkage, source inference) see it. The pool's voices are public, so their rows reveal nothing private.

Refused with the reason: ``target: gender`` (a pool's speakers add no gender negatives that a client
lacks in a meaningful way: use the speaker target), ``dp_sample`` (Opacus would count pool utterances
as the client's samples), and a pool folder equal to the run's ``data_folder`` (the pool would hold the
clients' own voices).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import torch

from speechfl.registry import optional_section

POOL_KEYS = {"data_folder", "split", "speakers", "per_speaker", "per_step", "synthetic"}
SYNTHETIC_KEYS = {"speakers", "utterances", "seed"}
PREFIX = "public/"


def _positive_int(spec: Mapping, key: str, default=None, where: str = "adversary.public_pool") -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.{key} must be a positive integer, got {value!r}")
    return value


def check_public_pool(adversary: Mapping, *, dp_sample: bool, data_folder: Optional[str] = None) -> Optional[dict]:
    """Validate ``adversary.public_pool`` before any data work; returns it normalised (None when absent)."""
    spec = optional_section(adversary, "public_pool", POOL_KEYS, "adversary.public_pool")
    if spec is None:
        return None
    if adversary.get("target", "speaker") != "speaker":
        raise ValueError("adversary.public_pool needs target: speaker (its negatives are other speakers' voices)")
    if dp_sample:
        raise ValueError("adversary.public_pool with dp_sample: Opacus would count the pool's utterances as the "
                         "client's own samples and the accountant would be wrong")
    return check_pool_spec(spec, "adversary.public_pool", data_folder)


def check_pool_spec(spec: Mapping, where: str, data_folder: Optional[str] = None) -> dict:
    """The keys of a public pool (``data_folder``, ``split``, ``speakers``, ``per_speaker``, ``per_step``,
    ``synthetic``) checked and normalised; ``where`` names the section in errors."""
    if not spec.get("data_folder"):
        raise ValueError(f"{where}.data_folder is required (a corpus in LibriSpeech layout)")
    if data_folder is not None and Path(spec["data_folder"]).resolve() == Path(data_folder).resolve():
        raise ValueError(f"{where}.data_folder {spec['data_folder']} is the run's data_folder: the "
                         "pool must hold voices that belong to no client")
    out = {"data_folder": str(spec["data_folder"]), "split": str(spec.get("split", "train")),
           "speakers": _positive_int(spec, "speakers", where=where),
           "per_speaker": _positive_int(spec, "per_speaker", 10, where=where),
           "per_step": _positive_int(spec, "per_step", 4, where=where), "synthetic": None}
    syn = optional_section(spec, "synthetic", SYNTHETIC_KEYS, f"{where}.synthetic")
    if syn is not None:
        out["synthetic"] = {"speakers": _positive_int(syn, "speakers", where=f"{where}.synthetic"),
                            "utterances": _positive_int(syn, "utterances", where=f"{where}.synthetic"),
                            "seed": int(syn.get("seed", 0))}
    return out


def pool_speaker_count(adversary: Mapping) -> int:
    """How many classes the pool adds to the adversary (0 without a pool); read from the spec alone."""
    spec = adversary.get("public_pool")
    return 0 if spec is None else int(spec["speakers"])


def extend_speaker_map(speaker_map: Mapping[str, int], n_public: int, pool_speakers: List[str]) -> Dict[str, int]:
    """The training speakers' labels followed by ``public/<id>`` for the pool's speakers."""
    if len(pool_speakers) != n_public:
        raise ValueError(f"public pool has {len(pool_speakers)} speakers, the spec says {n_public}")
    out = dict(speaker_map)
    for k, s in enumerate(pool_speakers):
        out[PREFIX + s] = len(speaker_map) + k
    return out


@dataclass
class PublicPool:
    """The pool's featurised utterances and their adversary labels (indices after the training speakers)."""

    feats: List[torch.Tensor]
    labels: List[int]
    speakers: List[str]
    per_step: int

    def __post_init__(self):
        if len(self.feats) != len(self.labels) or not self.feats:
            raise ValueError(f"public pool: {len(self.feats)} utterances and {len(self.labels)} labels")

    def draw(self, seed: int, round_: int, client_id: str, step: int):
        """``(feats [k, T, F], relative lengths [k], labels [k])``: ``per_step`` utterances of step ``step``.

        Drawn without replacement from a generator seeded by ``(seed, round_, client_id, step)`` only.
        """
        h = hashlib.sha256(f"public-pool|{seed}|{round_}|{client_id}|{step}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(h[:8], "little") >> 1)
        k = min(self.per_step, len(self.feats))
        idx = torch.randperm(len(self.feats), generator=g)[:k].tolist()
        frames = [self.feats[i] for i in idx]
        longest = max(f.shape[0] for f in frames)
        batch = torch.zeros(k, longest, frames[0].shape[1])
        for j, f in enumerate(frames):
            batch[j, :f.shape[0]] = f
        lens = torch.tensor([f.shape[0] / longest for f in frames])
        return batch, lens, torch.tensor([self.labels[i] for i in idx], dtype=torch.long)


def load_public_pool(spec: Mapping, *, cache, save_folder, first_label: int, progress: bool = False) -> PublicPool:
    """Generate (if ``synthetic``) and read the pool named by a :func:`check_public_pool` spec.

    ``cache`` is the run's :class:`speechfl.data.features.FeatureCache` (same features as the clients');
    ``first_label`` is the number of training speakers (the pool's labels follow them).
    """
    from data_prep.librispeech import prepare_librispeech
    from speechfl.data.dataset import read_manifest

    folder = Path(spec["data_folder"])
    if spec.get("synthetic"):
        from data_prep.synthetic import generate_corpus

        syn = spec["synthetic"]
        generate_corpus(folder, n_speakers=syn["speakers"], n_utterances=syn["utterances"], seed=syn["seed"],
                        progress=progress)
    elif not folder.is_dir():
        raise FileNotFoundError(f"adversary.public_pool.data_folder {folder} does not exist")
    if not (folder / spec["split"]).is_dir():
        raise FileNotFoundError(f"adversary.public_pool: no split folder {folder / spec['split']}")
    csv = prepare_librispeech(folder, Path(save_folder) / "public_pool", splits=[spec["split"]],
                              progress=progress)[spec["split"]]
    rows = sorted(read_manifest(csv), key=lambda r: (r["spk_id"], r["ID"]))
    speakers = sorted({r["spk_id"] for r in rows})
    if len(speakers) < spec["speakers"]:
        raise ValueError(f"adversary.public_pool: split {spec['split']!r} of {folder} has {len(speakers)} speakers, "
                         f"the spec asks for {spec['speakers']}")
    speakers = speakers[:spec["speakers"]]
    label = {s: first_label + k for k, s in enumerate(speakers)}
    feats, labels, count = [], [], {}
    for r in rows:
        s = r["spk_id"]
        if s in label and count.get(s, 0) < spec["per_speaker"]:
            feats.append(cache.get(r["wav"]))
            labels.append(label[s])
            count[s] = count.get(s, 0) + 1
    return PublicPool(feats=feats, labels=labels, speakers=speakers, per_step=spec["per_step"])

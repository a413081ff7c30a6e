"""``speechfl evaluate-anonymization``: VoicePrivacy-protocol privacy and utility of an anonymized corpus.

Stages (each one function):

1. :func:`load_corpora`: the original and anonymized evaluation splits (speaker-disjoint from
   training; the same utterance ids in both) and the ASV training sets (``--train-original`` /
   ``--train-anonymized``, else each corpus's own ``train`` split, as VPC trains on
   train-clean-360). Trial lists come from the original split (VPC lists when present, else
   generated, :mod:`speechfl.anonymization.trials`).
2. :func:`asv_embeddings`: per attacker family (``ecapa``, ``xvector`` from
   :data:`speechfl.attackers.families.SPEAKER_ATTACKERS`), two ASVs trained from scratch, one on
   original and one on anonymized training speech; every evaluation utterance is embedded by
   both and cached in ``OUT/embeddings/asv_<family>_<original|anonymized>.pt`` under a
   fingerprint of the attacker configuration and the audio files (path, size, mtime), so a rerun
   scores from the cache.
3. :func:`privacy`: the four scenarios of :mod:`speechfl.anonymization.scenarios` on every split,
   for every attacker = family x back-end (``lda``: LDA + length norm + cosine; ``cosine``:
   centring + length norm + cosine): EER (overall, per gender of the enrolled speaker, per split,
   pooled over splits) and linkability ``D_sys``. Each scenario reports its *strongest* attacker
   (lowest pooled EER; a weak ASV overestimates privacy), and every attacker's EER.
4. :func:`utility`: ``rho_F0`` over test utterances, ``G_VD`` (the original ASV scores
   enrollment vs test utterances; its scores are calibrated to LLRs on the original-data
   trials, as one calibration for ``M_oo`` and ``M_aa``; the first family with the first back-end),
   and WER/CER of an ASR run of ours
   (``--asr-run``, trained on original data) on original vs anonymized speech, and of one trained
   on anonymized data (``--asr-run-anonymized``, e.g. ``speechfl train`` on the anonymized corpus)
   on anonymized speech.

Results schema (``OUT/anonymization.json``, ``schema = "speechfl.anonymization/1"``)::

    config:   {original, anonymized, train_original, train_anonymized, splits, attackers, backends, ...}
    corpora:  {split: {utterances, speakers, enroll_utterances, target, nontarget, trials_source}}
    privacy:  {scenario: {enroll, trial, asv, attacker, eer_by_attacker: {attacker: eer},
                          pooled: BLOCK, by_split: {split: BLOCK}}}   (the strongest attacker's)
              BLOCK = {all|F|M: {eer, linkability, n_target, n_nontarget} or null}
    privacy_by_attacker: {"<family>+<backend>": {scenario: {enroll, trial, asv, pooled, by_split}}}
    utility:  {rho_f0: {rho_f0, n_utterances, n_skipped},
               gvd: {gvd_db, by_split: {split: gvd_db}},
               asr: {original|anonymized|anonymized_retrained: {wer, cer, n_utterances, asr_run}} or {reason}}
    asv:      {family: {original|anonymized: {train_utterances, train_speakers, cached, seconds}}}
    seconds:  {total, ...}

EERs and linkability are fractions in [0, 1]; ``null`` means not computable (e.g. no trials
of that gender).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from speechfl.anonymization.corpus import SplitData, load_split
from speechfl.anonymization.scenarios import SCENARIOS, eer_breakdown, pool, scenario_inputs, score_trials
from speechfl.anonymization.trials import TrialList, trials_for_split

SCHEMA = "speechfl.anonymization/1"
DATA = ("original", "anonymized")
BACKENDS = ("lda", "cosine")


@dataclass(frozen=True)
class EvalConfig:
    """Everything that determines an evaluation (validated in ``__post_init__``)."""

    original: str
    anonymized: str
    out: str
    train_original: Optional[str] = None
    train_anonymized: Optional[str] = None
    train_split: str = "train"
    splits: Tuple[str, ...] = ("dev", "test")
    attackers: Tuple[str, ...] = ("ecapa",)
    attacker_params: Dict[str, object] = field(default_factory=dict)
    backends: Tuple[str, ...] = BACKENDS
    lda_dim: int = 150
    n_enroll: int = 5
    seed: int = 0
    n_mels: int = 80
    max_pitch_utterances: int = 100
    asr_run: Optional[str] = None
    asr_run_anonymized: Optional[str] = None  # an ASR run trained on anonymized data (VPC's retrained ASR)

    def __post_init__(self):
        from speechfl.attackers.families import SPEAKER_ATTACKERS

        if not self.attackers or any(a not in ("ecapa", "xvector") for a in self.attackers):
            raise ValueError(f"ASV attackers must be sequence models (ecapa, xvector), got {list(self.attackers)}; "
                             f"registered speaker attackers: {', '.join(SPEAKER_ATTACKERS.names())}")
        for family in self.attackers:
            SPEAKER_ATTACKERS.build(family, **self.attacker_params)  # unknown parameters raise here
        if not self.backends or any(b not in BACKENDS for b in self.backends):
            raise ValueError(f"back-ends must be among {BACKENDS}, got {list(self.backends)}")
        if not self.splits:
            raise ValueError("at least one evaluation split is needed")
        if (self.train_original is None) != (self.train_anonymized is None):
            raise ValueError("give both --train-original and --train-anonymized, or neither (then each corpus's "
                             f"{self.train_split!r} split trains its ASV)")
        if self.lda_dim < 1:
            raise ValueError(f"lda_dim must be >= 1, got {self.lda_dim}")
        if self.asr_run_anonymized is not None and self.asr_run is None:
            raise ValueError("asr_run_anonymized needs asr_run too (the original-data ASR is the reference)")


@dataclass
class Corpora:
    eval: Dict[str, Dict[str, SplitData]]  # data -> split -> rows
    train: Dict[str, SplitData]  # data -> training rows
    trials: Dict[str, TrialList]  # split -> trial list


def load_corpora(cfg: EvalConfig) -> Corpora:
    """Stage 1: splits, training sets and trial lists, with consistency checks."""
    roots = {"original": cfg.original, "anonymized": cfg.anonymized}
    ev = {d: {s: load_split(roots[d], s) for s in cfg.splits} for d in DATA}
    for s in cfg.splits:
        orig, anon = ev["original"][s].by_id, ev["anonymized"][s].by_id
        missing = sorted(set(orig) - set(anon))
        if missing:
            raise ValueError(f"split {s}: {len(missing)} original utterances are absent from the anonymized corpus "
                             f"{cfg.anonymized} (first: {missing[0]})")
        moved = [u for u in orig if anon[u]["spk_id"] != orig[u]["spk_id"]]
        if moved:
            raise ValueError(f"split {s}: utterance {moved[0]} has speaker {orig[moved[0]]['spk_id']} in the original "
                             f"and {anon[moved[0]]['spk_id']} in the anonymized corpus")
    train_roots = {"original": cfg.train_original or cfg.original, "anonymized": cfg.train_anonymized or cfg.anonymized}
    train = {d: load_split(train_roots[d], cfg.train_split) for d in DATA}
    train_spk = {r["spk_id"] for d in DATA for r in train[d].rows}
    for s in cfg.splits:
        shared = train_spk & {r["spk_id"] for r in ev["original"][s].rows}
        if shared:
            raise ValueError(f"split {s} shares speakers with the ASV training data ({sorted(shared)[:3]}): "
                             "enrollment/trial speakers must be unseen in training")
    trials = {s: trials_for_split(ev["original"][s], seed=cfg.seed, n_enroll=cfg.n_enroll) for s in cfg.splits}
    return Corpora(ev, train, trials)


def _fingerprint(cfg: EvalConfig, family: str, asv: str, corpora: Corpora) -> str:
    def files(rows):
        out = []
        for r in rows:
            st = os.stat(r["wav"])
            out.append((r["ID"], os.path.abspath(r["wav"]), st.st_size, st.st_mtime_ns))
        return out

    payload = {"attacker": family, "params": cfg.attacker_params, "seed": cfg.seed, "n_mels": cfg.n_mels,
               "train": files(corpora.train[asv].rows),
               "eval": {f"{d}/{s}": files(corpora.eval[d][s].rows) for d in DATA for s in cfg.splits}}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def asv_embeddings(cfg: EvalConfig, corpora: Corpora, family: str, asv: str, cache) -> Tuple[dict, dict]:
    """Stage 2 for one ASV (``family`` trained on ``asv`` data): ``{"train": {utt: e}, "<data>/<split>": ...}``, info."""
    from speechfl.attackers.families import SPEAKER_ATTACKERS
    from speechfl.io import atomic_torch_save

    path = Path(cfg.out) / "embeddings" / f"asv_{family}_{asv}.pt"
    fp = _fingerprint(cfg, family, asv, corpora)
    train_rows = corpora.train[asv].rows
    info = {"train_utterances": len(train_rows), "train_speakers": len({r["spk_id"] for r in train_rows})}
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        if stored.get("fingerprint") == fp:
            return stored["embeddings"], {**info, "cached": True, "seconds": 0.0}
    t0 = time.time()
    speakers = sorted({r["spk_id"] for r in train_rows})
    labels = torch.tensor([speakers.index(r["spk_id"]) for r in train_rows])
    frames = [cache.get(r["wav"]) for r in train_rows]
    attacker = SPEAKER_ATTACKERS.build(family, **cfg.attacker_params)
    attacker.fit(frames, labels, len(speakers), seed=cfg.seed)
    out = {"train": dict(zip([r["ID"] for r in train_rows], attacker.embed(frames)))}
    for d in DATA:
        for s in cfg.splits:
            rows = corpora.eval[d][s].rows
            out[f"{d}/{s}"] = dict(zip([r["ID"] for r in rows], attacker.embed([cache.get(r["wav"]) for r in rows])))
    out["train_labels"] = {r["ID"]: torch.tensor(speakers.index(r["spk_id"])) for r in train_rows}
    atomic_torch_save({"fingerprint": fp, "embeddings": out}, path)
    return out, {**info, "cached": False, "seconds": time.time() - t0}


def normalised(cfg: EvalConfig, emb: dict, backend: str) -> Dict[str, Dict[str, torch.Tensor]]:
    """The ASV's back-end (fitted on its own training embeddings) applied to every evaluation set."""
    from speechfl.attackers.verification import CosineBackend

    ids = sorted(emb["train"])
    backend = CosineBackend.fit(torch.stack([emb["train"][u] for u in ids]),
                                torch.stack([emb["train_labels"][u] for u in ids]),
                                lda_dim=cfg.lda_dim if backend == "lda" else None)
    out = {}
    for key, table in emb.items():
        if key in ("train", "train_labels"):
            continue
        utts = sorted(table)
        out[key] = dict(zip(utts, backend(torch.stack([table[u] for u in utts]))))
    return out


def privacy(cfg: EvalConfig, corpora: Corpora, normed: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]]) -> dict:
    """Stage 3: every scenario on every split (``normed[asv]["<data>/<split>"]``)."""
    result = {}
    for sc in SCENARIOS:
        by_split, scored_all = {}, []
        for s in cfg.splits:
            split = corpora.eval["original"][s]
            emb = {(a, d): normed[a][f"{d}/{s}"] for a in DATA for d in DATA}
            enroll, test = scenario_inputs(sc, emb)
            scored = score_trials(corpora.trials[s], enroll, test, {r["ID"]: r["spk_id"] for r in split.rows},
                                  {r["spk_id"]: r["gender"] for r in split.rows})
            by_split[s] = eer_breakdown(scored)
            scored_all.append(scored)
        result[sc.name] = {"enroll": sc.enroll, "trial": sc.trial, "asv": sc.asv, "pooled": eer_breakdown(pool(scored_all)),
                           "by_split": by_split}
    return result


def strongest(by_attacker: Mapping[str, dict]) -> dict:
    """Per scenario, the attacker with the lowest pooled EER (ties: the first listed), with every attacker's EER."""
    out = {}
    for name in next(iter(by_attacker.values())):
        eers = {a: res[name]["pooled"]["all"]["eer"] for a, res in by_attacker.items()}
        best = min(eers, key=lambda a: eers[a])
        out[name] = {**by_attacker[best][name], "attacker": best, "eer_by_attacker": eers}
    return out


def _gvd(cfg: EvalConfig, corpora: Corpora, normed) -> dict:
    from speechfl.anonymization.metrics import calibrate, gain_of_voice_distinctiveness, similarity_matrix

    by_split = {}
    for s in cfg.splits:
        split = corpora.eval["original"][s]
        spk = {r["ID"]: r["spk_id"] for r in split.rows}
        trials = corpora.trials[s]
        a_ids = list(trials.enrolls)
        b_ids = sorted({t.utt for t in trials.trials})
        speakers = sorted({spk[u] for u in a_ids} & {spk[u] for u in b_ids})
        if len(speakers) < 2:
            by_split[s] = None
            continue
        mats = {}
        for d in DATA:
            e = normed["original"][f"{d}/{s}"]
            mats[d] = (torch.stack([e[u] for u in a_ids]).double() @ torch.stack([e[u] for u in b_ids]).double().T).numpy()
        same = np.array([[spk[a] == spk[b] for b in b_ids] for a in a_ids])
        a_cal, b_cal = calibrate(mats["original"][same], mats["original"][~same])
        m = {d: similarity_matrix(a_cal * mats[d] + b_cal, [spk[u] for u in a_ids], [spk[u] for u in b_ids], speakers)
             for d in DATA}
        by_split[s] = gain_of_voice_distinctiveness(m["original"], m["anonymized"])
    values = [v for v in by_split.values() if v is not None]
    return {"gvd_db": float(np.mean(values)) if values else None, "by_split": by_split,
            "asv": "original", "calibration": "affine LLR fitted on original-data trials"}


def _pitch(cfg: EvalConfig, corpora: Corpora) -> dict:
    import soundfile

    from speechfl.anonymization.metrics import pitch_correlation

    pairs = {}
    per_split = max(1, cfg.max_pitch_utterances // len(cfg.splits))
    for s in cfg.splits:
        test_ids = sorted({t.utt for t in corpora.trials[s].trials})
        step = max(1, len(test_ids) // per_split)
        orig, anon = corpora.eval["original"][s].by_id, corpora.eval["anonymized"][s].by_id
        for u in test_ids[::step][:per_split]:
            pairs[u] = (orig[u]["wav"], anon[u]["wav"])

    def load(path):
        wav, sr = soundfile.read(path, dtype="float64")
        return wav, sr

    return pitch_correlation(pairs, load)


def _load_asr(run_dir: str):
    """(model, tokenizer, n_mels) of a finished ``speechfl train`` run."""
    from speechfl.data.tokenizer import CharTokenizer
    from speechfl.experiment.run import load_run_model

    hparams, _, state = load_run_model(run_dir)
    model = hparams["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"ASR run {run_dir}: model.pt does not fit the run's model ({error})") from None
    return model, hparams.get("tokenizer") or CharTokenizer(), int(hparams.get("n_mels", 80))


def _error_rates(cfg: EvalConfig, corpora: Corpora, run_dir: str, data: str) -> dict:
    """Pooled WER/CER of the ASR of ``run_dir`` on the ``data`` corpus's evaluation splits."""
    from data_prep.kaldi import write_manifest
    from speechfl.data.dataset import make_dataset, make_loader
    from speechfl.data.features import FeatureCache, FeatureConfig
    from speechfl.metrics.asr import transcribe

    model, tokenizer, n_mels = _load_asr(run_dir)
    cache = FeatureCache(FeatureConfig(n_mels=n_mels), str(Path(cfg.out) / "features"))
    errs = {"w": 0, "nw": 0, "c": 0, "nc": 0, "n": 0}
    for s in cfg.splits:
        csv = write_manifest(corpora.eval[data][s].rows, Path(cfg.out) / "manifests" / f"{data}_{s}.csv", source=data,
                             has_text=True)
        loader = make_loader(make_dataset(csv, tokenizer, cache).filtered_sorted(sort_key="duration"), 16,
                             shuffle=False)
        for rec in transcribe(model, loader, tokenizer):
            errs["w"] += rec.word_errors
            errs["nw"] += rec.n_words
            errs["c"] += rec.char_errors
            errs["nc"] += rec.n_chars
            errs["n"] += 1
    return {"wer": errs["w"] / max(1, errs["nw"]), "cer": errs["c"] / max(1, errs["nc"]), "n_utterances": errs["n"],
            "asr_run": str(run_dir)}


def _asr(cfg: EvalConfig, corpora: Corpora) -> dict:
    """WER/CER: the original-data ASR on original and anonymized speech; the retrained one on anonymized speech."""
    if cfg.asr_run is None:
        return {"reason": "no --asr-run given (a finished training run of ours on original data)"}
    for d in DATA:
        for s in cfg.splits:
            if not corpora.eval[d][s].has_text:
                return {"reason": f"split {s} of the {d} corpus has no transcripts (privacy-only)"}
    out = {d: _error_rates(cfg, corpora, cfg.asr_run, d) for d in DATA}
    if cfg.asr_run_anonymized is not None:
        out["anonymized_retrained"] = _error_rates(cfg, corpora, cfg.asr_run_anonymized, "anonymized")
    return out


def evaluate_anonymization(cfg: EvalConfig) -> dict:
    """Run every stage and write ``OUT/anonymization.json`` plus the Markdown/HTML report; returns the results."""
    from speechfl.anonymization.report import write_report
    from speechfl.data.features import FeatureCache, FeatureConfig
    from speechfl.io import atomic_write_json

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    corpora = load_corpora(cfg)
    cache = FeatureCache(FeatureConfig(n_mels=cfg.n_mels), str(out / "features"))
    seconds, asv_info, by_attacker, reference = {}, {}, {}, None
    t_priv = 0.0
    for family in cfg.attackers:
        embs, asv_info[family] = {}, {}
        for asv in DATA:
            embs[asv], asv_info[family][asv] = asv_embeddings(cfg, corpora, family, asv, cache)
        for backend in cfg.backends:
            normed = {asv: normalised(cfg, embs[asv], backend) for asv in DATA}
            reference = reference or normed
            t1 = time.time()
            by_attacker[f"{family}+{backend}"] = privacy(cfg, corpora, normed)
            t_priv += time.time() - t1
    seconds["asv"] = time.time() - t0 - t_priv
    seconds["privacy"] = t_priv
    priv = strongest(by_attacker)
    t1 = time.time()
    util = {"rho_f0": _pitch(cfg, corpora), "gvd": _gvd(cfg, corpora, reference), "asr": _asr(cfg, corpora)}
    seconds["utility"] = time.time() - t1
    seconds["total"] = time.time() - t0
    corp = {}
    for s in cfg.splits:
        rows = corpora.eval["original"][s].rows
        corp[s] = {"utterances": len(rows), "speakers": len({r["spk_id"] for r in rows}),
                   "trials_source": corpora.trials[s].source, **corpora.trials[s].counts()}
    results = {"schema": SCHEMA, "config": asdict(cfg), "corpora": corp, "privacy": priv,
               "privacy_by_attacker": by_attacker, "utility": util,
               "asv": asv_info, "seconds": seconds}
    atomic_write_json(out / "anonymization.json", results)
    write_report(results, out)
    return results

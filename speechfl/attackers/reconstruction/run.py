"""``run_reconstruction``: every reconstruction threat on a set of client updates, per compressor view.

For each view (a compressor the updates go through: encode, then the server's
decode, per-client state such as error-feedback memory kept across a client's
updates in input order), the server's decoded updates are attacked by:

* ``labels``: the character set from the CTC head bias (:mod:`.labels`);
* ``inversion``: features by gradient matching (:mod:`.inversion`), scored by
  feature cosine/MSE, CER of the global model on them and speaker identification
  by attackers trained on real features;
* ``local_model``: recovery error of the local model and the footprint attack (:mod:`.local_model`).
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

import torch

from speechfl.attackers.reconstruction.inputs import ReconstructionConfig, ReconstructionInput
from speechfl.attackers.reconstruction.inversion import feature_similarity, invert_update, normalised
from speechfl.attackers.reconstruction.labels import recover_char_set, score_sets, true_char_set
from speechfl.attackers.reconstruction.local_model import footprint_eer, footprints, recovery_error
from speechfl.attackers.reconstruction.reports import (
    InversionScore,
    LabelRecoveryScore,
    LocalModelScore,
    ReconstructionReport,
)
from speechfl.compression import CompressionContext, build_compressor, derive_seed
from speechfl.federated.update import load_flat_params

HEAD_BIAS, HEAD_WEIGHT = "head.w.bias", "head.w.weight"


def server_views(inp: ReconstructionInput, spec, seed: int) -> tuple[List[torch.Tensor], float]:
    """Decoded update of every input update through compressor ``spec``, and the mean payload bytes."""
    comp = build_compressor(spec)
    if comp.requires_server_state:
        raise ValueError(f"compressor {comp.name!r} decodes to a change of the server's per-client estimate, not "
                         "the update; its view needs the server state (not supported here)")
    states: Dict[str, dict] = {}
    out, n_bytes = [], 0
    for k, u in enumerate(inp.updates):
        state = states.setdefault(u.client_id, {"client_seed": derive_seed(seed, u.client_id)})
        ctx = CompressionContext(round=k + 1, seed=seed, layout=inp.layout.as_list(), dim=inp.layout.dim)
        payload = comp.encode(u.delta, state, ctx)
        n_bytes += len(payload)
        out.append(comp.decode(payload, ctx).to(torch.float32))
    return out, n_bytes / len(inp.updates)


def label_scores(inp: ReconstructionInput, views: List[torch.Tensor]) -> LabelRecoveryScore:
    sl = inp.layout.slices()
    shape = dict(zip(inp.layout.names, inp.layout.shapes))[HEAD_WEIGHT]
    both, sign = [], []
    for u, v in zip(inp.updates, views):
        truth = true_char_set(u.tokens)
        both.append(score_sets(recover_char_set(v[sl[HEAD_BIAS]], v[sl[HEAD_WEIGHT]].view(shape)), truth))
        sign.append(score_sets(recover_char_set(v[sl[HEAD_BIAS]]), truth))
    n = len(both)
    return LabelRecoveryScore(
        precision=sum(s.precision for s in both) / n, recall=sum(s.recall for s in both) / n,
        f1=sum(s.f1 for s in both) / n, exact=sum(1.0 for s in both if s.n_correct == s.n_pred == s.n_true) / n,
        sign_precision=sum(s.precision for s in sign) / n, sign_recall=sum(s.recall for s in sign) / n,
        sign_f1=sum(s.f1 for s in sign) / n, n_updates=n)


class SpeakerOracle:
    """Speaker attackers trained on the reference's real (model-normalised) features; strongest by top-1."""

    def __init__(self, inp: ReconstructionInput, families, seed: int):
        from speechfl.attackers.families import SPEAKER_ATTACKERS

        ref = inp.reference
        self.speakers = sorted(set(ref.spk_ids))
        self.index = {s: i for i, s in enumerate(self.speakers)}
        labels = torch.tensor([self.index[s] for s in ref.spk_ids], dtype=torch.long)
        frames = [normalised(f) for f in ref.frames]
        self.attackers = {f: SPEAKER_ATTACKERS.build(f).fit(frames, labels, len(self.speakers), seed=seed)
                          for f in families}

    def topk(self, frames: List[torch.Tensor], speakers: List[str]) -> Dict[str, tuple]:
        """family -> (top-1, top-5) on ``frames`` (already normalised)."""
        y = torch.tensor([self.index[s] for s in speakers])
        out = {}
        for name, att in self.attackers.items():
            logits = att.logits(frames)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            out[name] = (float((top[:, 0] == y).float().mean()), float((top == y[:, None]).any(1).float().mean()))
        return out


@torch.no_grad()
def _cer(inp: ReconstructionInput, feats: List[torch.Tensor], tokens: List[List[int]]) -> float:
    from speechbrain.decoders import ctc_greedy_decode

    from speechfl.metrics.asr import pooled_rates, score

    model, tok = inp.model, inp.tokenizer
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        load_flat_params(model, inp.layout, inp.global_flat)
        hyps = []
        for f in feats:
            out = model(f.unsqueeze(0), torch.ones(1))
            seq = ctc_greedy_decode(out.log_probs, out.lengths, blank_id=tok.blank_id)[0]
            hyps.append(" ".join(tok.decode(seq).split()))
    finally:
        for n, p in model.named_parameters():
            p.copy_(saved[n])
        model.train(was_training)
    refs = [" ".join(tok.decode(t).split()) for t in tokens]
    ids = [f"u{i}" for i in range(len(refs))]
    return pooled_rates(score(ids, ids, ids, refs, hyps))["cer"]


def inversion_score(inp: ReconstructionInput, views: List[torch.Tensor], config: ReconstructionConfig,
                    oracle: Optional[SpeakerOracle]) -> Optional[InversionScore]:
    picks = [k for k, u in enumerate(inp.updates) if u.features is not None][: config.max_inversions]
    if not picks:
        return None
    start = time.perf_counter()
    rec, orig, rand, spk, toks, losses = [], [], [], [], [], []
    for k in picks:
        u = inp.updates[k]
        inv = invert_update(inp.model, inp.layout, inp.global_flat, views[k], [f.shape[0] for f in u.features],
                            u.tokens, u.features[0].shape[1], config.match, seed=derive_seed(config.seed, k) % 2**31,
                            start=u.prior)
        rec += inv.features
        rand += inv.start
        orig += list(u.features)
        spk += [u.speaker] * len(u.features)
        toks += u.tokens
        losses.append(inv.history[-1])
    sims = [feature_similarity(r, o) for r, o in zip(rec, orig)]
    sims0 = [feature_similarity(r, o) for r, o in zip(rand, orig)]
    notes: Dict[str, str] = {}
    cer = cer0 = None
    if inp.tokenizer is not None:
        cer, cer0 = _cer(inp, rec, toks), _cer(inp, orig, toks)
    else:
        notes["cer"] = "no tokenizer given"
    top1 = top5 = top1_orig = top1_start = chance = None
    family = None
    if oracle is not None:
        missing = sorted({s for s in spk if s not in oracle.index})
        if missing:
            notes["speaker_top1"] = f"attacked speakers {missing[:5]} are not in the reference set"
        else:
            on_rec = oracle.topk([normalised(r) for r in rec], spk)
            on_orig = oracle.topk([normalised(o) for o in orig], spk)
            family = max(on_rec, key=lambda f: on_rec[f][0])
            top1, top5 = on_rec[family]
            top1_orig = on_orig[family][0]
            top1_start = oracle.topk([normalised(r) for r in rand], spk)[family][0]
            chance = 1.0 / len(oracle.speakers)
    else:
        notes["speaker_top1"] = "no reference features given"
    n = len(rec)
    return InversionScore(
        feature_cosine=sum(s["cosine"] for s in sims) / n, feature_mse=sum(s["mse"] for s in sims) / n,
        feature_cosine_random=sum(s["cosine"] for s in sims0) / n, match_loss=sum(losses) / len(losses),
        cer=cer, cer_original=cer0, speaker_top1=top1, speaker_top5=top5, speaker_top1_original=top1_orig,
        speaker_chance=chance, strongest_family=family, n_utts=n, seconds=time.perf_counter() - start, notes=notes,
        speaker_top1_start=top1_start)


def local_model_score(inp: ReconstructionInput, views: List[torch.Tensor]) -> LocalModelScore:
    notes: Dict[str, str] = {}
    if inp.true_updates:
        errs = [recovery_error(v, u.delta) for u, v in zip(inp.updates, views)]
        rel, cos = sum(e[0] for e in errs) / len(errs), sum(e[1] for e in errs) / len(errs)
    else:
        rel = cos = None
        notes["relative_error"] = notes["cosine"] = "updates are the server's view already: the true local models are unknown"
    prints = footprints(inp.model, inp.layout, inp.global_flat, views, list(inp.indicator))
    try:
        eer_, nt, nn = footprint_eer(prints, [u.speaker for u in inp.updates])
    except ValueError as exc:
        eer_, nt, nn = None, 0, 0
        notes["footprint_eer"] = str(exc)
    return LocalModelScore(relative_error=rel, cosine=cos, footprint_eer=eer_, n_updates=len(views),
                           n_target_trials=nt, n_nontarget_trials=nn, notes=notes)


def run_reconstruction(inp: ReconstructionInput, config: ReconstructionConfig = ReconstructionConfig()
                       ) -> ReconstructionReport:
    """Run the configured reconstruction threats on every compressor view; see the module docstring."""
    config.validate()
    inp.validate(config)
    start = time.perf_counter()
    notes: Dict[str, str] = {}
    oracle = None
    if "inversion" in config.threats and inp.reference is not None:
        oracle = SpeakerOracle(inp, config.speaker_families, config.seed)
    labels, inversion, local = {}, {}, {}
    for name, spec in config.compressors.items():
        views, mean_bytes = server_views(inp, spec, config.seed)
        notes[f"bytes/{name}"] = f"{mean_bytes:.0f} bytes per update on the wire"
        if "labels" in config.threats:
            labels[name] = label_scores(inp, views)
        if "inversion" in config.threats:
            score = inversion_score(inp, views, config, oracle)
            if score is None:
                notes[f"inversion/{name}"] = "no update carries its features: nothing to invert"
            else:
                inversion[name] = score
        if "local_model" in config.threats:
            local[name] = local_model_score(inp, views)
    return ReconstructionReport(labels=labels, inversion=inversion, local_model=local,
                                seconds=time.perf_counter() - start, notes=notes)

"""Speaker hiding: privacy-utility points of every defense against the strongest *fresh* attacker.

Usage::

    python benchmarks/bench_speaker_hiding.py                       # the reduced centralized sweep
    python benchmarks/bench_speaker_hiding.py --points none,vq48 --steps 600 --engine inprocess
    python benchmarks/bench_speaker_hiding.py --setting tradeoff --engine inprocess   # the trade-off setting

``--setting small`` (default) trains the small conv_rnn below; ``--setting tradeoff`` trains the trade-off
benchmarks' model and schedule (``benchmarks/_runner.py``: Conformer tiny, 8 clients x 5 local Adam steps of
4 utterances x 64 rounds; centralized: one pooled client doing the same 40 steps per round), so its undefended
point is bench_privacy_tradeoff's ``none``. The ASR warm-up and the heads' re-initialisation period default to a
quarter and a sixth of one client's total steps there.

Each point trains the small conv_rnn (``hiding_none.yaml`` plus the point's overrides, one fixed seed), then
extracts the representation of up to ``--per-speaker`` utterances of *every* corpus speaker (train, dev and
test) and trains linear / MLP / x-vector speaker attackers from scratch on it
(:func:`speechfl.attackers.speaker_id.speaker_attacks`: closed-set top-1 among the attack speakers, open-set
EER on held-out speakers, per gender). The same attackers on the raw Fbank features are the no-protection
reference. Printed per point: test CER, relative CER vs the undefended point, strongest top-1 (and x chance),
best EER and per-gender EER (F / M, gap), the training adversary's final cross-entropy against ``log C``.
Targets (issue 19): strongest top-1 <= 5x chance and EER >= 30 % at <= +15 % relative CER.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "hiding_none.yaml"

SMALL = ["--n_mels=40", "--channels=16", "--proj=128", "--hidden=128", "--layers=2", "--dropout=0.05",
         "--augment=null", "--eval_every=0"]
RAMP = "warmup_steps: {w}, schedule: {{kind: linear, lambda_max: 1.0, warmup_steps: {w}}}"
HEADS3 = "heads: [linear, mlp, xvector], reinit_every: {r}"


def points(warm: int, reinit: int, pool_folder: Path = ROOT / "corpora" / "public_pool") -> dict:
    """Defense name -> overrides; the strength is in the name. ``pool_*`` points give every client the same
    16 public synthetic voices (another seed, in no client) as the adversary's negatives."""
    ramp, heads = RAMP.format(w=warm), HEADS3.format(r=reinit)
    pool = (f"public_pool: {{data_folder: {pool_folder}, split: train, speakers: 16, per_speaker: 10, per_step: 4, "
            "synthetic: {speakers: 24, utterances: 10, seed: 101}}")

    def conf(w: float, more: str = "") -> str:
        return f"--adversary={{target: speaker, {heads}, weight: {w}, objective: confusion, {ramp}{more}}}"
    return {
        "none": [],
        "vq256": [f"--bottleneck=[{{name: vq, codes: 256, warmup_steps: {warm}}}]"],
        "vq48": [f"--bottleneck=[{{name: vq, codes: 48, warmup_steps: {warm}}}]"],
        "vq16": [f"--bottleneck=[{{name: vq, codes: 16, warmup_steps: {warm}}}]"],
        "vq4x16": [f"--bottleneck=[{{name: vq, codes: 16, groups: 4, warmup_steps: {warm}}}]"],
        # dead-code restarts (refused federated: they copy one client's frames into a shared parameter)
        "vq48_restart": [f"--bottleneck=[{{name: vq, codes: 48, warmup_steps: {warm}, restart_every: 100}}]"],
        "norm_vq48": [f"--bottleneck=[instance_norm, {{name: vq, codes: 48, warmup_steps: {warm}}}]"],
        "instance_norm": ["--bottleneck=[instance_norm]"],
        "proj16": ["--bottleneck=[{name: projection, dim: 16}]"],
        "proj4": ["--bottleneck=[{name: projection, dim: 4}]"],
        "reversal_w0.25": [f"--adversary={{target: speaker, {heads}, weight: 0.25, objective: reversal, {ramp}}}"],
        "confusion_w0.5": [conf(0.5)],
        "confusion_w2": [conf(2.0)],
        "fedaws_w0.5": [f"--adversary={{target: speaker, heads: [{{name: class_embedding, embed_dim: 64}}], "
                        f"weight: 0.5, objective: confusion, {ramp}, spread_out: {{margin: 1.0, lr: 0.1, steps: 1}}}}"],
        "vq48_confusion_w0.5": [f"--bottleneck=[{{name: vq, codes: 48, warmup_steps: {warm}}}]", conf(0.5)],
        "pool_confusion_w0.5": [conf(0.5, ", " + pool)],
        "norm_pool_confusion_w0.5": ["--bottleneck=[instance_norm]", conf(0.5, ", " + pool)],
        "norm_proj16": ["--bottleneck=[instance_norm, {name: projection, dim: 16}]"],
        "pool_confusion_w2": [conf(2.0, ", " + pool)],
        "pool_reversal_w0.25": [f"--adversary={{target: speaker, {heads}, weight: 0.25, objective: reversal, {ramp}, "
                                f"{pool}}}"],
        # per-utterance whitened projection, at the encoder output or after the Conformer's first block
        "white16": ["--bottleneck=[{name: projection, dim: 16, whiten: true}]"],
        "white8": ["--bottleneck=[{name: projection, dim: 8, whiten: true}]"],
        "inner_white16": ["--bottleneck={stages: [{name: projection, dim: 16, whiten: true}], after_layer: 1}"],
    }


def model_overrides(args) -> list:
    """The model and evaluation keys of ``--setting``."""
    if args.setting == "small":
        return SMALL
    from _runner import BENCH_CONFIG  # the benchmarks folder is on sys.path when run as a script

    return [o for o in BENCH_CONFIG if not o.startswith(("--clients_per_round", "--client="))] + ["--eval_every=0"]


def train_point(corpus: Path, out: Path, extra: list, args) -> tuple:
    """Train one point; returns (results.json dict, the trained model)."""
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    per_client = args.steps if args.engine == "centralized" else args.steps // args.clients
    client = (f"--client={{local_epochs: null, local_steps: {per_client}, batch_size: {args.batch}, "
              f"optimizer: {{name: adam, lr: {args.lr}}}, max_grad_norm: 5.0}}")
    argv = [f"--data_folder={corpus}", f"--feature_cache={corpus.parent / 'feature_cache'}", f"--output_folder={out}",
            f"--synthetic={{speakers: {args.speakers}, utterances: {args.utterances}, seed: 0}}",
            f"--rounds={args.rounds}", f"--engine={args.engine}", *model_overrides(args), client, *extra]
    if args.engine == "centralized":
        argv.append("--clients_per_round=1")
    else:
        argv.append(f"--clients_per_round={args.clients}")
    hp = load_hparams(HPARAMS, argv)
    res = run_federated(hp, str(HPARAMS), argv, progress=False)
    return res, hp["model"]


def representation_sets(model, corpus_handle, per_speaker: int):
    """(representations, fbank) UtteranceSets of up to ``per_speaker`` utterances of every speaker."""
    from speechfl.data.dataset import read_manifest
    from speechfl.experiment.evaluate import extract
    from speechfl.attackers.types import UtteranceSet

    reps_all, fbank_all = [], []
    for role, csv in sorted(corpus_handle.manifests.items()):
        rows, count = [], {}
        for r in read_manifest(csv):
            if count.get(r["spk_id"], 0) < per_speaker:
                rows.append(r["ID"])
                count[r["spk_id"]] = count.get(r["spk_id"], 0) + 1
        reps, fbank = extract(model, csv, rows, corpus_handle)
        reps_all.append(reps)
        fbank_all.append(fbank)

    def cat(sets):
        return UtteranceSet(frames=[f for s in sets for f in s.frames], spk_ids=[x for s in sets for x in s.spk_ids],
                            genders=[x for s in sets for x in s.genders], utt_ids=[x for s in sets for x in s.utt_ids])
    return cat(reps_all), cat(fbank_all)


def attack(data, families, seed: int) -> dict:
    from speechfl.attackers.speaker_id import speaker_attacks

    rep = speaker_attacks(data, families=families, seed=seed, progress=False)
    best_ver = rep.families[rep.strongest_verification]
    per_gender = {g: s.eer for g, s in best_ver.per_gender.items()}
    return {"top1": rep.best_top1, "top1_by": rep.strongest_id, "chance": rep.chance, "eer": rep.best_eer,
            "eer_by": rep.strongest_verification, "eer_per_gender": per_gender,
            "top1_per_family": {f: r.top1 for f, r in rep.families.items()},
            "eer_per_family": {f: r.eer for f, r in rep.families.items()},
            "n_speakers": rep.n_speakers, "n_attack_speakers": rep.n_attack_speakers}


def fmt_row(name, cer, rel, a, adv) -> str:
    """One printed line; CER in %, EERs as fractions, per-gender EERs of the best verification family."""
    g = {k: v for k, v in sorted(a["eer_per_gender"].items()) if v is not None}
    gtxt = " / ".join(f"{k}:{v:.3f}" for k, v in g.items()) or "-"
    gap = max(g.values()) - min(g.values()) if len(g) >= 2 else float("nan")
    return (f"{name:22s} {cer:6.1f} {rel:+7.1%} {a['top1']:6.3f} ({a['top1_by']:7s} {a['top1'] / a['chance']:5.1f}x) "
            f"{a['eer']:6.3f} ({a['eer_by']:7s}) {gtxt:17s} {gap:5.3f}  {adv}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default="none,vq48,vq16,norm_vq48,instance_norm,proj4,reversal_w0.25,confusion_w0.5,"
                   "vq48_confusion_w0.5")
    p.add_argument("--engine", default="centralized", choices=["centralized", "inprocess"])
    p.add_argument("--setting", default="small", choices=["small", "tradeoff"],
                   help="small: the conv_rnn below; tradeoff: benchmarks/_runner.py's model and schedule")
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    p.add_argument("--speakers", type=int, default=48, help="synthetic corpus size (must match an existing corpus)")
    p.add_argument("--utterances", type=int, default=50)
    p.add_argument("--rounds", type=int, default=None, help="default: 2 (small), 64 (tradeoff)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps per round, all clients together (default: 200 small, 40 tradeoff)")
    p.add_argument("--clients", type=int, default=8, help="clients per round (inprocess)")
    p.add_argument("--batch", type=int, default=None, help="default: 8 (small), 4 (tradeoff)")
    p.add_argument("--lr", type=float, default=None, help="default: 0.003 (small), 0.002 (tradeoff)")
    p.add_argument("--warmup", type=int, default=None,
                   help="ASR-only steps before VQ / adversaries switch on (default: 100 small; tradeoff: a quarter)")
    p.add_argument("--reinit", type=int, default=None, help="default: 60 small; tradeoff: a sixth")
    p.add_argument("--per-speaker", type=int, default=10)
    p.add_argument("--families", default="linear,mlp,xvector")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--baseline-cer", type=float, default=None,
                   help="the undefended point's test CER from an earlier run of the same setting (relCER without "
                        "re-running 'none'; the runs are deterministic)")
    args = p.parse_args()
    small = args.setting == "small"
    for key, small_value, tradeoff_value in (("rounds", 2, 64), ("steps", 200, 40), ("batch", 8, 4), ("lr", 0.003, 0.002)):
        if getattr(args, key) is None:
            setattr(args, key, small_value if small else tradeoff_value)
    per_client_total = args.rounds * (args.steps if args.engine == "centralized" else args.steps // args.clients)
    if args.warmup is None:
        args.warmup = 100 if small else per_client_total // 4
    if args.reinit is None:
        args.reinit = 60 if small else max(1, per_client_total // 6)

    import torch

    torch.set_num_threads(args.threads)
    table = points(args.warmup, args.reinit, args.corpus.parent / "public_pool")
    wanted = args.points.split(",")
    unknown = [w for w in wanted if w not in table]
    if unknown:
        raise SystemExit(f"unknown point(s) {unknown}; valid: {', '.join(table)}")
    families = args.families.split(",")
    from _runner import machine_info  # the benchmarks folder is on sys.path when run as a script

    print(json.dumps({**machine_info(args.threads), "setting": args.setting, "engine": args.engine, "rounds": args.rounds,
                      "steps_per_round": args.steps, "batch": args.batch, "warmup": args.warmup,
                      "reinit": args.reinit, "lr": args.lr, "per_speaker": args.per_speaker, "families": families}))
    print(f"{'defense':22s} {'CER%':>6s} {'relCER':>7s} {'top-1':>6s} ({'by':7s} {'xchance':>6s}) "
          f"{'EER':>6s} ({'by':7s}) {'EER per gender':17s} {'gap':5s}  adversary CE vs log C")
    results, base_cer = {}, args.baseline_cer
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            start = time.perf_counter()
            res, model = train_point(args.corpus, Path(tmp) / name, table[name], args)
            corpus_handle = _corpus(args)
            reps, fbank = representation_sets(model, corpus_handle, args.per_speaker)
            a = attack(reps, families, args.seed)
            cer = float(res["test"]["cer"])
            base_cer = cer if name == "none" else base_cer
            rel = (cer / base_cer - 1.0) if base_cer else float("nan")
            adv = "-" if model.adversary is None else _adversary_ce(model, corpus_handle, args.per_speaker)
            a.update(cer=cer, rel_cer=rel, seconds=time.perf_counter() - start, adversary_ce=adv)
            results[name] = a
            print(fmt_row(name, cer, rel, a, adv), flush=True)
            if "fbank" not in results:
                results["fbank"] = attack(fbank, families, args.seed)
                print(fmt_row("raw Fbank (reference)", float("nan"), float("nan"), results["fbank"], "-"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def _corpus(args):
    from speechfl.experiment.corpus import prepare_corpus
    from speechfl.experiment.hparams import load_hparams

    hp = load_hparams(HPARAMS, [f"--data_folder={args.corpus}",
                                f"--feature_cache={args.corpus.parent / 'feature_cache'}",
                                f"--synthetic={{speakers: {args.speakers}, utterances: {args.utterances}, seed: 0}}",
                                *model_overrides(args)])
    return prepare_corpus(hp, progress=False)


def _adversary_ce(model, corpus_handle, per_speaker: int) -> str:
    """The trained adversary heads' mean cross-entropy on training speakers' representations, vs ``log C``
    (``C``: the heads' classes).

    Above ``log C``: the encoder made the heads confidently wrong (fooling, not hiding).
    """
    import torch
    import torch.nn.functional as F

    from speechfl.data.dataset import read_manifest
    from speechfl.experiment.evaluate import extract

    csv = corpus_handle.manifests["train"]
    rows = read_manifest(csv)
    speakers = sorted({r["spk_id"] for r in rows})
    count, ids = {}, []
    for r in rows:
        if count.get(r["spk_id"], 0) < per_speaker:
            ids.append(r["ID"])
            count[r["spk_id"]] = count.get(r["spk_id"], 0) + 1
    reps, _ = extract(model, csv, ids, corpus_handle)
    adv = model.adversary.eval()
    ces = []
    with torch.no_grad():
        for frames, spk in zip(reps.frames, reps.spk_ids):
            logits = adv.head_logits(frames.unsqueeze(0), torch.ones(1))
            y = torch.tensor([speakers.index(spk)])
            ces.append(sum(float(F.cross_entropy(lg, y)) for lg in logits) / len(logits))
    # the uniform guess over the heads' classes (training speakers, plus the public pool's when configured)
    return f"{sum(ces) / len(ces):.2f} vs {torch.log(torch.tensor(float(adv.n_classes))):.2f}"


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

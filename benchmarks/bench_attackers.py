"""Every privacy attacker's score and time: raw Fbank of the synthetic corpus and a real FedAvg run.

Figures printed:

1. raw Fbank of every utterance of the default synthetic corpus (no protection):
   speaker identification (top-1 vs chance) and verification EER per family,
   overall and per gender, with seconds; plus plain cosine on pooled Fbank
   (no trained embedding, no LDA) as the naive reference; gender inference;
2. a FedAvg ASR run without defense (one client per speaker, the trade-off
   benchmarks' setting, ``benchmarks/_runner.py``, every round's updates
   recorded), then ``speechfl evaluate`` on it: speaker and gender attacks on
   the encoder output and on raw Fbank, update linkage, gender from updates,
   source inference from the clients' local models, membership inference,
   the strongest attacker per threat and every attack's seconds.

Targets (issue): top-1 >= 95%, EER <= 5% on raw Fbank, source inference well
above chance, the full attacker suite (``evaluate``) < 5 minutes on 2 cores.
Example::

    python benchmarks/bench_attackers.py --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from data_prep.speakers import read_speakers_txt
from data_prep.synthetic import generate_corpus
from _runner import ROOT, ROUNDS, run_cell
from speechfl.attackers import gender_attack, speaker_attacks
from speechfl.attackers.types import UtteranceSet
from speechfl.io import read_json


def load_fbank(root: Path) -> UtteranceSet:
    from speechbrain.lobes.features import Fbank

    speakers = read_speakers_txt(root / "SPEAKERS.TXT")
    fbank = Fbank(n_mels=80)
    frames, spk, gen, utt = [], [], [], []
    for path in sorted(root.glob("*/*/*/*.flac")):
        wav, _ = sf.read(str(path), dtype="float32")
        with torch.no_grad():
            frames.append(fbank(torch.from_numpy(wav).unsqueeze(0)).squeeze(0))
        s = path.stem.split("-")[0]
        spk.append(s)
        gen.append(speakers[s].gender)
        utt.append(path.stem)
    return UtteranceSet(frames, spk, gen, utt)


def figure_speaker(data: UtteranceSet, families) -> None:
    t0 = time.perf_counter()
    rep = speaker_attacks(data, families=families, progress=False)
    print(f"\n[speaker attacks] {rep.n_utts} utts, {rep.n_attack_speakers} attack spk (chance top-1 "
          f"{rep.chance:.3f}), {rep.n_heldout_speakers} held-out spk, {rep.n_target_trials} target / "
          f"{rep.n_nontarget_trials} non-target trials")
    print(f"{'family':10s} {'top1':>6s} {'EER':>6s} {'EER-sg':>6s}  per-gender (top1 / EER)          seconds")
    for name, fr in rep.families.items():
        pg = "  ".join(f"{g}: {v.top1:.3f}/{v.eer:.3f}" for g, v in fr.per_gender.items() if v.eer is not None)
        sg = "  n/a" if fr.eer_same_gender is None else f"{fr.eer_same_gender:6.3f}"
        print(f"{name:10s} {fr.top1:6.3f} {fr.eer:6.3f} {sg}  {pg:32s} {fr.seconds:6.1f}")
    print("(EER: all held-out pairs; EER-sg: same-gender pairs only, the VoicePrivacy convention)")
    print(f"strongest: id={rep.strongest_id} ({rep.best_top1:.3f}), verification={rep.strongest_verification} "
          f"({rep.best_eer:.3f}); {time.perf_counter() - t0:.1f} s")
    naive = speaker_attacks(data, families=("linear",), progress=False, lda_dim=None)
    print(f"naive reference: cosine on standardised pooled Fbank, no LDA: EER {naive.best_eer:.3f}")


def figure_gender(data: UtteranceSet) -> None:
    t0 = time.perf_counter()
    rep = gender_attack(data)
    fams = ", ".join(f"{f} {v.accuracy:.3f}/{v.auc:.3f}" for f, v in rep.families.items())
    print(f"\n[gender from Fbank] acc/AUC: {fams}; strongest {rep.strongest}; chance {rep.chance:.3f}; "
          f"{rep.n_folds} folds; {time.perf_counter() - t0:.1f} s")


def figure_fedavg_run(corpus: Path, work: Path, rounds: int, families, record_every: int = 1) -> None:
    """A real FedAvg ASR run (the trade-off benchmarks' setting, every ``record_every``-th round's client
    updates recorded: 64 rounds x 8 clients of a 0.47M model would be ~1 GB), then ``evaluate``."""
    from speechfl.experiment.evaluate import evaluate_run

    t0 = time.perf_counter()
    run = work / "fedavg"
    if (run / "model.pt").exists() and (run / "results.json").exists():
        res = read_json(run / "results.json")
        print(f"\n(reusing the finished run in {run})")
    else:
        recorded = sorted({*range(record_every, rounds + 1, record_every), 1, rounds})
        res = run_cell(corpus, run, rounds, [f"--record_updates={recorded}"])
    t1 = time.perf_counter()
    print(f"\n[FedAvg ASR run, no defense: {len(res['partition']['clients'])} clients, {rounds} rounds x "
          f"{len(res['rounds'][-1]['clients'])} clients, test CER {res['test']['cer']:.1f}%; training {t1 - t0:.0f} s]")
    res = evaluate_run(run, attackers=families, progress=False)
    wall = time.perf_counter() - t1
    p = res["privacy"]
    sec = p.get("seconds", {})
    full = p["reports"]  # the full typed reports (summaries sit at the top of the privacy section)
    for label, key in (("encoder output", "speaker"), ("raw Fbank", "fbank_speaker")):
        rep = full[key]
        if rep is None:
            print(f"speaker attacks on {label}: {p['notes'].get(key)}")
            continue
        fams = "  ".join(f"{f} {v['top1']:.3f}/{v['eer']:.3f}" for f, v in rep["families"].items())
        print(f"speaker attacks on {label} ({rep['n_utts']} utts; top-1/EER): {fams}; chance {rep['chance']:.3f}; "
              f"{sec.get(key, float('nan')):.1f} s")
    for label, key in (("encoder output", "gender"), ("raw Fbank", "fbank_gender")):
        g = full[key]
        if g is None:
            print(f"gender from {label}: {p['notes'].get(key)}")
            continue
        print(f"gender from {label}: acc {g['accuracy']:.3f}, AUC {g['auc']:.3f}; {sec.get(key, float('nan')):.1f} s")
    link = full.get("update_linkage")
    if link:
        meth = ", ".join(f"{m} {v['accuracy']:.3f}/{v['eer']:.3f}" for m, v in link["methods"].items())
        print(f"update linkage ({link['n_probes']} probes, {link['n_enroll_clients']} enrolled clients; acc/EER): {meth}; "
              f"chance {link['chance']:.3f}; {sec.get('update_linkage', float('nan')):.1f} s")
    else:
        print(f"update linkage: skipped ({p['linkage'].get('skipped')})")
    ug = full.get("update_gender")
    if ug:
        print(f"gender from updates ({ug['n_items']} updates): acc {ug['accuracy']:.3f}, AUC {ug['auc']:.3f} "
              f"({ug['strongest']}), chance {ug['chance']:.3f}; "
              f"{sec.get('update_gender', float('nan')):.1f} s")
    src = full.get("source_inference")
    if src:
        print(f"source inference: accuracy {src['accuracy']:.3f} vs chance {src['chance']:.3f}; "
              f"{sec.get('source_inference', float('nan')):.1f} s")
    mia = p["membership"]
    if "auc" in mia:
        print(f"membership inference: best AUC {mia['auc']:.3f} ({mia['strongest']}), best TPR@1%FPR "
              f"{mia['tpr_at_1fpr']:.3f}; {sec.get('membership', float('nan')):.1f} s")
    print("strongest per threat: " + "; ".join(
        f"{t}: {v['attacker']} {v['metric']} {v['value']:.3f}" for t, v in p["strongest"].items() if v))
    print(f"evaluate (extraction + every attacker): {wall:.1f} s")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic",
                   help="synthetic corpus folder; the default 48 x 50 corpus is generated there if absent")
    p.add_argument("--families", default="linear,mlp,xvector")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=ROUNDS, help="FedAvg rounds of the attacked run (>= 2)")
    p.add_argument("--record-every", type=int, default=8,
                   help="record the client updates of every N-th round (and the last) for the update attackers")
    p.add_argument("--skip-fbank", action="store_true", help="only the FedAvg run and its evaluation")
    p.add_argument("--work", type=Path, default=None,
                   help="keep the FedAvg run here (a finished run found there is evaluated again, not retrained)")
    args = p.parse_args(argv)
    if args.rounds < 2:
        p.error("--rounds must be >= 2 (linkage links a later update to earlier ones)")
    torch.set_num_threads(args.threads)
    families = tuple(args.families.split(","))
    t0 = time.perf_counter()
    root = generate_corpus(args.corpus, n_speakers=48, n_utterances=50, seed=0, progress=False)
    if not args.skip_fbank:
        data = load_fbank(root)
        data.validate()
        print(f"corpus + Fbank: {len(data)} utterances, {len(set(data.spk_ids))} speakers, "
              f"{sum(f.shape[0] for f in data.frames) / len(data):.0f} frames/utt, {time.perf_counter() - t0:.1f} s; "
              f"{args.threads} torch threads")
        t1 = time.perf_counter()
        figure_speaker(data, families)
        figure_gender(data)
        print(f"raw-Fbank attacker suite wall time (every utterance): {time.perf_counter() - t1:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        figure_fedavg_run(root, args.work or Path(tmp), args.rounds, families, args.record_every)


if __name__ == "__main__":
    main()

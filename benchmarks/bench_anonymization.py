"""Speaker anonymization evaluated end to end on the synthetic corpus: McAdams vs the VPC attackers.

Steps, each timed:

1. generate the synthetic corpus (``--speakers`` x ``--utterances``, default 40 x 50 = 2,000
   utterances, speaker-disjoint train / dev / test = 1/2, 1/4, 1/4 of the speakers; not part of
   the evaluation time);
2. ``speechfl anonymize`` with McAdams (alpha per utterance in [0.5, 0.9], VPC B2), 2 workers;
3. ``speechfl evaluate-anonymization``: ECAPA ASVs trained from scratch on original and on
   anonymized training speech, the four scenarios on dev + test (generated VPC-style lists),
   EER per gender and split, linkability, rho_F0 and G_VD (ASR utility needs a training run,
   ``--asr-run``; not part of this benchmark unless given).

Targets (issue 15): anonymize + evaluate <= 10 minutes on 2 cores; McAdams ignorant EER far above
semi-informed; ASV on original speech EER <= 5%. Example::

    python benchmarks/bench_anonymization.py --threads 2
    python benchmarks/bench_anonymization.py --speakers 24 --utterances 30   # reduced run
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--attackers", default="ecapa", help="comma-separated: ecapa, xvector")
    parser.add_argument("--asr-run", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from data_prep.synthetic import generate_corpus
    from speechfl.anonymization.apply import anonymize_corpus
    from speechfl.anonymization.evaluate import EvalConfig, evaluate_anonymization

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_anon_"))
    original, anonymized, out = work / "original", work / "mcadams", work / "eval"
    t0 = time.time()
    generate_corpus(original, n_speakers=args.speakers, n_utterances=args.utterances, seed=args.seed,
                    split_fractions=(0.5, 0.25, 0.25), progress=False)
    t_gen = time.time() - t0
    cpu0 = _cpu_seconds()
    t0 = time.time()
    summary = anonymize_corpus(original, anonymized, {"name": "mcadams", "seed": args.seed}, workers=2, progress=False)
    t_anon = time.time() - t0
    t0 = time.time()
    results = evaluate_anonymization(EvalConfig(original=str(original), anonymized=str(anonymized), out=str(out),
                                                attackers=tuple(args.attackers.split(",")), seed=args.seed,
                                                asr_run=args.asr_run))
    t_eval = time.time() - t0
    cpu = _cpu_seconds() - cpu0

    n_utts = summary.written + summary.skipped
    print(f"corpus: {args.speakers} speakers x {args.utterances} utterances = {n_utts} utterances "
          f"(generated in {t_gen:.0f} s, not counted)")
    for split, c in results["corpora"].items():
        print(f"  {split}: {c['speakers']} speakers, {c['enroll_utterances']} enrollment utterances, "
              f"{c['target']} target / {c['nontarget']} non-target trials ({c['trials_source']})")
    info = next(iter(results["asv"].values()))["original"]
    print(f"ASV: {args.attackers} x back-ends lda, cosine, trained from scratch on {info['train_utterances']} "
          f"utterances of {info['train_speakers']} speakers (original and McAdams-anonymized)")
    print()
    print(f"{'scenario':14s} {'EER all':>8s} {'EER F':>8s} {'EER M':>8s} {'linkab.':>8s}  strongest attacker "
          "(pooled dev+test, %)")
    for name, sc in results["privacy"].items():
        p = sc["pooled"]
        cells = [f"{100 * p[g]['eer']:8.2f}" if p.get(g) else f"{'n/a':>8s}" for g in ("all", "F", "M")]
        others = ", ".join(f"{a} {100 * e:.2f}" for a, e in sc["eer_by_attacker"].items())
        print(f"{name:14s} {' '.join(cells)} {p['all']['linkability']:8.3f}  {sc['attacker']}  [{others}]")
    util = results["utility"]
    print()
    rho = util["rho_f0"]["rho_f0"]
    print(f"utility: rho_F0 = {rho:.3f} ({util['rho_f0']['n_utterances']} utterances), "
          f"G_VD = {util['gvd']['gvd_db']:.2f} dB, ASR: "
          + (f"WER {100 * util['asr']['original']['wer']:.2f}% -> {100 * util['asr']['anonymized']['wer']:.2f}%"
             if "original" in util["asr"] else util["asr"]["reason"]))
    total = t_anon + t_eval
    print(f"seconds: anonymize {t_anon:.0f}, evaluate {t_eval:.0f} (ASV training+embedding "
          f"{results['seconds']['asv']:.0f}, scenarios {results['seconds']['privacy']:.1f}, utility "
          f"{results['seconds']['utility']:.0f}); total {total:.0f} s = {total / 60:.1f} min wall on {args.threads} threads, "
          f"{cpu:.0f} CPU-seconds (this process and its workers; the machine may be shared)")
    orig = results["privacy"]["original"]["pooled"]["all"]["eer"]
    ign = results["privacy"]["ignorant"]["pooled"]["all"]["eer"]
    semi = results["privacy"]["semi_informed"]["pooled"]["all"]["eer"]
    print()
    print(f"target total <= 10 min: {'met' if total <= 600 else 'MISSED'} ({total / 60:.1f} min)")
    print(f"target ASV on original EER <= 5%: {'met' if orig <= 0.05 else 'MISSED'} ({100 * orig:.2f}%)")
    print(f"target ignorant EER far above semi-informed: {'met' if ign >= semi + 0.10 else 'MISSED'} "
          f"({100 * ign:.2f}% vs {100 * semi:.2f}%)")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

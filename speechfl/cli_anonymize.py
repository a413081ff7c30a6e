"""``speechfl anonymize`` and ``speechfl evaluate-anonymization``.

::

    speechfl anonymize IN OUT --method mcadams [--seed=0] [--alpha_min=0.5 --alpha_max=0.9 --per=utterance]
    speechfl evaluate-anonymization --original DIR --anonymized DIR [--train-original DIR
        --train-anonymized DIR] --out DIR [--splits dev,test] [--attackers ecapa,xvector] [--asr-run RUN]

Anonymizer parameters are the registry's (``speechfl anonymize --list`` prints them); values are
read as YAML (``--per=speaker``, ``--alpha_min=0.7``). Unknown methods or parameters are errors
listing the valid ones.
"""

from __future__ import annotations

import json


def run_anonymize(args, extra):
    from speechfl.anonymization.anonymizers import ANONYMIZERS
    from speechfl.anonymization.apply import AnonymizationError, anonymize_corpus, parse_params, spec_of
    from speechfl.registry import RegistryError

    if args.list:
        for name in ANONYMIZERS.names():
            print(f"{name}\t{', '.join(ANONYMIZERS.parameters(name))}")
        return 0
    if not (args.in_dir and args.out_dir and args.method):
        raise SystemExit("speechfl anonymize: error: IN, OUT and --method are required (or --list)")
    try:
        spec = spec_of(args.method, parse_params(extra), seed=args.seed)
        summary = anonymize_corpus(args.in_dir, args.out_dir, spec, workers=args.workers,
                                   progress=not args.no_progress)
    except (AnonymizationError, RegistryError, ValueError) as error:
        raise SystemExit(f"speechfl anonymize: error: {error}") from None
    print(f"{summary.out_dir}\twritten {summary.written}\tskipped {summary.skipped}\tcopied {summary.copied}")
    return 0


def run_evaluate(args):
    from speechfl.anonymization.evaluate import EvalConfig, evaluate_anonymization
    from speechfl.registry import RegistryError

    try:
        params = json.loads(args.attacker_params) if args.attacker_params else {}
        cfg = EvalConfig(original=args.original, anonymized=args.anonymized, out=args.out,
                         train_original=args.train_original, train_anonymized=args.train_anonymized,
                         train_split=args.train_split, splits=tuple(s for s in args.splits.split(",") if s),
                         attackers=tuple(a for a in args.attackers.split(",") if a), attacker_params=params,
                         backends=tuple(b for b in args.backends.split(",") if b), lda_dim=args.lda_dim,
                         n_enroll=args.n_enroll, seed=args.seed, asr_run=args.asr_run,
                         asr_run_anonymized=args.asr_run_anonymized)
        results = evaluate_anonymization(cfg)
    except (RegistryError, ValueError, FileNotFoundError, json.JSONDecodeError) as error:
        raise SystemExit(f"speechfl evaluate-anonymization: error: {error}") from None
    for name, sc in results["privacy"].items():
        pooled = sc["pooled"]
        cells = [f"{g}={100 * pooled[g]['eer']:.2f}%" for g in ("all", "F", "M") if pooled.get(g)]
        print(f"{name:14s} EER " + " ".join(cells) + f"  ({sc['attacker']})")
    print(f"report: {args.out}/report.html  results: {args.out}/anonymization.json")
    return 0


def register(subparsers):
    p = subparsers.add_parser("anonymize", help="anonymize a corpus folder (same layout): speechfl anonymize IN OUT "
                                                "--method NAME [--param=value ...]")
    p.add_argument("in_dir", nargs="?", metavar="IN", help="LibriSpeech-layout folder or folder of Kaldi data dirs")
    p.add_argument("out_dir", nargs="?", metavar="OUT", help="output folder (same layout)")
    p.add_argument("--method", help="anonymizer name (see --list)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-utterance/per-speaker draws")
    p.add_argument("--workers", type=int, default=2, help="worker processes (at most 2)")
    p.add_argument("--list", action="store_true", help="list anonymizers and their parameters")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_anonymize, takes_extra=True)

    e = subparsers.add_parser("evaluate-anonymization", help="VoicePrivacy-protocol privacy and utility of an "
                                                             "anonymized corpus")
    e.add_argument("--original", required=True, help="original corpus folder")
    e.add_argument("--anonymized", required=True, help="anonymized corpus folder (same utterance ids)")
    e.add_argument("--out", required=True, help="output folder (JSON, report, cached features/embeddings)")
    e.add_argument("--train-original", default=None, help="ASV training corpus, original (default: --original)")
    e.add_argument("--train-anonymized", default=None, help="ASV training corpus, anonymized (default: --anonymized)")
    e.add_argument("--train-split", default="train", help="name of the training split in those folders")
    e.add_argument("--splits", default="dev,test", help="comma-separated evaluation splits")
    e.add_argument("--attackers", default="ecapa", help="comma-separated ASV families: ecapa, xvector")
    e.add_argument("--attacker-params", default=None, help='JSON, e.g. \'{"epochs": 20, "channels": 128}\'')
    e.add_argument("--backends", default="lda,cosine", help="comma-separated back-ends: lda, cosine")
    e.add_argument("--lda-dim", type=int, default=150, help="LDA dimension of the lda back-end")
    e.add_argument("--n-enroll", type=int, default=5, help="enrollment utterances per speaker (generated lists)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--asr-run", default=None, help="a finished `speechfl train` run folder (ASR on original data)")
    e.add_argument("--asr-run-anonymized", default=None,
                   help="a finished `speechfl train` run on the anonymized corpus (VPC's retrained ASR)")
    e.set_defaults(func=run_evaluate)

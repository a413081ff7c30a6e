"""``speechfl evaluate RUN_DIR``: privacy attackers + fairness metrics on a finished run."""

from __future__ import annotations

import json


def cmd_evaluate(args) -> None:
    from speechfl.experiment.evaluate import evaluate_run
    from speechfl.experiment.finished_run import RunFolderError

    try:
        res = evaluate_run(args.run_dir, attackers=args.attackers.split(",") if args.attackers else None,
                           baseline=args.baseline, max_per_speaker=args.max_per_speaker, seed=args.seed,
                           progress=not args.no_progress)
    except RunFolderError as exc:  # a run folder that cannot be evaluated: one line, naming the file
        raise SystemExit(f"speechfl evaluate: error: {exc}") from None
    p, f = res["privacy"], res["fairness"]
    print(json.dumps({"strongest": p["strongest"], "summary": {k: p[k] for k in (
        "representations", "fbank", "linkage", "source_inference", "membership")}, "gender_gap": f["gender"]},
        indent=2))
    skipped = {k: v for k, v in p["notes"].items() if v.startswith("skipped:")}
    for k, v in skipped.items():
        print(f"{k}: {v}")
    print(f"written: {args.run_dir}/results.json (privacy, fairness)")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="run privacy attackers and fairness metrics on a finished run")
    p.add_argument("run_dir")
    p.add_argument("--attackers", default=None, help="comma-separated speaker-attacker families "
                                                     "(linear,mlp,xvector,ecapa; default linear,mlp,xvector)")
    p.add_argument("--baseline", default=None, help="an unprotected run to compare with (VoicePrivacy scenarios)")
    p.add_argument("--max-per-speaker", type=int, default=20, help="utterances per speaker attacked")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

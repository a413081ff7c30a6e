"""``speechfl evaluate RUN_DIR``: privacy attackers + fairness metrics on a finished run."""

from __future__ import annotations

import json


def cmd_evaluate(args) -> None:
    from speechfl.experiment.evaluate import OPT_IN_THREATS, evaluate_run
    from speechfl.experiment.finished_run import RunFolderError

    threats = [t for t in (args.threats or "").split(",") if t]
    bad = [t for t in threats if t not in OPT_IN_THREATS]
    if bad:
        raise SystemExit(f"speechfl evaluate: error: unknown threat(s) {bad}; valid: {', '.join(OPT_IN_THREATS)}")
    try:
        res = evaluate_run(args.run_dir, attackers=args.attackers.split(",") if args.attackers else None,
                           baseline=args.baseline, max_per_speaker=args.max_per_speaker, seed=args.seed,
                           progress=not args.no_progress, threats=threats)
    except RunFolderError as exc:  # a run folder that cannot be evaluated: one line, naming the file
        raise SystemExit(f"speechfl evaluate: error: {exc}") from None
    p, f = res["privacy"], res["fairness"]
    print(json.dumps({"strongest": p["strongest"], "summary": {k: p[k] for k in (
        "representations", "fbank", "linkage", "source_inference", "membership")}, "gender_gap": f["gender"]},
        indent=2))
    skipped = {k: v for k, v in p["notes"].items() if v.startswith("skipped:")}
    for k, v in skipped.items():
        print(f"{k}: {v}")
    rec = p.get("reconstruction")
    if rec is not None:
        if "skipped" in rec:
            print(f"reconstruction: skipped: {rec['skipped']}")
        else:
            lab, lm = rec["labels"]["recorded"], rec["local_model"]["recorded"]
            fp = "n/a" if lm["footprint_eer"] is None else f"{lm['footprint_eer']:.3f}"
            print(f"reconstruction: character-set F1 {lab['f1']:.3f} (sign rule {lab['sign_f1']:.3f}, precision "
                  f"{lab['sign_precision']:.3f}), footprint EER {fp}, {rec['seconds']:.1f} s")
    print(f"written: {args.run_dir}/results.json (privacy, fairness)")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="run privacy attackers and fairness metrics on a finished run")
    p.add_argument("run_dir")
    p.add_argument("--attackers", default=None, help="comma-separated speaker-attacker families "
                                                     "(linear,mlp,xvector,ecapa; default linear,mlp,xvector)")
    p.add_argument("--baseline", default=None, help="an unprotected run to compare with (VoicePrivacy scenarios)")
    p.add_argument("--max-per-speaker", type=int, default=20, help="utterances per speaker attacked")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threats", default=None, help="comma-separated opt-in attacks: reconstruction (character sets "
                                                  "from the CTC head + footprints on recorded rounds; its cost is printed)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

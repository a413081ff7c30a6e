"""Test CER vs a freshly trained speaker-ID attacker on the encoder output, per privacy defense.

Usage::

    python benchmarks/bench_privacy_tradeoff.py
    python benchmarks/bench_privacy_tradeoff.py --only none,adversarial_multi

Defenses: none, one adversary, many adversaries, gender adversary, user-level DP at two noise
levels (with epsilon). Each run is evaluated by `speechfl evaluate` (attackers trained from
scratch afterwards; the strongest family is reported, chance beside it). Also prints seconds
per round with Opacus per-sample DP vs without. Target from the issue: many adversaries bring
the strongest fresh attacker to at most 2x chance with at most 15 % relative CER increase.

Other adversary strengths or the pooled reference, e.g.::

    python benchmarks/bench_privacy_tradeoff.py --only none --dp-cost-rounds 0 \
        --extra "--adversary={target: speaker, heads: [mlp, linear], weight: 0.1, schedule: {kind: dann}}"
    python benchmarks/bench_privacy_tradeoff.py --engine centralized --only none,adversarial_multi \
        --extra "--clients_per_round=1;--client={local_epochs: null, local_steps: 320, batch_size: 4, \
        optimizer: {name: adam, lr: 0.004}, max_grad_norm: 5.0}"
"""

import argparse
import tempfile
from pathlib import Path

from _runner import add_common_args, extra_overrides, run_cell

# Reversal strength is set so that ASR still learns in the benchmark's 8 rounds: the DANN schedule
# ramps lambda from 0 to 1, and the K heads of the multi-adversary share one unit of weight.
# User-level DP: with 8 of 32 clients per round, the noise on the averaged update has std
# noise_multiplier * clip / 8 per coordinate, so only small multipliers leave a usable model.
DEFENSES = {
    "none": [],
    "adversary": ["--adversary={target: speaker, heads: [mlp], weight: 0.5, schedule: {kind: dann}}"],
    "adversarial_multi": ["--adversary={target: speaker, heads: [mlp, linear, mlp_deep, attentive], weight: 0.25, "
                          "schedule: {kind: dann}, reinit_every: 80}"],
    "gender_adversary": ["--adversary={target: gender, heads: [mlp, linear], weight: 0.5, schedule: {kind: dann}}"],
    "dp_user_0.03": ["--dp_user={clip: 5.0, noise_multiplier: 0.03, delta: 0.001}"],
    "dp_user_0.1": ["--dp_user={clip: 5.0, noise_multiplier: 0.1, delta: 0.001}"],
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(DEFENSES))
    p.add_argument("--engine", default="inprocess", help="inprocess (one client per speaker) or centralized")
    p.add_argument("--dp-cost-rounds", type=int, default=1, help="rounds for the Opacus cost figure (0: skip)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_privacy_"))
    model = extra_overrides(args) + [f"--engine={args.engine}"]
    base_cer = None
    for name in (args.only.split(",") if args.only else DEFENSES):
        res = run_cell(args.corpus, work / name, args.rounds, [*model, *DEFENSES[name]],
                       evaluate={"attackers": ["linear", "mlp", "xvector"]})
        base_cer = res["test"]["cer"] if base_cer is None else base_cer
        s = res["privacy"]["representations"]["strongest"]
        eps = res.get("privacy_budget", {}).get("user_level_epsilon")
        print(f"{name:18s} CER {res['test']['cer']:6.2f}% ({100 * (res['test']['cer'] / base_cer - 1):+5.1f}%)  "
              f"strongest attacker {s['family']} top-1 {s['top1']:.3f} = {s['top1'] / s['chance']:.1f}x chance "
              f"(chance {s['chance']:.3f}), EER {s['eer']:.3f}"
              + (f", epsilon {eps:.2f}" if eps is not None else "") + f"  [{res['wall']:.0f} s]", flush=True)
    if args.dp_cost_rounds:
        # Opacus cannot take per-sample gradients of the Conformer's attention: the DP cost row uses the
        # conv + BiGRU encoder with Opacus' DPGRU (the setup refuses dp_sample with the Conformer)
        dp_model = [*model, "--encoder=conv_rnn", "--channels=16", "--proj=128", "--hidden=128", "--layers=1",
                    "--rnn_type=dpgru"]
        plain = run_cell(args.corpus, work / "cost_plain", args.dp_cost_rounds, dp_model)
        dp = run_cell(args.corpus, work / "cost_dp", args.dp_cost_rounds,
                      [*dp_model, "--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}"])
        a = plain["client_seconds_per_round"]
        b = dp["client_seconds_per_round"]
        print(f"seconds per round (client compute): no DP {a:.1f} s, Opacus per-sample DP {b:.1f} s ({b / a:.1f}x)")


if __name__ == "__main__":
    main()

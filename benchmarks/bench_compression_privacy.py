"""Compression x privacy: what a curious server reconstructs from compressed updates, and the full study.

Two parts:

``--part reconstruction`` (default; a few minutes on one core): a small synthetic
corpus (12 speakers x 12 utterances, 40 mel bands), the trade-off model
(``ASRModel`` 40 mels, 16 channels, proj/hidden 128, one BiGRU layer, 0.23M
parameters) pre-trained for ``--pretrain-steps`` Adam steps on every speaker's
utterances k.. (the global model), then per speaker k = ``--updates-per-speaker`` client
updates on held-out utterances 0..k-1: FedSGD (one SGD step on one utterance, the client's own
objective: SpeechBrain CTC, packed GRU, dropout on, clipping at 5) or ``--local-steps``
SGD steps. Every update goes through every compressor of :data:`COMPRESSORS` and
is attacked by :func:`speechfl.attackers.reconstruction.run_reconstruction`:
character-set recovery, feature inversion (only on ``--inversion-views``: it is
the expensive attack), local-model recovery and the footprint attack (indicator set:
3 utterances of the dev speakers). Speaker identification of reconstructions uses
an x-vector attacker trained on the reference utterances k.. of every speaker.

``--part study``: the full grid ``recipes/grids/compression_privacy.yaml``
(compressors x threats through ``speechfl sweep`` + ``speechfl evaluate``), then its
table. About 90 minutes on 2 cores; validated before anything runs.

Example::

    python benchmarks/bench_compression_privacy.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]

COMPRESSORS = {
    "fp32": None,
    "fp16": "fp16",
    "qsgd8": {"name": "qsgd", "levels": 127},
    "qsgd2": {"name": "qsgd", "levels": 1},
    "sign_ef": {"name": "ef", "inner": {"name": "sign"}},
    "topk10_ef": {"name": "ef", "inner": {"name": "topk", "fraction": 0.1}},
    "topk1_ef": {"name": "ef", "inner": {"name": "topk", "fraction": 0.01}},
    "randk10_shared": {"name": "randk", "fraction": 0.1, "unbiased": False},
    "powersgd4_ef": {"name": "ef", "inner": {"name": "powersgd", "rank": 4}},
}


def load_corpus(root: Path, n_mels: int):
    """Per speaker: list of (utt_id, fbank [T, n_mels], transcript), sorted; plus the split of each speaker."""
    from speechbrain.lobes.features import Fbank

    fbank = Fbank(n_mels=n_mels)
    texts = {}
    for tr in root.glob("*/*/*/*.trans.txt"):
        for line in tr.read_text().splitlines():
            uid, _, text = line.partition(" ")
            texts[uid] = text
    per_spk, split = {}, {}
    for path in sorted(root.glob("*/*/*/*.flac")):
        wav, _ = sf.read(str(path), dtype="float32")
        with torch.no_grad():
            feats = fbank(torch.from_numpy(wav).unsqueeze(0)).squeeze(0)
        spk = path.stem.split("-")[0]
        per_spk.setdefault(spk, []).append((path.stem, feats, texts[path.stem]))
        split[spk] = path.parts[-4]
    return per_spk, split


def pretrain(model, items, tokenizer, steps: int, seed: int) -> None:
    from speechfl.models.objective import ctc_objective

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.004)
    model.train()
    for _ in range(steps):
        batch = [items[int(i)] for i in torch.randint(len(items), (4,), generator=gen)]
        feats, lens, toks, tlens = pad_batch(batch, tokenizer)
        opt.zero_grad()
        ctc_objective(model(feats, lens), toks, tlens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()


def pad_batch(batch, tokenizer):
    feats = [f for _, f, _ in batch]
    toks = [torch.tensor(tokenizer.encode(t)) for _, _, t in batch]
    T, L = max(f.shape[0] for f in feats), max(len(t) for t in toks)
    x = torch.stack([torch.nn.functional.pad(f, (0, 0, 0, T - f.shape[0])) for f in feats])
    y = torch.stack([torch.nn.functional.pad(t, (0, L - len(t))) for t in toks])
    return (x, torch.tensor([f.shape[0] / T for f in feats]), y, torch.tensor([len(t) / L for t in toks]))


def client_update(model, layout, global_flat, batch, tokenizer, steps: int, lr: float, seed: int) -> torch.Tensor:
    """The client's update: ``steps`` SGD steps on ``batch`` with its training objective (dropout on, clip 5)."""
    from speechfl.federated.update import flatten_params, load_flat_params
    from speechfl.models.objective import ctc_objective

    torch.manual_seed(seed)
    load_flat_params(model, layout, global_flat)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    feats, lens, toks, tlens = pad_batch(batch, tokenizer)
    for _ in range(steps):
        opt.zero_grad()
        ctc_objective(model(feats, lens), toks, tlens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    delta = flatten_params(model, layout) - global_flat
    load_flat_params(model, layout, global_flat)
    return delta


def part_reconstruction(args) -> None:
    from data_prep.speakers import read_speakers_txt
    from data_prep.synthetic import generate_corpus
    from speechfl.attackers.reconstruction import (AttackedUpdate, MatchConfig, ReconstructionConfig,
                                                   ReconstructionInput, run_reconstruction)
    from speechfl.attackers.types import UtteranceSet
    from speechfl.data.tokenizer import CharTokenizer
    from speechfl.federated.update import ParamLayout, flatten_params
    from speechfl.models.asr import ASRModel

    t0 = time.perf_counter()
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="bench_cp_")) / "synthetic"
    generate_corpus(corpus, n_speakers=args.speakers, n_utterances=args.utterances, seed=0, progress=False)
    genders = {s: v.gender for s, v in read_speakers_txt(corpus / "SPEAKERS.TXT").items()}
    per_spk, split = load_corpus(corpus, 40)
    tok = CharTokenizer()
    torch.manual_seed(args.seed)
    model = ASRModel(n_mels=40, vocab_size=len(tok), channels=16, proj=128, hidden=128, layers=1, dropout=0.05)
    layout = ParamLayout.from_module(model)
    attacked = sorted(s for s in per_spk if split[s] != "dev")
    k = args.updates_per_speaker
    if not 2 <= k < args.utterances - 1:
        raise SystemExit(f"--updates-per-speaker must be in [2, {args.utterances - 2}] (utterances left for the "
                         "reference and pre-training)")
    pool = [u for s in attacked for u in per_spk[s][k:]]
    pretrain(model, pool, tok, args.pretrain_steps, args.seed)
    global_flat = flatten_params(model, layout)
    print(f"corpus {corpus} ({len(per_spk)} speakers), global model pre-trained {args.pretrain_steps} steps; "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    updates = []
    for rep in range(k):  # k updates per speaker: footprint targets
        for s in attacked:
            uid, feats, text = per_spk[s][rep]
            delta = client_update(model, layout, global_flat, [(uid, feats, text)], tok, args.local_steps,
                                  args.client_lr, seed=args.seed + rep)
            updates.append(AttackedUpdate(client_id=s, speaker=s, delta=delta, tokens=[tok.encode(text)],
                                          features=[feats]))
    # invert the first update of the first --inversions speakers only
    for i, u in enumerate(updates):
        if i >= args.inversions:
            u.features = None
        elif args.inversion_start == "tts":
            u.prior = [tts_prior(tok.decode(u.tokens[0]), f.shape[0], 40) for f in u.features]
    ref = [(s, u) for s in attacked for u in per_spk[s][k:]]
    reference = UtteranceSet(frames=[u[1] for _, u in ref], spk_ids=[s for s, _ in ref],
                             genders=[genders[s] for s, _ in ref], utt_ids=[u[0] for _, u in ref])
    indicator = [u[1] for s in sorted(per_spk) if split[s] == "dev" for u in per_spk[s][:3]]
    inp = ReconstructionInput(model=model, layout=layout, global_flat=global_flat, updates=updates,
                              reference=reference, indicator=indicator, tokenizer=tok)
    match = MatchConfig(iterations=args.iterations, lr=args.inversion_lr, tv_weight=args.tv,
                        local_steps=args.local_steps, local_lr=args.client_lr, layerwise=args.layerwise)
    views = [v for v in args.views.split(",") if v]
    inv_views = {v for v in args.inversion_views.split(",") if v}
    unknown = sorted((set(views) | inv_views) - set(COMPRESSORS))
    if unknown:
        raise SystemExit(f"unknown compressors {unknown}; valid: {', '.join(COMPRESSORS)}")
    print(f"{len(updates)} updates ({len(attacked)} speakers x {k}), {args.local_steps} local SGD step(s) of lr "
          f"{args.client_lr}; {args.inversions} inverted per view, {args.iterations} iterations\n")
    print(f"{'view':15s} {'bytes':>8s} | {'chars P':>7s} {'R':>5s} {'F1':>5s} {'exact':>5s} {'signF1':>6s} | "
          f"{'lm relerr':>9s} {'cos':>5s} {'fp EER':>6s} | {'feat cos':>8s} {'rand':>5s} {'MSE':>5s} "
          f"{'CER':>6s} {'CER0':>6s} {'spk@1':>5s} {'@5':>5s} {'orig@1':>6s} {'start@1':>7s} {'chance':>6s} {'s':>5s}")
    if args.path_check:
        path_check(inp, args)
    for name in views:
        threats = ("labels", "local_model", "inversion") if name in inv_views else ("labels", "local_model")
        cfg = ReconstructionConfig(compressors={name: COMPRESSORS[name]}, threats=threats, match=match,
                                   max_inversions=args.inversions, seed=args.seed)
        rep = run_reconstruction(inp, cfg)
        lab, lm = rep.labels[name], rep.local_model[name]
        line = (f"{name:15s} {rep.notes[f'bytes/{name}'].split()[0]:>8s} | {lab.precision:7.3f} {lab.recall:5.3f} "
                f"{lab.f1:5.3f} {lab.exact:5.2f} {lab.sign_f1:6.3f} | {lm.relative_error:9.3f} {lm.cosine:5.3f} "
                f"{_f(lm.footprint_eer)} |")
        inv = rep.inversion.get(name)
        if inv is not None:
            line += (f" {inv.feature_cosine:8.3f} {inv.feature_cosine_random:5.2f} {inv.feature_mse:5.2f} "
                     f"{_f(inv.cer)} {_f(inv.cer_original)} {_f(inv.speaker_top1, 5)} {_f(inv.speaker_top5, 5)} "
                     f"{_f(inv.speaker_top1_original)} {_f(inv.speaker_top1_start, 7)} {_f(inv.speaker_chance)} "
                     f"{inv.seconds:5.0f}")
        print(line, flush=True)
    print("\nchars: character set of the update's transcript from the CTC head (sign + ratio rules; signF1: sign "
          "rule alone); lm: local model w + D(payload) vs the true one, fp EER: footprint attack's speaker EER; "
          "feat cos: normalised Fbank cosine of the inversion (rand: its random start), CER/CER0: global model "
          "decoding the inversion / the true features, spk@1/@5: strongest speaker attacker on the inversion, "
          "orig@1: on the true features, start@1: on the starting point (noise or the attacker's TTS prior)")
    print(f"footprint trials: {lm.n_target_trials} target / {lm.n_nontarget_trials} non-target; "
          f"total {time.perf_counter() - t0:.0f} s")


ALPHAS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def path_check(inp, args) -> None:
    """Print the matching objective (fp32 view) on the straight path from the attacker's start (TTS prior and
    noise) to the true features of each inverted update: is the truth singled out by the update?"""
    from speechfl.attackers.reconstruction.inversion import mismatch_along

    print("identifiability: 1 - cos(simulated, observed fp32 update) at x = (1 - a) start + a truth")
    print(f"{'update':8s} {'start':6s} {'objective':9s} " + " ".join(f"a={a:<5}" for a in ALPHAS))
    for k, u in enumerate(inp.updates):
        if u.features is None:
            continue
        frames = [f.shape[0] for f in u.features]
        gen = torch.Generator().manual_seed(k)
        starts = {"tts": [tts_prior(inp.tokenizer.decode(t), f.shape[0], f.shape[1]) for t, f in
                          zip(u.tokens, u.features)],
                  "noise": [torch.randn(f.shape, generator=gen) for f in u.features]}
        for sname, st in starts.items():
            for lw in (False, True):
                m = mismatch_along(inp.model, inp.layout, inp.global_flat, u.delta, frames, u.tokens, st, u.features,
                                   ALPHAS, layerwise=lw)
                print(f"{k:<8d} {sname:6s} {'layerwise' if lw else 'global':9s} " + " ".join(f"{v:7.4f}" for v in m),
                      flush=True)
    print()


PUBLIC_VOICE = ("en-us", "david")  # an espeak-ng variant the synthetic corpus never uses


def tts_prior(text: str, frames: int, n_mels: int) -> torch.Tensor:
    """The attacker's prior for an utterance whose transcript it knows: its own text-to-speech of the text in a
    public voice (:data:`PUBLIC_VOICE`, no corpus speaker's), as Fbank stretched linearly to ``frames`` frames."""
    from speechbrain.lobes.features import Fbank

    from data_prep.espeak import EspeakEngine, VoiceSpec
    from data_prep.synthetic import to_sample_rate

    with EspeakEngine() as engine:
        audio = to_sample_rate(engine.synthesize(text.lower(), VoiceSpec(*PUBLIC_VOICE), seed=0), engine.sample_rate)
    with torch.no_grad():
        feats = Fbank(n_mels=n_mels)(torch.from_numpy(audio).float().unsqueeze(0))  # [1, T', F]
        return torch.nn.functional.interpolate(feats.transpose(1, 2), size=frames, mode="linear",
                                               align_corners=True).transpose(1, 2)[0]


def _f(v, w: int = 6) -> str:
    return f"{'n/a':>{w}s}" if v is None else f"{v:{w}.3f}"


GRID = ROOT / "recipes" / "grids" / "compression_privacy.yaml"


def validate_cells(grid_path=GRID):
    """Load the grid and build every cell's typed configuration and components; raise on the first bad cell.

    ``load_grid`` checks the keys of every override; this also validates the values (the experiment
    configuration and the compressor / robust pipeline / server optimizer they name, and their composition)
    and the ``evaluate`` arguments, so a 90-minute study cannot fail at cell 30 on a typo.
    """
    from speechfl.config import ExperimentConfig, build_components
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.sweep import GridError, load_grid

    grid = load_grid(grid_path)
    if grid.evaluate:
        import inspect

        from speechfl.experiment.evaluate import evaluate_run

        params = inspect.signature(evaluate_run).parameters
        bad = sorted(k for k in grid.evaluate if k not in params or k in ("run_dir", "progress"))
        if bad:
            raise GridError(f"{grid_path}: unknown evaluate argument(s) {bad}")
    for cell in grid.cells:
        try:
            build_components(ExperimentConfig.from_hparams(load_hparams(grid.base, list(cell.overrides))))
        except ValueError as exc:
            raise GridError(f"{grid_path}: cell {cell.name}: {exc}") from None
    return grid


# threat column of the sweep table (lower = better for the defender) -> the attack-axis value of its cells
STUDY_THREATS = {
    "attacker_top1": "none", "linkage_acc": "none", "source_inf_acc": "none", "membership_auc": "none",
    "recon_chars_f1": "none", "wer_under_attack": ("sign_flip", "ipm"), "backdoor_success": "backdoor",
}


def best_tradeoff(rows, threat: str, attack: str, max_rel_cer: float = 0.10):
    """The compressor with the lowest ``threat`` among the cells of ``attack`` whose test CER is within
    ``max_rel_cer`` of fp32's under the same attack (ties: fewer uplink MB).

    Returns ``(compressor, threat value, threat / fp32 threat or None, CER, uplink MB)``, or a string saying
    why no answer exists (fp32 missing, no numeric values, no cell within the CER budget).
    """
    cells = {r.axes.get("compression"): r for r in rows if r.axes.get("attack") == attack}

    def num(row, key):
        v = row.values.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    ref = cells.get("fp32")
    if ref is None or num(ref, "test_cer") is None:
        return f"no fp32 cell with a test CER under attack {attack!r}"
    budget = (1.0 + max_rel_cer) * num(ref, "test_cer")
    ok = [(num(r, threat), num(r, "uplink_mb") or 0.0, c, r) for c, r in cells.items()
          if num(r, threat) is not None and num(r, "test_cer") is not None and num(r, "test_cer") <= budget]
    if not ok:
        return f"no {attack!r} cell has {threat} and a CER within {100 * max_rel_cer:.0f} % of fp32"
    value, mb, comp, row = min(ok, key=lambda t: (t[0], t[1]))
    base = num(ref, threat)
    return comp, value, (value / base if base else None), num(row, "test_cer"), mb


# metrics of the seed table (lower = better for the defender, except CER which is the cost)
SEED_METRICS = ("test_cer", "recon_chars_f1", "linkage_acc", "source_inf_acc", "attacker_top1", "membership_auc")


def _num(row, key):
    v = row.values.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def mean_ci(values, level: float = 0.95):
    """``(mean, half-width)`` of the Student-t interval over the values (seeds); half-width None below 2."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return mean, float(t.ppf(0.5 + level / 2, n - 1)) * sd / n ** 0.5


def seed_table(rows, metrics=SEED_METRICS) -> str:
    """Markdown: for every (compression, attack) run under several seeds, each metric's mean +- 95 % t-interval
    over the seeds, and its ratio to fp32 under the same attack, paired by seed (mean +- interval of the per-seed
    ratios). Metrics that do not apply to a cell's attack (privacy threats are measured on clean cells) are left
    out of it."""
    groups = {}
    for r in rows:
        if "seed" in r.axes:
            groups.setdefault((r.axes.get("compression"), r.axes.get("attack")), {})[r.axes["seed"]] = r
    repeated = {k: v for k, v in groups.items() if len(v) >= 2}
    if not repeated:
        return "(no cell was run with more than one seed)"
    lines = ["| compression | attack | seeds | metric | mean +- 95 % CI | / fp32 (paired) |", "|---|---|---|---|---|---|"]
    for (comp, attack), by_seed in sorted(repeated.items(), key=lambda kv: (kv[0][1] or "", kv[0][0] or "")):
        ref = groups.get(("fp32", attack), {})
        for m in metrics:
            vals = {s: _num(r, m) for s, r in by_seed.items() if _num(r, m) is not None}
            if len(vals) < 2:
                continue
            mean, hw = mean_ci(list(vals.values()))
            ratios = [vals[s] / _num(ref[s], m) for s in vals if s in ref and _num(ref[s], m)]
            if comp == "fp32" or len(ratios) < 2:
                rel = "—"
            else:
                rm, rh = mean_ci(ratios)
                rel = f"{rm:.2f} +- {rh:.2f} ({len(ratios)} seeds)"
            lines.append(f"| {comp} | {attack} | {','.join(sorted(vals))} | {m} | {mean:.3f} +- {hw:.3f} | {rel} |")
    return "\n".join(lines)


def pareto_report(rows) -> str:
    """One line per threat: the best compressor within +10 % CER of fp32 (:func:`best_tradeoff`), on the base
    seed's cells (repeats under other seeds are in :func:`seed_table`)."""
    seeds = [r.axes["seed"] for r in rows if "seed" in r.axes and not r.cell.rsplit("__", 1)[-1].startswith("seed-")]
    if seeds:
        rows = [r for r in rows if r.axes.get("seed") == seeds[0]]
    lines = []
    for threat, attacks in STUDY_THREATS.items():
        for attack in (attacks if isinstance(attacks, tuple) else (attacks,)):
            ans = best_tradeoff(rows, threat, attack)
            if isinstance(ans, str):
                lines.append(f"{threat:18s} {attack:10s} n/a: {ans}")
            else:
                comp, value, rel, cer, mb = ans
                rel_s = "n/a" if rel is None else f"{rel:.2f}x fp32"
                lines.append(f"{threat:18s} {attack:10s} {comp:15s} {value:.3f} ({rel_s}), CER {cer:.2f} %, "
                             f"{mb:.2f} MB uplink")
    return "\n".join(lines)


def part_study(args) -> None:
    from speechfl.experiment.sweep import run_sweep

    grid = validate_cells(GRID)
    grid_path = GRID
    print(f"{len(grid.cells)} cells, all valid: {', '.join(c.name for c in grid.cells)}", flush=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_cp_study_"))
    from speechfl.experiment.sweep import load_table
    from speechfl.io import read_json

    t0 = time.perf_counter()
    run_sweep(grid_path, out, progress=True, only=args.cells.split(",") if args.cells else None, jobs=args.jobs,
              threads=args.threads)
    print(f"sweep: {(time.perf_counter() - t0) / 60:.1f} min with --jobs {args.jobs} x --threads {args.threads}",
          flush=True)
    print((out / "table.md").read_text())
    rows = load_table(out).rows
    for row in rows:  # the opt-in reconstruction threat is not a sweep-table column: read it here
        res = out / "cells" / row.cell / "results.json"
        rec = (read_json(res).get("privacy") or {}).get("reconstruction") if res.is_file() else None
        f1 = ((rec or {}).get("labels") or {}).get("recorded", {}).get("f1")
        row.values["recon_chars_f1"] = f1 if f1 is not None else "n/a"
    print("\nbest trade-off per threat (lowest attack success within +10 % test CER of fp32):")
    print(pareto_report(rows))
    print("\nover seeds (the cells that decide the answer; 95 % Student-t intervals):")
    print(seed_table(rows))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("reconstruction", "study"), default="reconstruction")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--corpus", type=Path, default=None, help="synthetic corpus folder (generated if absent)")
    p.add_argument("--out", type=Path, default=None, help="study: sweep output folder")
    p.add_argument("--jobs", type=int, default=2, help="study: cells run at a time, one process each (--threads "
                   "torch threads per cell)")
    p.add_argument("--cells", default=None, help="study: only these cells (names or axis=value filters, e.g. "
                   "attack=none); rerun with the same --out to add the others")
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--utterances", type=int, default=12)
    p.add_argument("--seed", type=int, default=0, help="model init, pre-training, clients, compression, attacks "
                   "(the corpus is always seed 0)")
    p.add_argument("--pretrain-steps", type=int, default=150)
    p.add_argument("--updates-per-speaker", type=int, default=2, help="on utterances 0..k-1 (footprint targets)")
    p.add_argument("--local-steps", type=int, default=1)
    p.add_argument("--client-lr", type=float, default=0.1)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--tv", type=float, default=1e-2)
    p.add_argument("--inversions", type=int, default=2, help="updates inverted per view")
    p.add_argument("--inversion-lr", type=float, default=0.1, help="Adam learning rate on the features")
    p.add_argument("--layerwise", action="store_true", help="match per parameter tensor (mean of 1 - cos)")
    p.add_argument("--path-check", action="store_true", help="print the matching objective on the path from the "
                   "start (TTS prior, noise) to the truth for the inverted updates (identifiability)")
    p.add_argument("--inversion-start", choices=("noise", "tts"), default="noise",
                   help="noise, or the attacker's own TTS of the known transcript in a public voice")
    p.add_argument("--views", default=",".join(COMPRESSORS))
    p.add_argument("--inversion-views", default="fp32,sign_ef,topk1_ef")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    (part_study if args.part == "study" else part_reconstruction)(args)


if __name__ == "__main__":
    main()

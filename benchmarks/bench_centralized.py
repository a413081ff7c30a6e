"""Held-out-speaker CER/WER of the centralized CTC recipe after 1, 2 and 5 minutes of CPU training.

Usage::

    python benchmarks/bench_centralized.py                       # 160 x 40 corpus, budgets 60,120,300 s
    python benchmarks/bench_centralized.py --budgets 60 --threads 1 --encoder=conv_rnn

One run of ``recipes/LibriSpeech/ASR/CTC/train.py hparams/synthetic.yaml`` is trained up to each
budget in turn (resumed from its latest checkpoint, tested with its best one; ``--separate``: a
fresh run per budget), with ``--max_train_seconds`` (checked between epochs, so a run may overshoot by part of an
epoch; the real training seconds are printed). On a shared machine pass ``--budget_clock=cpu``
(the budget counts this process's CPU seconds) and ``--epoch_utterances=N`` (short epochs, so
the budget is checked often). Feature extraction is done once beforehand and
not counted. The test split holds speakers never seen in training; the per-speaker spread is
printed. Unknown ``--key=value`` arguments go to the recipe. ``--json`` writes the figures
(with machine, threads and date) for ``benchmarks/results/``. Target from issue 14: CER <= 8%
within 5 minutes at 2 threads on a quiet machine.
"""

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "LibriSpeech" / "ASR" / "CTC"


def run_budget(seconds: float, corpus: Path, speakers: int, utterances: int, out: Path, extra) -> dict:
    spec = importlib.util.spec_from_file_location("ctc_train", RECIPE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main([str(RECIPE / "hparams" / "synthetic.yaml"), f"--data_folder={corpus}",
              f"--synthetic={{speakers: {speakers}, utterances: {utterances}, seed: 0}}",
              f"--output_folder={out}", f"--feature_cache={corpus.parent / 'feature_cache'}",
              f"--max_train_seconds={seconds}", "--number_of_epochs=1000", "--noprogressbar", *extra])
    return json.loads((out / "results.json").read_text())


def warm_feature_cache(corpus: Path, speakers: int, utterances: int, n_mels: int) -> None:
    """Extract every utterance's features once, so no budget pays for it (the cache is on disk)."""
    from speechfl.data.dataset import make_dataset
    from speechfl.experiment.corpus import prepare_corpus

    hp = {"data_folder": str(corpus), "save_folder": str(corpus.parent / "manifests_bench"),
          "synthetic": {"speakers": speakers, "utterances": utterances, "seed": 0}, "n_mels": n_mels,
          "train_splits": ["train"], "valid_split": "dev", "test_split": "test",
          "feature_cache": str(corpus.parent / "feature_cache")}
    c = prepare_corpus(hp, progress=False)
    for csv in c.manifests.values():
        ds = make_dataset(csv, c.tokenizer, c.cache)
        for i in range(len(ds)):
            ds[i]


def speaker_spread(test: dict) -> dict:
    cers = sorted(v["cer"] for v in test["by_speaker"].values())
    return {"speakers": len(cers), "min": cers[0], "median": cers[len(cers) // 2], "max": cers[-1]}


def main(argv=None):
    from _runner import machine_info

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budgets", default="60,120,300", help="comma-separated training budgets in seconds")
    p.add_argument("--speakers", type=int, default=160)
    p.add_argument("--utterances", type=int, default=40)
    p.add_argument("--threads", type=int, default=2, help="torch threads (issue target: 2 on a quiet machine)")
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic_160x40")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--separate", action="store_true", help="one fresh run per budget (default: one run, "
                   "resumed from its latest checkpoint up to each budget, tested with its best checkpoint)")
    args, extra = p.parse_known_args(argv)  # unknown --key=value go to the recipe (e.g. --lr=0.003)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_centralized_"))
    print(f"corpus {args.corpus} ({args.speakers} speakers x {args.utterances} utterances; test speakers unseen), "
          f"{args.threads} thread(s), recipe overrides {extra}")
    from speechfl.experiment.hparams import load_hparams

    n_mels = int(load_hparams(RECIPE / "hparams" / "synthetic.yaml", [a for a in extra if a.startswith("--")])["n_mels"])
    warm_feature_cache(args.corpus, args.speakers, args.utterances, n_mels)
    rows, done = [], 0.0
    for b in [float(x) for x in args.budgets.split(",")]:
        cpu0 = time.process_time()
        if args.separate:
            res = run_budget(b, args.corpus, args.speakers, args.utterances, work / f"b{int(b)}", extra)
        else:  # continue the previous budget's run (SpeechBrain resumes from its latest checkpoint)
            res = run_budget(b - done, args.corpus, args.speakers, args.utterances, work / "run", extra)
            done = b
        cpu = time.process_time() - cpu0
        t = res["test"]
        spread = speaker_spread(t)
        g = t["by_group"]["gender"]
        row = {"budget_s": b, "train_seconds": res["train_seconds"], "run_cpu_seconds": cpu, "epochs": len(res["epochs"]),
               "test_cer": t["cer"], "test_wer": t["wer"], "cer_F": g.get("F", {}).get("cer"),
               "cer_M": g.get("M", {}).get("cer"), "per_speaker_cer": spread, "n_params": res["model"]["n_params"]}
        rows.append(row)
        print(f"budget {b:5.0f} s: trained {res['train_seconds']:6.1f} s wall, run {cpu:6.1f} CPU s incl. test "
              f"({len(res['epochs'])} epochs), "
              f"test CER {t['cer']:5.2f}%  WER {t['wer']:5.2f}%  per-speaker CER {spread['min']:.1f}-"
              f"{spread['max']:.1f}% (median {spread['median']:.1f}, {spread['speakers']} speakers), "
              f"{res['model']['n_params'] / 1e6:.2f}M params", flush=True)
    if args.json:
        payload = {"benchmark": "bench_centralized", **machine_info(args.threads), "corpus":
                   {"speakers": args.speakers, "utterances": args.utterances}, "overrides": extra, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()

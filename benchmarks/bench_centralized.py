"""Held-out-speaker CER/WER of the centralized CTC recipe after 1, 2 and 5 minutes of CPU training.

Usage::

    python benchmarks/bench_centralized.py                       # default corpus, budgets 60,120,300 s
    python benchmarks/bench_centralized.py --budgets 60 --utterances 50

Each budget is a separate run of ``recipes/LibriSpeech/ASR/CTC/train.py hparams/synthetic.yaml``
with ``--max_train_seconds`` (checked between epochs, so a run may overshoot by part of an
epoch; the real training seconds are printed). The test split holds speakers never seen in
training. Target from the issue: CER <= 10% within 5 minutes on 2 cores.
"""

import argparse
import importlib.util
import json
import tempfile
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


def warm_feature_cache(corpus: Path, speakers: int, utterances: int) -> None:
    """Extract every utterance's features once, so no budget pays for it (the cache is on disk)."""
    from speechfl.data.dataset import make_dataset
    from speechfl.experiment.corpus import prepare_corpus

    hp = {"data_folder": str(corpus), "save_folder": str(corpus.parent / "manifests_bench"),
          "synthetic": {"speakers": speakers, "utterances": utterances, "seed": 0},
          "train_splits": ["train"], "valid_split": "dev", "test_split": "test",
          "feature_cache": str(corpus.parent / "feature_cache")}
    c = prepare_corpus(hp, progress=False)
    for csv in c.manifests.values():
        ds = make_dataset(csv, c.tokenizer, c.cache)
        for i in range(len(ds)):
            ds[i]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budgets", default="60,120,300", help="comma-separated training budgets in seconds")
    p.add_argument("--speakers", type=int, default=48)
    p.add_argument("--utterances", type=int, default=50)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    args, extra = p.parse_known_args(argv)  # unknown --key=value go to the recipe (e.g. --lr=0.003)
    args.extra = extra
    work = Path(tempfile.mkdtemp(prefix="bench_centralized_"))
    print(f"corpus {args.corpus} ({args.speakers} speakers x {args.utterances} utterances; test speakers unseen)")
    warm_feature_cache(args.corpus, args.speakers, args.utterances)
    for b in [float(x) for x in args.budgets.split(",")]:
        res = run_budget(b, args.corpus, args.speakers, args.utterances, work / f"b{int(b)}", args.extra)
        t = res["test"]
        print(f"budget {b:5.0f} s: trained {res['train_seconds']:6.1f} s ({len(res['epochs'])} epochs), "
              f"test CER {t['cer']:5.2f}%  WER {t['wer']:5.2f}%  "
              f"(F CER {t['by_group']['gender'].get('F', {}).get('cer', float('nan')):.2f}, "
              f"M CER {t['by_group']['gender'].get('M', {}).get('cer', float('nan')):.2f}), "
              f"{res['model']['n_params'] / 1e6:.2f}M params", flush=True)


if __name__ == "__main__":
    main()

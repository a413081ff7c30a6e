#!/usr/bin/env python3
"""Federated CTC ASR, one simulated client per speaker.

Run::

    python train.py hparams/fedavg.yaml --data_folder=/path/to/LibriSpeech --rounds=20
    python train.py hparams/synthetic_fedavg.yaml --rounds=3       # embedded corpus, generated if absent
    python train.py hparams/fedavg.yaml --data_folder=... --engine=centralized   # centralized reference

Every hparams file accepts --data_folder, --output_folder, --rounds and --device
and writes <output_folder>/results.json. The model, data pipeline and loss are
those of the centralized recipe (recipes/LibriSpeech/ASR/CTC); the round loop,
compression, robust aggregation and privacy defenses live in ``speechfl``.
"""

import logging
import sys

from speechfl.experiment.hparams import load_hparams, split_argv
from speechfl.experiment.run import run_federated


def main(argv):
    hparams_file, overrides = split_argv(argv)
    hparams = load_hparams(hparams_file, overrides)
    results = run_federated(hparams, hparams_file, overrides)
    t = results["test"]
    print(f"test WER {t['wer']:.2f}%  CER {t['cer']:.2f}%  uplink {results['communication']['bytes_up_total'] / 1e6:.2f} MB"
          f"  (results: {hparams['output_folder']}/results.json)")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(sys.argv[1:])

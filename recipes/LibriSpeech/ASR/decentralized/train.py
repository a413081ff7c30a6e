#!/usr/bin/env python3
"""Decentralized CTC ASR: one speaker-node per speaker, gossiping over a graph (no server).

Run::

    python train.py hparams/dpsgd.yaml --data_folder=/path/to/LibriSpeech --rounds=20
    python train.py hparams/choco_topk.yaml --data_folder=... --rounds=20
    python train.py hparams/clippedgossip.yaml --data_folder=... --rounds=20
    python train.py hparams/synthetic_gossip.yaml --rounds=3                 # embedded corpus, generated if absent
    python train.py hparams/dpsgd.yaml --data_folder=... --engine=gossip-dist   # torchrun ranks on this machine

Every hparams file writes <output_folder>/results.json (the test section is the honest nodes'
average model; its ``decentralized`` section has the topology, spectral gap, consensus distance
and bytes per node per round, and each tested node's CER). The model, data pipeline, loss and client
step are those of the federated recipe (recipes/LibriSpeech/ASR/federated); the graph, mixing and
transports live in ``speechfl.decentralized`` (docs/decentralized.md).
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
    last = results["rounds"][-1] if results["rounds"] else {}
    print(f"test WER {t['wer']:.2f}%  CER {t['cer']:.2f}% (honest nodes' average)  consensus distance "
          f"{last.get('consensus_distance', float('nan')):.3g}  bytes/node/round {last.get('bytes_per_node', 0):.3g}"
          f"  (results: {hparams['output_folder']}/results.json)")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(sys.argv[1:])

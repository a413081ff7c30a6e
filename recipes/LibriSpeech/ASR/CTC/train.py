#!/usr/bin/env python3
"""Centralized CTC recipe: conv + BiGRU encoder, character CTC, greedy decoding.

Run::

    python train.py hparams/train.yaml --data_folder=/path/to/LibriSpeech --number_of_epochs=2
    python train.py hparams/synthetic.yaml          # generates the embedded corpus if absent

Writes ``<output_folder>/results.json`` (schema in the README) and what ``speechfl evaluate``
needs: ``model.pt`` (best checkpoint), ``initial_model.pt`` (the parameters training started
from) and ``test_utterances.json`` (per-utterance test errors), all tensors-only / JSON.
"""

import logging
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.decoders import ctc_greedy_decode
from speechbrain.utils.metric_stats import ErrorRateStats

from speechfl.config.output import check_output_writable, resolved_output_folder
from speechfl.data.dataset import make_dataset, make_loader
from speechfl.experiment.corpus import prepare_corpus
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.results import capture_config, centralized_results
from speechfl.io import atomic_torch_save, atomic_write_json
from speechfl.metrics.asr import records_to_dicts, summarize, transcribe
from speechfl.models.objective import ctc_objective

logger = logging.getLogger(__name__)


class CTCBrain(sb.Brain):
    """Brain for CTC ASR: only the four hooks, the loop is SpeechBrain's ``fit``."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        feats, lens = batch.feats
        if stage == sb.Stage.TRAIN and self.hparams.augment is not None:
            feats = self.hparams.augment(feats)
        return self.modules.model(feats, lens)

    def compute_objectives(self, out, batch, stage):
        tokens, token_lens = batch.tokens
        loss = ctc_objective(out, tokens, token_lens, blank=self.hparams.tokenizer.blank_id)
        if stage != sb.Stage.TRAIN:
            seqs = ctc_greedy_decode(out.log_probs, out.lengths, blank_id=self.hparams.tokenizer.blank_id)
            hyps = [self.hparams.tokenizer.decode(s).split() for s in seqs]
            refs = [w.split() for w in batch.wrd]
            self.wer_metric.append(batch.id, hyps, refs)
            self.cer_metric.append(batch.id, hyps, refs)
        return loss

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        # warm-up schedule (hparams ``lr_annealing``, e.g. Noam): stepped per batch, as SpeechBrain recipes do
        if should_step and getattr(self.hparams, "lr_annealing", None) is not None:
            self.hparams.lr_annealing(self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        if stage != sb.Stage.TRAIN:
            self.wer_metric = ErrorRateStats()
            self.cer_metric = ErrorRateStats(split_tokens=True)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats["WER"] = self.wer_metric.summarize("error_rate")
        stats["CER"] = self.cer_metric.summarize("error_rate")
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats({"epoch": epoch}, train_stats=self.train_stats, valid_stats=stats)
            self.history.append({"epoch": epoch, "train_loss": self.train_stats["loss"],
                                 "valid_loss": stage_loss, "valid_wer": stats["WER"], "valid_cer": stats["CER"]})
            self.checkpointer.save_and_keep_only(meta={"CER": stats["CER"]}, min_keys=["CER"])


def dataio_prepare(hparams):
    """Manifests -> DynamicItemDatasets with cached Fbank ``feats`` and CTC ``tokens``."""
    corpus = prepare_corpus(hparams)
    hparams["tokenizer"] = corpus.tokenizer
    datasets = {role: make_dataset(csv, corpus.tokenizer, corpus.cache) for role, csv in corpus.manifests.items()}
    # Sorting by duration makes padded batches tight (SpeechBrain recipes do the same).
    datasets["train"] = datasets["train"].filtered_sorted(sort_key="duration")
    return corpus, datasets


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    config = capture_config(hparams_file, overrides)  # the hparams text as it is run
    # before loading (its Checkpointer creates save_folder), the corpus, or training
    check_output_writable(resolved_output_folder(hparams_file, overrides))
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides)
    torch.manual_seed(hparams["seed"])
    start = time.time()
    corpus, datasets = dataio_prepare(hparams)
    out = Path(hparams["output_folder"])
    initial = {k: v.detach().cpu().clone() for k, v in hparams["model"].state_dict().items()}

    brain = CTCBrain(modules={"model": hparams["model"]}, opt_class=hparams["opt_class"], hparams=hparams,
                     run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.history = []
    loader_opts = {"batch_size": hparams["batch_size"], "shuffle": True,
                   "collate_fn": sb.dataio.batch.PaddedBatch}
    if hparams.get("epoch_utterances"):  # shorter "epochs" (a fresh random subset each): finer time budgets
        from speechbrain.dataio.sampler import ReproducibleRandomSampler

        loader_opts.pop("shuffle")
        brain.train_sampler = loader_opts["sampler"] = ReproducibleRandomSampler(
            datasets["train"], seed=hparams["seed"], num_samples=int(hparams["epoch_utterances"]))
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=loader_opts, valid_loader_kwargs={"batch_size": hparams["batch_size"]})
    train_seconds = time.time() - start

    # Test with the best checkpoint, scored utterance by utterance for the by-group tables.
    brain.checkpointer.recover_if_possible(min_key="CER")
    test_loader = make_loader(datasets["test"], hparams["batch_size"], shuffle=False)
    records = transcribe(brain.modules.model, test_loader, corpus.tokenizer, brain.device)
    results = centralized_results(
        config=config, test=summarize(records), model=brain.modules.model,
        seconds=time.time() - start, train_seconds=train_seconds, history=brain.history,
    )
    # What `speechfl evaluate` reads back (tensors only; results.json last, so it marks a finished run).
    atomic_torch_save(initial, out / "initial_model.pt")
    atomic_torch_save({k: v.detach().cpu() for k, v in brain.modules.model.state_dict().items()}, out / "model.pt")
    atomic_write_json(out / "test_utterances.json", records_to_dicts(records))
    atomic_write_json(out / "results.json", results)
    logger.info("test WER %.2f CER %.2f", results["test"]["wer"], results["test"]["cer"])
    print(f"test WER {results['test']['wer']:.2f}%  CER {results['test']['cer']:.2f}%  "
          f"(results: {Path(hparams['output_folder']) / 'results.json'})")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

"""Data preparation figures: synthetic corpus generation rate and manifest preparation rate.

Usage::

    python benchmarks/bench_data.py                              # the default corpus (48 x 50)
    python benchmarks/bench_data.py --speakers 8 --utterances 10 # quicker
    python benchmarks/bench_data.py --out /tmp/corpus --keep     # keep the corpus

Prints, for generating the synthetic espeak-ng corpus: utterances, hours of audio, wall and CPU
seconds, utterances per second and the real-time factor (target from the issue: the default
corpus in under 30 s wall); then the LibriSpeech-layout manifest preparation of that corpus.
Wall time depends on machine load (CPU time is printed beside it). One function per figure;
``main()`` prints them.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import soundfile

from data_prep.librispeech import prepare_librispeech
from data_prep.synthetic import DEFAULT_SPEAKERS, DEFAULT_UTTERANCES, generate_corpus


def _timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def synthetic_generation(out_dir, speakers, utterances, seed=0):
    """Generate the synthetic corpus in a new folder; returns its figures."""
    corpus, wall, cpu = _timed(generate_corpus, out_dir, n_speakers=speakers, n_utterances=utterances, seed=seed,
                               progress=False)
    seconds = sum(soundfile.info(str(path)).duration for path in corpus.rglob("*.flac"))
    n = speakers * utterances
    return {"utterances": n, "audio_h": seconds / 3600, "wall_s": wall, "cpu_s": cpu, "utt_per_s": n / wall,
            "realtime": seconds / wall, "corpus": corpus}


def manifest_preparation(corpus, save_dir):
    """Prepare train/dev/test CSV manifests of a LibriSpeech-layout corpus; returns its figures."""
    paths, wall, cpu = _timed(prepare_librispeech, corpus, save_dir, ["train", "dev", "test"], progress=False)
    n = sum(len(path.read_text().splitlines()) - 1 for path in paths.values())
    return {"utterances": n, "wall_s": wall, "cpu_s": cpu, "utt_per_s": n / wall}


def feature_extraction(manifest, cache_dir):
    """Fbank extraction rate through the feature cache, then the speed-up of reading it back.

    Pass 1 computes every utterance's features (audio decode + resample + Fbank) into an
    empty cache; pass 2 reads the same items through a fresh process-level cache backed by
    the disk entries; pass 3 reads them again from memory (what later epochs, clients and
    rounds of one run do).
    """
    from speechfl.data.dataset import make_dataset
    from speechfl.data.features import FeatureCache
    from speechfl.data.tokenizer import CharTokenizer

    def one_pass(cache):
        ds = make_dataset(manifest, CharTokenizer(), cache)
        frames = 0
        start = time.perf_counter()
        for i in range(len(ds)):
            frames += ds[i]["feats"].shape[0]
        return time.perf_counter() - start, frames, len(ds)

    cache = FeatureCache(cache_dir=cache_dir)
    cold, frames, n = one_pass(cache)
    disk, _, _ = one_pass(FeatureCache(cache_dir=cache_dir))
    warm, _, _ = one_pass(cache)
    audio_s = frames / 100.0
    return {"utterances": n, "audio_s": audio_s, "cold_s": cold, "disk_s": disk, "memory_s": warm,
            "cold_realtime": audio_s / cold, "disk_speedup": cold / disk, "memory_speedup": cold / warm}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", type=int, default=DEFAULT_SPEAKERS)
    parser.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="new folder for the corpus (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and manifests")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    out = args.out if args.out is not None else work / "corpus"
    try:
        gen = synthetic_generation(out, args.speakers, args.utterances, args.seed)
        target = "  (target < 30 s)" if (args.speakers, args.utterances) == (DEFAULT_SPEAKERS, DEFAULT_UTTERANCES) \
            else ""
        print(f"synthetic corpus : {args.speakers} speakers x {args.utterances} utterances = {gen['utterances']} "
              f"utterances, {gen['audio_h']:.2f} h of 16 kHz audio")
        print(f"  generation     : {gen['wall_s']:.1f} s wall, {gen['cpu_s']:.1f} s CPU, {gen['utt_per_s']:.0f} utt/s, "
              f"{gen['realtime']:.0f}x real time{target}")
        prep = manifest_preparation(gen["corpus"], work / "manifests")
        print(f"  manifests      : {prep['utterances']} utterances in {prep['wall_s']:.2f} s wall, "
              f"{prep['cpu_s']:.2f} s CPU, {prep['utt_per_s']:.0f} utt/s")
        feat = feature_extraction(work / "manifests" / "train.csv", work / "feature_cache")
        print(f"features (train) : {feat['utterances']} utterances, {feat['audio_s'] / 3600:.2f} h")
        print(f"  extraction     : {feat['cold_s']:.1f} s ({feat['cold_realtime']:.0f}x real time: decode + "
              f"Fbank, written to the cache)")
        print(f"  cache (disk)   : {feat['disk_s']:.2f} s ({feat['disk_speedup']:.1f}x faster than extraction)")
        print(f"  cache (memory) : {feat['memory_s']:.2f} s ({feat['memory_speedup']:.0f}x faster than extraction)")
    finally:
        if args.keep:
            print(f"kept: {out} and {work / 'manifests'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if args.out is not None:
                shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()

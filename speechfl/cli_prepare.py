"""``speechfl prepare``: corpus preparation sub-commands (``librispeech``, ``kaldi`` and ``synthetic``).

``speechfl/cli.py`` calls :func:`register` on its sub-parsers and then ``args.func(args)``.
"""

import argparse

from data_prep.manifest import DataPrepError


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def run_librispeech(args):
    """Prepare CSV manifests from a LibriSpeech-layout folder; prints one line per split."""
    from data_prep.librispeech import prepare_librispeech

    try:
        csv_paths = prepare_librispeech(args.data_folder, args.save_folder, args.splits, skip_bad=args.skip_bad,
                                        progress=not args.no_progress, speakers_file=args.speakers)
        if args.carve_dev:
            from data_prep.dev_split import carve_dev_split

            first = next(iter(csv_paths))
            carved = carve_dev_split(csv_paths[first], n_dev=args.carve_dev_speakers, seed=args.seed)
            csv_paths = dict(csv_paths)
            csv_paths[f"{first}_without_dev"] = carved.train_csv
            csv_paths["dev_carved"] = carved.dev_csv
    except (DataPrepError, ValueError) as error:
        raise SystemExit(f"speechfl prepare librispeech: error: {error}") from None
    for split, path in csv_paths.items():
        print(f"{split}\t{path}")
    return 0


def run_kaldi(args):
    """Write a CSV manifest from a Kaldi data directory (transcripts optional); prints its path."""
    from data_prep.kaldi import is_privacy_only, prepare_kaldi

    try:
        path = prepare_kaldi(args.data_dir, args.save_folder, name=args.name)
    except (DataPrepError, ValueError) as error:
        raise SystemExit(f"speechfl prepare kaldi: error: {error}") from None
    print(f"{path}{'  (no transcripts: privacy evaluation only)' if is_privacy_only(path) else ''}")
    return 0


def run_synthetic(args):
    """Synthesize the embedded espeak-ng corpus; prints its folder."""
    from data_prep.synthetic import generate_corpus

    sizes = {key: value for key, value in (("n_speakers", args.speakers), ("n_utterances", args.utterances),
                                           ("female_fraction", args.female_fraction),
                                           ("utterances_female", args.utterances_female),
                                           ("utterances_male", args.utterances_male))
             if value is not None}
    try:
        out_dir = generate_corpus(args.out_dir, seed=args.seed, progress=not args.no_progress, **sizes)
    except (DataPrepError, ValueError) as error:
        raise SystemExit(f"speechfl prepare synthetic: error: {error}") from None
    print(out_dir)
    return 0


def register(subparsers):
    """Add ``prepare librispeech``, ``prepare kaldi`` and ``prepare synthetic`` to ``subparsers`` (sets ``func``).

    Imports nothing heavy: the preparation modules load only when a sub-command runs.
    """
    prepare = subparsers.add_parser("prepare", help="prepare a corpus (CSV manifests or the synthetic corpus)")
    kinds = prepare.add_subparsers(dest="corpus", metavar="{librispeech,kaldi,synthetic}")
    kinds.required = True

    libri = kinds.add_parser("librispeech", help="write CSV manifests from a LibriSpeech-layout folder")
    libri.add_argument("data_folder", metavar="DATA_FOLDER", help="folder holding the split folders")
    libri.add_argument("save_folder", metavar="SAVE_FOLDER", help="where <split>.csv files are written")
    libri.add_argument("--splits", required=True, help="comma-separated split folder names, e.g. train,dev,test")
    libri.add_argument("--skip-bad", action="store_true",
                       help="skip bad files and list them in SAVE_FOLDER/skipped_<split>.txt instead of failing")
    libri.add_argument("--speakers", metavar="FILE", default=None,
                       help="speaker genders from FILE instead of SPEAKERS.TXT: a SPEAKERS.TXT-format file or a Kaldi "
                            "spk2gender file ('<speaker-id> <m|f>' per line)")
    libri.add_argument("--carve-dev", action="store_true",
                       help="also carve a speaker-disjoint, gender-balanced dev split out of the first split "
                            "(SAVE_FOLDER/dev_carved.csv, <split>_without_dev.csv, dev_carved.txt)")
    libri.add_argument("--carve-dev-speakers", type=_positive_int, default=None,
                       help="number of carved dev speakers (default: 10%%, at least one per gender)")
    libri.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the dev-speaker choice")
    libri.add_argument("--no-progress", action="store_true", help="no progress bars")
    libri.set_defaults(func=run_librispeech)

    kaldi = kinds.add_parser("kaldi", help="write a CSV manifest from a Kaldi data dir (wav.scp, utt2spk, "
                                           "spk2gender, optional text)")
    kaldi.add_argument("data_dir", metavar="DATA_DIR", help="the Kaldi data directory")
    kaldi.add_argument("save_folder", metavar="SAVE_FOLDER", help="where <name>.csv (+ .meta.json) is written")
    kaldi.add_argument("--name", default=None, help="manifest name (default: the data directory's name)")
    kaldi.set_defaults(func=run_kaldi)

    synth = kinds.add_parser("synthetic", help="synthesize the embedded espeak-ng corpus in LibriSpeech layout")
    synth.add_argument("out_dir", metavar="OUT_DIR", help="new or empty folder for the corpus")
    synth.add_argument("--speakers", type=_positive_int, default=None,
                       help="number of speakers, half female (default: data_prep.synthetic.DEFAULT_SPEAKERS, 48)")
    synth.add_argument("--utterances", type=_positive_int, default=None,
                       help="utterances per speaker (default: data_prep.synthetic.DEFAULT_UTTERANCES, 50)")
    synth.add_argument("--female-fraction", type=_fraction, default=None,
                       help="fraction of female speakers in the train split, e.g. 0.2 (dev and test stay balanced; "
                            "default: balanced)")
    synth.add_argument("--utterances-female", type=_positive_int, default=None,
                       help="utterances per female train speaker (default: --utterances)")
    synth.add_argument("--utterances-male", type=_positive_int, default=None,
                       help="utterances per male train speaker (default: --utterances)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, help="seed (same seed, same bytes)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synthetic)

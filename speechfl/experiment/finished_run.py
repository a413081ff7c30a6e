"""Reading a finished run folder back for ``speechfl evaluate``: exactly what the run used, or a clear error.

A run folder written by ``speechfl train`` (federated or centralized engine) or by
the centralized CTC recipe holds ``results.json`` (with ``config.hparams_text``,
the hparams file's text at the time of the run, and ``config.argv``, its
overrides), ``model.pt`` (final state_dict), ``initial_model.pt`` (the state_dict
training started from) and, opt-in, ``recorded/round_*.pt``.

The model is rebuilt from the *stored* hparams text, never from the hparams file
path: a file edited after the run must not change what is evaluated. Every file
is loaded with ``torch.load(..., weights_only=True)`` (tensors and plain
containers only), so a tampered run folder cannot execute code; anything else is
refused with one line naming the file.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

RESULTS = "results.json"
MODEL = "model.pt"
INITIAL_MODEL = "initial_model.pt"
RECORDED_KEYS = ("round", "global", "updates")


class RunFolderError(ValueError):
    """A run folder that cannot be evaluated; the message names the file and what to do."""


@dataclass
class FinishedRun:
    """A finished run, rebuilt from its own files.

    ``hparams`` is loaded from ``config.hparams_text`` + ``config.argv`` (its
    ``model`` is freshly built, untrained); ``state`` is the final state_dict;
    ``initial_state`` the state_dict training started from (``None`` for runs
    written before ``initial_model.pt`` existed, with the reason in
    ``initial_note``).
    """

    run_dir: Path
    hparams: dict
    results: dict
    state: Dict[str, torch.Tensor]
    initial_state: Optional[Dict[str, torch.Tensor]]
    initial_note: Optional[str]


def load_tensor_file(path: Path, what: str):
    """``torch.load(path, weights_only=True)``, with one-line errors for unreadable or unsafe files."""
    import pickle

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunFolderError(f"{path}: refused to load {what}: it holds more than tensors and plain containers "
                             f"({first[:160]}); a run folder must not contain pickled objects, delete the file "
                             "or retrain") from None
    except (RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunFolderError(f"{path}: cannot read {what} ({first[:160]}); the file is truncated or corrupt, "
                             "retrain the run") from None


def hparams_from_results(results: dict, where: Path) -> dict:
    """Rebuild the hparams of a run from ``config.hparams_text`` and ``config.argv`` stored in results.json."""
    from speechfl.experiment.hparams import load_hparams

    cfg = results.get("config") if isinstance(results, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("hparams_text"), str):
        raise RunFolderError(f"{where}: config.hparams_text is missing, so the run's exact configuration is unknown "
                             "(results written by an older speechfl or by hand); retrain the run to evaluate it")
    argv = cfg.get("argv") or []
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise RunFolderError(f"{where}: config.argv must be a list of --key=value strings, got {argv!r}")
    with tempfile.TemporaryDirectory(prefix="speechfl_eval_") as tmp:
        path = Path(tmp) / Path(str(cfg.get("hparams_file") or "hparams.yaml")).name
        path.write_text(cfg["hparams_text"])
        return load_hparams(path, argv)


def load_finished_run(run_dir) -> FinishedRun:
    """Read and check a finished run folder; see the module docstring."""
    from speechfl.io import read_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    res_path = run_dir / RESULTS
    if not res_path.is_file():
        raise RunFolderError(f"{res_path} not found: {run_dir} is not a finished speechfl run; train one with "
                             "`speechfl train HPARAMS.yaml --output_folder=...` (or the CTC recipe), which writes "
                             f"{RESULTS} and {MODEL} when it finishes")
    try:
        results = read_json(res_path)
    except ValueError as exc:
        raise RunFolderError(f"{res_path}: not valid JSON ({exc}); retrain the run") from None
    model_path = run_dir / MODEL
    if not model_path.is_file():
        raise RunFolderError(f"{model_path} not found: the run wrote {RESULTS} but no final model; "
                             "retrain the run (its training did not finish)")
    hparams = hparams_from_results(results, res_path)
    state = load_tensor_file(model_path, "the final model")
    initial_state, note = None, None
    if (run_dir / INITIAL_MODEL).is_file():
        initial_state = load_tensor_file(run_dir / INITIAL_MODEL, "the initial model")
    else:
        note = f"{run_dir / INITIAL_MODEL} not found (run written before it was saved): no calibration reference"
    for name, st in (("final", state), ("initial", initial_state)):
        if st is not None and (not isinstance(st, dict) or not all(isinstance(v, torch.Tensor) for v in st.values())):
            raise RunFolderError(f"{run_dir}: the {name} model file is not a state_dict of tensors")
    return FinishedRun(run_dir, hparams, results, state, initial_state, note)


def load_recorded(run_dir) -> List[dict]:
    """The opt-in recorded rounds ``recorded/round_*.pt`` (oldest first), tensors and plain containers only."""
    out = []
    for f in sorted((Path(run_dir) / "recorded").glob("round_*.pt")):
        rec = load_tensor_file(f, "a recorded round")
        if not isinstance(rec, dict) or any(k not in rec for k in RECORDED_KEYS):
            raise RunFolderError(f"{f}: a recorded round must be a mapping with keys {list(RECORDED_KEYS)}, got "
                                 f"{sorted(rec) if isinstance(rec, dict) else type(rec).__name__}")
        if not isinstance(rec["global"], torch.Tensor) or not isinstance(rec["updates"], dict) or not all(
                isinstance(u, torch.Tensor) for u in rec["updates"].values()):
            raise RunFolderError(f"{f}: 'global' must be a tensor and 'updates' a mapping client -> tensor")
        out.append(rec)
    return out

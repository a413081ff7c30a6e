"""The results.json document: one per run, fixed schema (documented in the README).

Top-level keys: ``schema``, ``config``, ``model``, ``seconds``, ``test`` and, for
federated runs, ``rounds``, ``partition``, ``communication``; ``privacy`` and
``fairness`` are added by ``speechfl evaluate``. Rates are percentages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import yaml

from speechfl.models.asr import count_parameters

SCHEMA_VERSION = 1


def config_section(hparams_file: str, overrides) -> Dict:
    """The run's configuration: hparams file, overrides (as a mapping and as argv), file text."""
    from speechfl.experiment.hparams import overrides_to_yaml

    if isinstance(overrides, str):
        mapping = yaml.safe_load(overrides) or {}
        argv = [f"--{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in mapping.items()]
    else:
        argv = list(overrides or [])
        mapping = yaml.safe_load(overrides_to_yaml(argv)) or {}
    text = Path(hparams_file).read_text() if Path(hparams_file).is_file() else None
    return {"hparams_file": str(Path(hparams_file).resolve()), "overrides": mapping, "argv": argv,
            "hparams_text": text}


def model_section(model) -> Dict:
    return {"n_params": count_parameters(model), "class": type(model).__name__}


def centralized_results(*, config, overrides, test, model, seconds, train_seconds, history: Optional[List] = None):
    return {
        "schema": SCHEMA_VERSION,
        "kind": "centralized",
        "config": config_section(config, overrides),
        "model": model_section(model),
        "seconds": seconds,
        "train_seconds": train_seconds,
        "epochs": history or [],
        "test": test,
    }

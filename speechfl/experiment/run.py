"""Run one federated (or centralized-reference) experiment from hparams -> results.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Optional

import torch

from speechfl.config import ExperimentConfig, build_components, check_output_writable
from speechfl.experiment.results import (AttackSection, BackdoorResult, CommunicationSection,
                                         ModelSection, PartitionSection, PrivacyBudgetSection, RunResults, TestSection,
                                         capture_config, model_section)
from speechfl.federated.engines import ENGINE_SECTIONS, check_engine_available, get_engine
from speechfl.federated.setup import FederatedSetup, RunOrigin, build_setup
from speechfl.io import atomic_torch_save, atomic_write_json
from speechfl.metrics.asr import records_to_dicts, summarize, transcribe

logger = logging.getLogger(__name__)


def run_federated(hparams: dict, hparams_file: str, overrides, progress: bool = True) -> Dict:
    """Validate, build, train (engine from ``hparams['engine']``, see :mod:`speechfl.federated.engines`), test,
    and write ``results.json``.

    The hparams text is captured, the whole configuration validated (components and mechanisms
    included) and the output folder checked writable before the corpus is prepared or any client
    trains (a :class:`~speechfl.config.ConfigError` names the key).
    """
    start = time.time()
    captured = capture_config(hparams_file, overrides)  # the file as it is run, not as it is when training ends
    config = ExperimentConfig.from_hparams(hparams)
    check_engine_available(config.engine)
    components = build_components(config)
    out = check_output_writable(config.output_folder)
    setup = build_setup(hparams, progress=progress, config=config, components=components)
    setup.origin = RunOrigin(str(hparams_file), overrides if isinstance(overrides, str) else tuple(overrides or ()),
                             config=captured)
    result = get_engine(config.engine)(setup, out, progress)
    history, global_flat, sections = (*result, {}) if len(result) == 2 else result
    return finalize(setup, history, global_flat, hparams_file, overrides, out, time.time() - start,
                    sections=sections)


def finalize(setup: FederatedSetup, history, global_flat, hparams_file, overrides, out: Path, seconds: float,
             sections: Optional[Dict] = None) -> Dict:
    """Test the final global model and write model.pt + results.json.

    ``sections``: extra results.json sections the engine owns (:data:`speechfl.federated.engines.ENGINE_SECTIONS`).
    The ``config`` section is the one captured when the run started (``setup.origin.config``, set by
    every engine entry point); a setup built without an origin (a direct caller) captures it here.
    """
    sections = dict(sections or {})
    unknown = sorted(set(sections) - set(ENGINE_SECTIONS))
    if unknown:
        raise ValueError(f"engine returned unknown results section(s) {unknown}; engines may add {ENGINE_SECTIONS}")
    from speechfl.federated.update import load_flat_params

    # initial_model.pt: the parameters training started from (the calibrated membership attack's reference).
    load_flat_params(setup.model, setup.layout, setup.init_flat.to(setup.device))
    atomic_torch_save(setup.model.state_dict(), out / "initial_model.pt")
    load_flat_params(setup.model, setup.layout, global_flat.to(setup.device))
    atomic_torch_save(setup.model.state_dict(), out / "model.pt")
    records = transcribe(setup.model, setup.eval_loader("test"), setup.corpus.tokenizer, setup.device)
    engine = str(setup.hparams.get("engine", "inprocess"))
    dp_budget = None
    if setup.dp_user is not None and history:
        dp_budget = PrivacyBudgetSection(user_level_epsilon=history[-1]["epsilon"],
                                         delta=float(setup.hparams["dp_user"].get("delta", 1e-3)))
    kind = setup.config.engine.kind if setup.config is not None else (
        "centralized" if engine == "centralized" else "federated")
    results = RunResults(
        kind=kind,
        engine=engine,
        config=setup.origin.config if setup.origin is not None and setup.origin.config is not None else
        capture_config(hparams_file, overrides),
        model=ModelSection.from_dict(model_section(setup.model)),
        seconds=seconds,
        client_seconds_per_round=sum(r["client_seconds"] for r in history) / len(history) if history else None,
        partition=PartitionSection(**setup.partition.to_dict(), malicious=sorted(setup.malicious),
                                   genders={c: sorted({setup.genders[s] for s in spk})
                                            for c, spk in setup.partition.clients.items()}),
        rounds=history,
        communication=CommunicationSection.from_history(history, setup.layout.dim),
        test=TestSection.from_dict(summarize(records)),
        attack=test_under_attack(setup),
        privacy_budget=dp_budget,
        **sections,
    ).to_dict()
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "test_utterances.json", records_to_dicts(records))
    return results


def test_under_attack(setup: FederatedSetup) -> Optional[AttackSection]:
    """Robustness metrics: which attack ran and, for a backdoor, its success rate on triggered test audio."""
    if not setup.malicious:
        return None
    backdoor = None
    if setup.data_attack and setup.data_attack.get("name") == "audio_backdoor":
        from speechfl.robustness.poisoning import backdoor_success

        backdoor = BackdoorResult.from_dict(backdoor_success(setup))
    return AttackSection(malicious_clients=sorted(setup.malicious),
                         update_attack=setup.update_attack.name if setup.update_attack is not None else None,
                         data_attack=dict(setup.data_attack) if setup.data_attack else None,
                         backdoor_success=backdoor)


def load_run_model(run_dir: str | Path):
    """Rebuild the model of a finished run from its results.json config and model.pt."""
    from speechfl.experiment.hparams import load_hparams
    from speechfl.io import read_json

    run_dir = Path(run_dir)
    res = read_json(run_dir / "results.json")
    cfg = res["config"]
    hparams = load_hparams(cfg["hparams_file"], cfg["argv"])
    return hparams, res, torch.load(run_dir / "model.pt", weights_only=True)

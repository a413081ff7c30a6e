"""The experiment a Flower run executes, as the server ships it to every node.

The ServerApp sends the hparams file's *text* and its command-line overrides with
every message; a node rebuilds the same :class:`~speechfl.federated.setup.FederatedSetup`
from them (plus node-local paths from its ``--node-config``), so nodes need the
speechfl package and the corpus, not a copy of the hparams file. The handshake
compares an :func:`experiment_fingerprint` of the node's setup with the server's,
so a node that built a different experiment (other corpus, other overrides) is an
error at start, never a silent divergence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple

# hparams entries that change what a client computes (besides the model layout, the
# partition and the client config, which the fingerprint lists explicitly).
CLIENT_HPARAMS = ("seed", "rounds", "clients_per_round", "speakers_per_client", "min_utterances", "uplink",
                  "dp_sample", "secagg", "malicious", "adversary", "augment")


@dataclass(frozen=True)
class ExperimentSpec:
    """An hparams file's text plus ``--key=value`` overrides (replace semantics, see ``load_hparams``)."""

    hparams_text: str
    overrides: Tuple[str, ...] = ()

    @classmethod
    def from_file(cls, hparams_file: str | Path, overrides: str | Sequence[str] = ()) -> "ExperimentSpec":
        """Read ``hparams_file``; ``overrides`` is a ``--key=value`` list or a YAML mapping string."""
        from speechfl.experiment.results import config_section

        path = Path(hparams_file)
        if not path.is_file():
            raise FileNotFoundError(f"hparams file {path} does not exist")
        return cls(path.read_text(), tuple(config_section(str(path), overrides)["argv"]))

    @property
    def key(self) -> str:
        """A stable digest of the spec (caches and on-node state are keyed by it)."""
        text = json.dumps([self.hparams_text, list(self.overrides)])
        return hashlib.sha256(text.encode()).hexdigest()

    def to_config(self) -> dict:
        """Values for a Flower ``ConfigRecord``."""
        return {"hparams-text": self.hparams_text, "overrides": json.dumps(list(self.overrides))}

    @classmethod
    def from_config(cls, config) -> "ExperimentSpec":
        missing = [k for k in ("hparams-text", "overrides") if k not in config]
        if missing:
            raise ValueError(f"message lacks the experiment keys {missing}: was it sent by a speechfl ServerApp?")
        overrides = json.loads(str(config["overrides"]))
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ValueError(f"message 'overrides' must be a JSON list of strings, got {config['overrides']!r}")
        return cls(str(config["hparams-text"]), tuple(overrides))

    def load_hparams(self, extra: Sequence[str] = ()) -> dict:
        """Load the hparams; ``extra`` overrides (node-local paths) are applied after the server's."""
        from speechfl.experiment.hparams import load_hparams

        with tempfile.TemporaryDirectory(prefix="speechfl_flower_") as tmp:
            path = Path(tmp) / "hparams.yaml"
            path.write_text(self.hparams_text)
            return load_hparams(path, [*self.overrides, *extra])


def experiment_fingerprint(setup) -> str:
    """Digest of everything that fixes a client's computation: seed, layout, partition, client config, ..."""
    summary = {
        "layout": [[name, list(shape)] for name, shape in setup.layout.as_list()],
        "partition": {c: list(u) for c, u in sorted(setup.partition.utterances.items())},
        "client": dataclasses.asdict(setup.client_config),
        "malicious": sorted(setup.malicious),
        "hparams": {k: _plain(setup.hparams.get(k)) for k in CLIENT_HPARAMS},
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _plain(value):
    """JSON-able view of an hparams value; objects (``!new:``) are named by their class."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return f"<{type(value).__module__}.{type(value).__qualname__}>"

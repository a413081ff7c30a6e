"""Which mechanisms a fairness-aware server step composes with, and its wiring at setup.

q-FedAvg and the group rules weigh *individual* updates by *self-reported* losses, so:

* secure aggregation: refused, the server sees only the masked sum, never ``delta_k`` or
  ``||delta_k||``, and a per-client weight cannot be applied inside the sum;
* user-level DP (``dp_user``): refused, its noise is calibrated to a clipped *mean* with
  weights ``1/m``; loss-dependent weights change the sensitivity (a client could get weight
  close to 1) and the reported losses are released without noise;
* per-sample DP (``dp_sample``): refused, the reported loss is a function of the client's
  data outside the DP-SGD accountant;
* robust aggregators or pre-aggregators: refused, the fairness rule replaces the aggregator,
  and it up-weights exactly the clients with large losses that a robust rule down-weights;
* malicious clients: refused, the server trusts each reported loss, so one client could claim
  a huge loss and take the whole step;
* engines other than ``inprocess``: refused (``centralized`` pools every speaker into one
  client, so there is nothing to weigh; Flower and gossip do not carry the reported loss to
  these server steps).

Compression composes: the rules use the decoded updates the server received.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Mapping


def check_fairness_compatible(hparams: Mapping, robust, engine) -> None:
    """Raise ValueError naming the reason when ``hparams`` combine a fairness rule with what it cannot."""
    opt = hparams.get("server_optimizer")
    name = opt.get("name") if isinstance(opt, Mapping) else opt
    engine = getattr(engine, "value", engine)
    reasons = []
    if engine != "inprocess":
        reasons.append(f"engine {engine!r}: only the inprocess engine carries each client's reported loss to the "
                       "server step (centralized pools every speaker into one client: nothing to weigh)")
    if hparams.get("secagg") not in (None, False):
        reasons.append("secagg: the server sees only the masked sum, not the individual updates and norms it weighs")
    if hparams.get("dp_user"):
        reasons.append("dp_user: its noise is calibrated to a clipped mean with weights 1/m; loss-dependent weights "
                       "change the sensitivity and the reported losses are released without noise")
    if hparams.get("dp_sample"):
        reasons.append("dp_sample: the reported loss at the global model is not covered by the DP-SGD accountant")
    if getattr(robust, "name", "") not in ("mean", "weighted_mean"):
        reasons.append(f"aggregator {getattr(robust, 'name', robust)!r}: the fairness rule replaces the aggregator "
                       "and up-weights the high-loss clients a robust rule down-weights")
    if hparams.get("malicious"):
        reasons.append("malicious: the server trusts each reported loss; one client could claim any loss and take "
                       "the whole step")
    if reasons:
        raise ValueError(f"server_optimizer {name!r} cannot be combined with: " + "; ".join(reasons))


def client_groups(partition, genders: Mapping[str, str], attribute: str, data_folder) -> Dict[str, str]:
    """Client id -> group (its speakers' gender or accent); a client spanning two groups is refused."""
    if attribute == "accent":
        from data_prep.synthetic import read_accents

        attrs = read_accents(Path(data_folder) / "SPEAKERS.TXT")
    else:
        attrs = dict(genders)
    groups = {}
    for cid, speakers in partition.clients.items():
        values = sorted({attrs.get(s, "unknown") for s in speakers})
        if len(values) != 1:
            raise ValueError(f"client {cid} holds speakers of {attribute}s {values}: group rules need one "
                             f"{attribute} per client (use speakers_per_client: 1)")
        if values[0] == "unknown":
            raise ValueError(f"client {cid}: its speakers' {attribute} is unknown; group rules need it")
        groups[cid] = values[0]
    if len(set(groups.values())) < 2:
        raise ValueError(f"group rules need at least two {attribute} groups among the clients, got "
                         f"{sorted(set(groups.values()))}")
    return groups


def configure_fairness(server_optimizer, hparams: Mapping, partition, genders: Mapping[str, str], client_config):
    """Give the server step its client groups and ``L``; returns the client config with ``report_global_loss``."""
    attribute = getattr(server_optimizer, "attribute", None)
    groups = client_groups(partition, genders, attribute, hparams.get("data_folder")) if attribute else {}
    server_optimizer.configure_fairness(groups=groups, local_lr=float(client_config.optimizer["lr"]))
    return dataclasses.replace(client_config, report_global_loss=True)

"""Flower records <-> speechfl objects: models by parameter name with dtypes, replies as payload bytes.

A model travels as an ``ArrayRecord`` keyed by the parameter names of the
:class:`~speechfl.federated.update.ParamLayout` (never by position); the receiver
checks names, shapes and dtypes. A client's reply carries exactly what reaches
the server in the in-process engine (a :class:`~speechfl.federated.server.Received`):
the compressor's payload bytes (or the int64 secure-aggregation vector, or the
reason the update could not be encoded), the sample count and the metadata.
"""

from __future__ import annotations

from typing import Dict

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from speechfl.federated.server import Received, UnencodablePayload
from speechfl.federated.update import ParamLayout, unflatten

MODEL_DTYPE = "float32"


def flat_to_arrays(flat: torch.Tensor, layout: ParamLayout) -> ArrayRecord:
    """The flat float32 model as one named float32 array per parameter."""
    if flat.dtype != torch.float32:
        raise TypeError(f"model vector must be float32, got {flat.dtype}")
    record = ArrayRecord()
    for name, tensor in unflatten(flat.detach().cpu(), layout).items():
        record[name] = Array(tensor.contiguous().numpy())
    return record


def arrays_to_flat(record: ArrayRecord, layout: ParamLayout) -> torch.Tensor:
    """Rebuild the flat vector from named arrays, checking names, shapes and dtypes against ``layout``."""
    names, expected = set(record.keys()), set(layout.names)
    if names != expected:
        missing, extra = sorted(expected - names), sorted(names - expected)
        raise ValueError(f"model record does not match the layout: missing {missing[:5]} "
                         f"({len(missing)}), unexpected {extra[:5]} ({len(extra)})")
    parts = []
    for name, shape in zip(layout.names, layout.shapes):
        arr = record[name]
        if arr.dtype != MODEL_DTYPE:
            raise TypeError(f"parameter {name} arrived as {arr.dtype}, expected {MODEL_DTYPE}")
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"parameter {name} arrived with shape {tuple(arr.shape)}, expected {tuple(shape)}")
        parts.append(torch.from_numpy(arr.numpy().copy()).reshape(-1))
    return torch.cat(parts)


def received_to_content(rec: Received) -> RecordDict:
    """A client's reply: ``config`` (client-id, n-samples, payload bytes), ``metrics``, and ``masked`` (secagg)."""
    config = ConfigRecord({"client-id": rec.client_id, "n-samples": int(rec.n_samples)})
    records = {"config": config, "metrics": MetricRecord(_metrics(rec.metadata))}
    if isinstance(rec.payload, UnencodablePayload):
        config["unencodable"] = rec.payload.reason
    elif isinstance(rec.payload, torch.Tensor):
        if rec.payload.dtype != torch.int64 or rec.payload.dim() != 1:
            raise TypeError(f"secure-aggregation payload must be int64 [d], got {rec.payload.dtype} "
                            f"{tuple(rec.payload.shape)}")
        records["masked"] = ArrayRecord({"masked": Array(rec.payload.contiguous().numpy())})
    else:
        config["payload"] = bytes(rec.payload.data)
    return RecordDict(records)


def content_to_received(content: RecordDict) -> Received:
    """Inverse of :func:`received_to_content`."""
    from speechfl.compression import Payload

    for key in ("config", "metrics"):
        if key not in content:
            raise ValueError(f"reply lacks the {key!r} record")
    config = content["config"]
    meta = {k: v for k, v in content["metrics"].items()}
    if "masked" in content:
        arr = content["masked"]["masked"]
        if arr.dtype != "int64":
            raise TypeError(f"secure-aggregation payload arrived as {arr.dtype}, expected int64")
        payload = torch.from_numpy(arr.numpy().copy())
    elif "unencodable" in config:
        payload = UnencodablePayload(str(config["unencodable"]))
    elif "payload" in config:
        payload = Payload(bytes(config["payload"]))
    else:
        raise ValueError("reply carries no payload, secure-aggregation vector or unencodable reason")
    return Received(str(config["client-id"]), payload, int(config["n-samples"]), meta)


def _metrics(metadata: Dict) -> Dict[str, float]:
    out = {}
    for key, value in metadata.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1 or getattr(value, "ndim", None) == 0:
            value = value.item()  # 0-d tensors and numpy scalars
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)):
            raise TypeError(f"client metadata {key!r} is a {type(value).__name__}; only numbers travel in replies")
        out[key] = value
    return out

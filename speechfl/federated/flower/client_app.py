"""The Flower ``ClientApp`` (Message API) that runs speechfl clients on a node.

Message types (all carry the experiment, see :mod:`~speechfl.federated.flower.experiment`):

``query``
    Handshake: reply with the client ids this node serves and the fingerprint of
    the experiment it built.
``train``
    Train client ``client-id`` from the model in ``model`` (named float32 arrays)
    for round ``round``; reply with its uplink payload bytes (see
    :mod:`~speechfl.federated.flower.records`). Its persistent state stays on the
    node (:class:`~speechfl.federated.flower.client_state.ClientStateStore`).
``evaluate``
    Mean CTC loss of the model in ``model`` on client ``client-id``'s own
    training data (it never leaves the node).

The handlers are module-level functions: a Ray actor keeps this module, and the
setup cached in :mod:`~speechfl.federated.flower.node`, across messages.
"""

from __future__ import annotations

from typing import Optional

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from speechfl.federated.flower.client_state import ClientStateStore
from speechfl.federated.flower.client_step import run_client
from speechfl.federated.flower.experiment import ExperimentSpec, experiment_fingerprint
from speechfl.federated.flower.node import apply_threads, node_setup, served_clients
from speechfl.federated.flower.records import arrays_to_flat, received_to_content


def make_client_app(*, threads: Optional[int] = None, state_dir: Optional[str] = None) -> ClientApp:
    """A ClientApp; ``threads`` and ``state_dir`` are defaults a node's ``--node-config`` overrides.

    Parameters
    ----------
    threads : int, optional
        torch threads per ClientApp (the simulation sets the CPUs Ray reserves per client).
    state_dir : str, optional
        Folder for the clients' persistent state (the simulation keeps it in the run's
        output folder so that a resumed run finds it).
    """
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return handle_query(msg, context, threads)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return handle_train(msg, context, threads, state_dir)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return handle_evaluate(msg, context, threads)

    return app


def _node_setup(msg: Message, context: Context, threads: Optional[int]):
    if "config" not in msg.content:
        raise ValueError(f"{msg.metadata.message_type} message lacks its 'config' record")
    spec = ExperimentSpec.from_config(msg.content["config"])
    apply_threads(context.node_config, threads)
    return spec, node_setup(spec, context.node_config)


def _served_client(msg: Message, context: Context, setup) -> str:
    cid = str(msg.content["config"]["client-id"])
    served = served_clients(context.node_config, setup.partition.client_ids)
    if cid not in served:
        raise ValueError(f"this node serves clients {served}, not {cid!r}")
    return cid


def handle_query(msg: Message, context: Context, threads: Optional[int]) -> Message:
    _, setup = _node_setup(msg, context, threads)
    config = ConfigRecord({"clients": served_clients(context.node_config, setup.partition.client_ids),
                           "fingerprint": experiment_fingerprint(setup)})
    return Message(RecordDict({"config": config}), reply_to=msg)


def handle_train(msg: Message, context: Context, threads: Optional[int], state_dir: Optional[str]) -> Message:
    spec, setup = _node_setup(msg, context, threads)
    cid = _served_client(msg, context, setup)
    cfg = msg.content["config"]
    round_, step_offset, after = int(cfg["round"]), int(cfg["step-offset"]), int(cfg["state-round"])
    view = arrays_to_flat(msg.content["model"], setup.layout)
    directory = context.node_config.get("state-dir") or state_dir
    store = ClientStateStore(context, directory, spec.key)
    state = store.load(cid, setup.seed, after)
    received = run_client(setup, cid, view, round_, step_offset, [str(p) for p in cfg["participants"]], state)
    store.save(cid, round_, after, state)
    return Message(received_to_content(received), reply_to=msg)


def handle_evaluate(msg: Message, context: Context, threads: Optional[int]) -> Message:
    from speechfl.data.dataset import make_loader
    from speechfl.federated.update import load_flat_params
    from speechfl.metrics.asr import mean_loss

    _, setup = _node_setup(msg, context, threads)
    cid = _served_client(msg, context, setup)
    load_flat_params(setup.model, setup.layout, arrays_to_flat(msg.content["model"], setup.layout).to(setup.device))
    dataset = setup.client_dataset(cid)
    loader = make_loader(dataset, int(setup.hparams.get("eval_batch_size", 16)), shuffle=False)
    metrics = MetricRecord({"loss": mean_loss(setup.model, loader, setup.device), "n-samples": len(dataset)})
    return Message(RecordDict({"config": ConfigRecord({"client-id": cid}), "metrics": metrics}), reply_to=msg)


app = make_client_app()

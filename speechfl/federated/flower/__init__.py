"""Running the speechfl engine on Flower (the only package that imports ``flwr``).

The in-process :class:`speechfl.federated.simulation.Simulation` takes a pluggable
client executor. :class:`~speechfl.federated.flower.executor.FlowerExecutor` sends
each sampled client's training to a Flower ``ClientApp`` through the ServerApp's
``Grid`` (Message API), and rebuilds the same :class:`~speechfl.federated.server.Received`
objects from the replies, so the server pipeline, checkpoints and ``results.json``
are those of the in-process engine by construction.

Entry points:

- ``engine: flower-sim``: :func:`speechfl.federated.flower.run.run_flower_simulation`
  (``flwr.simulation.run_simulation``, Ray backend), called by ``speechfl.experiment.run``;
- deployment (``flower-superlink`` + ``flower-supernode`` + ``flwr run``): the Flower App in
  ``recipes/LibriSpeech/ASR/federated/flower_app`` points at
  ``speechfl.federated.flower.server_app:app`` and ``speechfl.federated.flower.client_app:app``.
  See ``docs/flower.md``.
"""

FLWR_MISSING = ("Flower is not installed: install the extra with `pip install 'speechfl[flower]'` "
                "(flwr[simulation]) to use engine=flower-sim or a Flower deployment")


def require_flwr() -> None:
    """Raise a clear ImportError when ``flwr`` is missing."""
    try:
        import flwr  # noqa: F401
    except ImportError as exc:
        raise ImportError(FLWR_MISSING) from exc

"""The one error type of configuration validation."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad hparams value, found before any corpus is generated or any client trains.

    The message names the key (``rounds: must be a positive integer, got 'two'``).
    It subclasses ``ValueError`` so callers that caught the old untyped errors still do.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)

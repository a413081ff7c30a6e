"""speechfl: privacy-preserving, robust and fair federated speech recognition on SpeechBrain.

Importing the package checks that the installed torch and torchaudio load together: torchaudio's compiled
extension only works with the torch release it was built against, and a mismatched pair otherwise fails
much later, deep inside SpeechBrain, with a dynamic-loader traceback.
"""

from __future__ import annotations

from importlib import metadata

__version__ = "0.1.0"

# The pair pinned in requirements.lock (and the Makefile's TORCH_PAIR): keep the three in step.
LOCKED_TORCH_PAIR = ("2.14.1", "2.11.1")


class TorchPairError(ImportError):
    """torch and torchaudio are missing or do not load together; the message names both versions and the fix."""


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_torch_pair() -> None:
    """Import torch and torchaudio, raising :class:`TorchPairError` (one line) if they do not load together."""
    torch_v, audio_v = _installed("torch"), _installed("torchaudio")
    fix = (f"install the tested pair from the lock: pip install --no-deps -r requirements.lock "
           f"(torch=={LOCKED_TORCH_PAIR[0]}, torchaudio=={LOCKED_TORCH_PAIR[1]}), or run `make install`")
    if torch_v is None or audio_v is None:
        missing = " and ".join(n for n, v in (("torch", torch_v), ("torchaudio", audio_v)) if v is None)
        raise TorchPairError(f"speechfl: {missing} is not installed; {fix}")
    try:
        import torch  # noqa: F401
        import torchaudio  # noqa: F401  (loads libtorchaudio, which links against torch)
        import torchaudio.functional  # noqa: F401
    except (OSError, ImportError, RuntimeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:240]
        raise TorchPairError(f"speechfl: torchaudio {audio_v} does not load with torch {torch_v} ({reason}); "
                             f"{fix}") from None


check_torch_pair()

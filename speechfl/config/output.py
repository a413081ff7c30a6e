"""Is the run's output folder writable? Checked before any corpus is generated or any client trains."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from speechfl.config.errors import ConfigError


def check_output_writable(folder: Path | str | None) -> Path:
    """Create ``folder`` (with parents) and write then remove a probe file in it.

    Raises
    ------
    ConfigError
        ``output_folder`` is missing, is a file, or cannot be created or written
        (read-only file system, permissions, full disk).
    """
    if folder is None:
        raise ConfigError("output_folder", "is required")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError("output_folder", f"{folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe_", dir=folder)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError("output_folder", f"{folder} is not writable ({exc.strerror or exc}); "
                                           "choose another with --output_folder=...") from None
    return folder


def resolved_output_folder(hparams_file: Path | str, overrides=()) -> Path | None:
    """The ``output_folder`` an hparams file and its overrides resolve to, without building any object.

    For recipes whose hparams build objects that write into the output folder when
    loaded (SpeechBrain's ``Checkpointer`` creates ``save_folder``): check the folder
    with :func:`check_output_writable` before :func:`~speechfl.experiment.hparams.load_hparams`.
    ``overrides`` as :func:`load_hparams` takes them (``--key=value`` list or a YAML mapping string).
    """
    import io

    import yaml
    from hyperpyyaml import resolve_references

    from speechfl.experiment.hparams import _Loose, overridden_text

    text = overridden_text(hparams_file, overrides)
    resolved = yaml.load(resolve_references(io.StringIO(text)).getvalue(), Loader=_Loose) or {}
    folder = resolved.get("output_folder")
    return Path(str(folder)) if folder is not None else None

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

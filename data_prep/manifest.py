"""Shared helpers of the data preparation: atomic writes, CSV manifests, skip-if-prepared markers.

Every file is written to a temporary sibling and moved into place with ``os.replace``, so a
reader never sees a half-written manifest and an interrupted run leaves no partial file under
the final name. A marker (JSON of the preparation's configuration) is written last; a rerun
with the same configuration finds it and skips, as SpeechBrain's prepare scripts do.
"""

import csv
import io
import json
from pathlib import Path

from speechfl.io import atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)

MANIFEST_COLUMNS = ("ID", "duration", "wav", "spk_id", "gender", "wrd")


class DataPrepError(ValueError):
    """Bad input to a data preparation; the message names the offending file or folder."""


def write_csv_atomic(path, columns, rows):
    """Atomically write a CSV manifest.

    Parameters
    ----------
    path : str or Path
    columns : sequence of str
        Header, in order.
    rows : iterable of dict
        Each row must have exactly the keys in ``columns``.
    """
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for index, row in enumerate(rows):
        if set(row) != set(columns):
            raise ValueError(f"row {index} for {path} has keys {sorted(row)}, expected {columns}")
        writer.writerow([_format_cell(row[column]) for column in columns])
    return atomic_write_text(path, buffer.getvalue())


def _format_cell(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def read_marker(path):
    """The configuration stored in a marker, or None when there is no marker."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataPrepError(f"marker file {path} is unreadable ({error}); delete it to prepare again") from error


def write_marker(path, config):
    """Atomically store ``config`` (JSON-serialisable dict) as a marker."""
    return atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")

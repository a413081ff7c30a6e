"""The sweep table: one row per cell, one column per trade-off metric, read from results.json.

Every row has every column (:data:`COLUMNS`). A value is a number, a string, or
:class:`NA` with the reason it is not applicable or not available ("no DP",
"not evaluated", "skipped: ..."): results are read defensively, a missing key is
never a crash. Units: error rates and WER gaps in percent (as in results.json);
attacker accuracies, EER and membership AUC as fractions in [0, 1] (as the
attackers report them); uplink in MB (1e6 bytes).

Column sources (results.json):

==================  ==============================================================
test_wer, test_cer  ``test.wer``, ``test.cer``
wer_gap_fm          ``fairness.gender.gap_abs`` (else ``test.by_group.gender`` F - M)
worst_group         ``fairness.gender.worst_group`` (else the group of highest WER)
spk_wer_std         ``fairness.individual.std``
attacker_*          ``privacy.representations.strongest.{family,top1,chance,eer}``
fbank_top1          ``privacy.fbank.strongest.top1`` (raw-feature reference)
linkage_acc         ``privacy.linkage.accuracy``
source_inf_acc      ``privacy.source_inference.accuracy``
membership_auc      ``privacy.membership.auc``
charset_f1          ``privacy.reconstruction.labels.recorded.f1`` (character sets from the CTC head's update)
footprint_eer       ``privacy.reconstruction.local_model.recorded.footprint_eer`` (speaker EER of the
                    recovered local models; 0.5 = chance); both need ``evaluate --threats reconstruction``
wer_under_attack    ``test.wer`` when ``attack`` is present (malicious clients)
backdoor_success    ``attack.backdoor_success.success_rate`` (fraction)
uplink_mb           ``communication.bytes_up_total`` / 1e6 (federated runs only)
client_s_per_round  ``client_seconds_per_round``
epsilon_user        ``privacy_budget.user_level_epsilon``
epsilon_sample      max of ``rounds[i].epsilon_sample_max`` (sample-level DP)
==================  ==============================================================
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

from speechfl.experiment.results import AttackSection


@dataclass(frozen=True)
class NA:
    """A value that is not applicable or not available, with the reason."""

    reason: str

    def __str__(self) -> str:
        return f"n/a: {self.reason}"


Value = Union[float, int, str, NA]


def dig(results: Optional[dict], path: str, reason: str) -> Value:
    """``results[a][b]...`` for ``path='a.b...'``; :class:`NA` (``reason``) if any step is missing or null."""
    node = results
    for key in path.split("."):
        if not isinstance(node, dict) or node.get(key) is None:
            return NA(reason)
        node = node[key]
    return node


def _privacy(results: dict, section: str, key: str) -> Value:
    """``privacy.<section>.<key>``, or why it is absent (not evaluated / skipped by the evaluator)."""
    if not isinstance(results.get("privacy"), dict):
        return NA("not evaluated")
    sec = results["privacy"].get(section)
    if not isinstance(sec, dict):
        return NA(f"no {section} result")
    if "skipped" in sec:
        return NA(f"skipped: {sec['skipped']}")
    parts = key.split(".")
    return dig(sec, key, f"{section} has no {parts[-1]}")


def _gender_groups(results: dict) -> Optional[dict]:
    groups = dig(results, "test.by_group.gender", "")
    return groups if isinstance(groups, dict) else None


def wer_gap(results: dict) -> Value:
    fair = dig(results, "fairness.gender", "")
    if isinstance(fair, dict):
        return dig(fair, "gap_abs", str(fair.get("note") or "gap not computable"))
    groups = _gender_groups(results)
    if groups is None:
        return NA("not evaluated")
    if "F" not in groups or "M" not in groups:
        return NA(f"test set has genders {sorted(groups)} only")
    return float(groups["F"]["wer"]) - float(groups["M"]["wer"])


def worst_group(results: dict) -> Value:
    fair = dig(results, "fairness.gender", "")
    if isinstance(fair, dict):
        return dig(fair, "worst_group", "no worst group")
    groups = _gender_groups(results)
    if not groups or len(groups) < 2:
        return NA("fewer than two groups" if groups else "not evaluated")
    return max(sorted(groups), key=lambda g: float(groups[g]["wer"]))


def speaker_wer_std(results: dict) -> Value:
    """``fairness.individual.std``: the flat per-speaker WER distribution ``speechfl evaluate`` writes."""
    if not isinstance(results.get("fairness"), dict):
        return NA("not evaluated")
    return dig(results, "fairness.individual.std", "no per-speaker WER spread")


def backdoor_success_rate(results: dict) -> Value:
    """``attack.backdoor_success.success_rate``, read through :class:`AttackSection` (a drift is 'unreadable')."""
    if not isinstance(results.get("attack"), dict):
        return NA("no attack")
    section = AttackSection.from_dict(results["attack"])
    if section.backdoor_success is None:
        return NA("no backdoor configured")
    return section.backdoor_success.success_rate


def _under_attack(results: dict, path: str, reason: str) -> Value:
    if not isinstance(results.get("attack"), dict):
        return NA("no attack")
    return dig(results, path, reason)


def uplink_mb(results: dict) -> Value:
    if results.get("kind") == "centralized":
        return NA("centralized: no uplink")
    b = dig(results, "communication.bytes_up_total", "no communication record")
    return b if isinstance(b, NA) else float(b) / 1e6


def epsilon_sample(results: dict) -> Value:
    eps = [r["epsilon_sample_max"] for r in results.get("rounds") or [] if r.get("epsilon_sample_max") is not None]
    return max(eps) if eps else NA("no sample-level DP")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str
    extract: Callable[[dict], Value]


COLUMNS = (
    Column("test_wer", "WER %", ".2f", lambda r: dig(r, "test.wer", "no test result")),
    Column("test_cer", "CER %", ".2f", lambda r: dig(r, "test.cer", "no test result")),
    Column("wer_gap_fm", "WER gap F-M", "+.2f", wer_gap),
    Column("worst_group", "worst group", "s", worst_group),
    Column("spk_wer_std", "spk WER std", ".2f", speaker_wer_std),
    Column("attacker_family", "attacker", "s", lambda r: _privacy(r, "representations", "strongest.family")),
    Column("attacker_top1", "attacker top-1", ".3f", lambda r: _privacy(r, "representations", "strongest.top1")),
    Column("attacker_chance", "chance", ".3f", lambda r: _privacy(r, "representations", "strongest.chance")),
    Column("attacker_eer", "attacker EER", ".3f", lambda r: _privacy(r, "representations", "strongest.eer")),
    Column("fbank_top1", "fbank top-1", ".3f", lambda r: _privacy(r, "fbank", "strongest.top1")),
    Column("linkage_acc", "linkage acc", ".3f", lambda r: _privacy(r, "linkage", "accuracy")),
    Column("source_inf_acc", "source inf acc", ".3f", lambda r: _privacy(r, "source_inference", "accuracy")),
    Column("membership_auc", "membership AUC", ".3f", lambda r: _privacy(r, "membership", "auc")),
    Column("charset_f1", "char-set F1", ".3f", lambda r: _privacy(r, "reconstruction", "labels.recorded.f1")),
    Column("footprint_eer", "footprint EER", ".3f",
           lambda r: _privacy(r, "reconstruction", "local_model.recorded.footprint_eer")),
    Column("wer_under_attack", "WER under attack %", ".2f", lambda r: _under_attack(r, "test.wer", "no test result")),
    Column("backdoor_success", "backdoor success", ".3f", backdoor_success_rate),
    Column("uplink_mb", "uplink MB", ".2f", uplink_mb),
    Column("client_s_per_round", "client s/round", ".2f",
           lambda r: dig(r, "client_seconds_per_round", "no rounds")),
    Column("epsilon_user", "eps (user)", ".2f",
           lambda r: dig(r, "privacy_budget.user_level_epsilon", "no user-level DP")),
    Column("epsilon_sample", "eps (sample)", ".2f", epsilon_sample),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)


@dataclass
class Row:
    """One sweep cell: its name, axis values, kind (federated/centralized), status and every column."""

    cell: str
    axes: Dict[str, str]
    kind: str
    status: str
    values: Dict[str, Value]


def extract_row(cell: str, axes: Dict[str, str], status: str, results: Optional[dict],
                missing_reason: str = "no results") -> Row:
    """A table row from one cell's results.json (``None``: every column is :class:`NA` with ``missing_reason``)."""
    if results is None:
        return Row(cell, dict(axes), "n/a", status, {c.key: NA(missing_reason) for c in COLUMNS})
    values: Dict[str, Value] = {}
    for col in COLUMNS:
        try:
            values[col.key] = col.extract(results)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # malformed section: say so
            values[col.key] = NA(f"unreadable ({type(exc).__name__})")
    return Row(cell, dict(axes), str(results.get("kind", "federated")), status, values)


@dataclass
class Table:
    axes: List[str]
    rows: List[Row]


def _fmt(value: Value, fmt: str) -> str:
    if isinstance(value, NA):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and fmt != "s":
        return format(float(value), fmt)
    return str(value)


def to_csv(table: Table) -> str:
    """CSV with full-precision numbers; a not-applicable value is written ``n/a: reason``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cell", *table.axes, "kind", "status", *COLUMN_KEYS])
    for row in table.rows:
        vals = [str(v) if isinstance(v, NA) else repr(v) if isinstance(v, float) else v
                for v in (row.values[k] for k in COLUMN_KEYS)]
        writer.writerow([row.cell, *(row.axes.get(a, "") for a in table.axes), row.kind, row.status, *vals])
    return buf.getvalue()


def to_markdown(table: Table, marks: Optional[Dict[str, str]] = None) -> str:
    """Markdown table; ``n/a`` values point to numbered notes below it. ``marks``: cell -> suffix (e.g. Pareto)."""
    marks = marks or {}
    notes: List[str] = []

    def cell_text(value: Value, fmt: str) -> str:
        if isinstance(value, NA):
            if value.reason not in notes:
                notes.append(value.reason)
            return f"n/a[{notes.index(value.reason) + 1}]"
        return _fmt(value, fmt).replace("|", "\\|")

    header = ["cell", *table.axes, "status", *(c.header for c in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        name = row.cell + (f" {marks[row.cell]}" if marks.get(row.cell) else "")
        cells = [name, *(row.axes.get(a, "") for a in table.axes), row.status,
                 *(cell_text(row.values[c.key], c.fmt) for c in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "n/a reasons:", ""]
        lines.extend(f"- [{i + 1}] {n}" for i, n in enumerate(notes))
    return "\n".join(lines) + "\n"


def format_value(value: Value, key: str) -> str:
    """Human-readable text of one table value (for HTML), using the column's format."""
    col = next((c for c in COLUMNS if c.key == key), None)
    if col is None:
        raise KeyError(f"unknown column {key!r}; valid columns: {', '.join(COLUMN_KEYS)}")
    return _fmt(value, col.fmt)


def rows_from(entries: Sequence[dict], load: Callable[[dict], Optional[dict]]) -> List[Row]:
    """Rows for sweep index entries (``name``, ``axes``, ``status``); ``load(entry)`` gives results or None."""
    rows = []
    for e in entries:
        status = e.get("status", "pending")
        row = extract_row(e["name"], e.get("axes") or {}, status, load(e),
                          "run failed" if status == "failed" else "no results yet")
        if status == "evaluate failed":
            row.values = {k: NA("evaluation failed") if v == NA("not evaluated") else v for k, v in row.values.items()}
        rows.append(row)
    return rows

"""Record validation: value parsing, the rules that quarantine a record, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from profilecast.sources.catalog import EntitySpec


def parse_timestamp(value: Any) -> datetime | None:
    """Parse ISO-8601 text or Unix seconds/milliseconds into an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if value != value:  # NaN, and pandas' NaT (a datetime that equals nothing)
        return None
    if isinstance(value, datetime):  # typed sources (Parquet) hand over datetimes
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        num = float(value)
        if num > 1e11:  # milliseconds
            num /= 1000.0
        try:
            return datetime.fromtimestamp(num, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def format_timestamp(ts: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (isoformat: strftime is slower per row)."""
    utc_ts = ts.astimezone(UTC)
    if utc_ts.year < 1000:  # strftime and isoformat pad years before 1000 differently
        return utc_ts.strftime("%Y-%m-%d %H:%M:%S.%f")
    return utc_ts.replace(tzinfo=None).isoformat(" ", "microseconds")


def parse_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        # Compact and in the record's own key order: the text DuckDB writes for the same
        # value, so the vectorised path (vectorised.py) and this one agree.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Validated:
    row: dict[str, Any] | None = None
    reason: str | None = None
    record_ts: datetime | None = None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: What a JSON text needs to hold for a parsed value to hold a control character: an escape
#: \u0000-\u001f or \u007f-\u009f (a superset: \u0070-\u007e too), \b or \f, or DEL and C1
#: characters as they are. A line without any is clean, and its records need no walk.
_JSON_CONTROL = re.compile(r"\\u00[01789][0-9a-fA-F]|\\[bf]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def json_text_is_clean(text: str | None) -> bool:
    """True when the JSON text ``text`` cannot hold a control character (see _JSON_CONTROL)."""
    return text is not None and _JSON_CONTROL.search(text) is None


_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


SEGMENT_REQUIRED = {
    "track": ("event",),
    "identify": (),
    "page": (),
    "screen": (),
    "group": ("groupId",),
    "alias": ("previousId", "userId"),
}


def control_character(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a control character (NUL included), or None."""
    if isinstance(value, str):
        m = _CONTROL.search(value)
        return f"{path or 'value'} (U+{ord(m.group()):04X} at {m.start()})" if m else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = control_character(k, path) if isinstance(k, str) else None
            found = found or control_character(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = control_character(v, f"{path}[{i}]")
            if found:
                return found
    return None


def valid_email(value: str) -> bool:
    return bool(_EMAIL.match(value.strip())) and len(value.strip()) <= 254


def _rule_violation(spec: EntitySpec, present: dict[str, Any], clean: bool = False) -> str | None:
    """Why a record breaks its source's own rules (control characters, email syntax, the
    Segment spec's required fields), or None. ``clean``: the JSON text the record was parsed
    from holds no control character (json_text_is_clean), so its values need no walk."""
    bad = None if clean else control_character(present)
    if bad:
        return f"control character in {bad}"
    if spec.rules == "segment":
        kind = present.get("type")
        if not isinstance(kind, str) or not kind:
            return "Segment spec: missing type"
        if kind not in SEGMENT_REQUIRED:
            return f"Segment spec: unknown type {kind!r}"
        missing = [f for f in SEGMENT_REQUIRED[kind] if not str(present.get(f) or "").strip()]
        if missing:
            return f"Segment spec: {kind} call without {', '.join(missing)}"
    return None


def record_timestamp(
    spec: EntitySpec, present: dict[str, Any], parsed: dict[str, datetime | None] | None = None
) -> datetime | None:
    """The record's watermark: the latest parseable value among ``spec.watermark``
    (``parsed``: timestamps of the record already parsed, by column)."""
    parsed = parsed or {}
    stamps = [parsed[c] if c in parsed else parse_timestamp(present.get(c)) for c in spec.watermark]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def _present(spec: EntitySpec, record: dict[str, Any]) -> dict[str, Any]:
    present = {k: v for k, v in record.items() if k is not None}
    if (
        spec.rules == "segment"
        and not present.get("type")
        and present.get("action") in SEGMENT_REQUIRED
    ):
        present["type"] = present.pop("action")  # the HTTP API's legacy name for type
    return present


def _email_only_identifier(spec: EntitySpec, present: dict[str, Any]) -> str | None:
    """Why the record must go when an invalid address is all that identifies it."""
    for col in spec.email_fields:
        value = present.get(col)
        if value is None or not str(value).strip() or valid_email(str(value)):
            continue
        if not any(str(present.get(k) or "").strip() for k in spec.identifiers if k != col):
            return f"invalid email syntax in {col}: {str(value).strip()[:80]!r}"
    return None


def rejection(spec: EntitySpec, record: Any, clean: bool = False) -> str | None:
    """Why a record would be quarantined, or None: the checks of :func:`validate_record`
    without building the row (the collector answers with this before journaling)."""
    if not isinstance(record, dict):
        return f"not an object (got {type(record).__name__})"
    present = _present(spec, record)
    if not any(str(present.get(k) or "").strip() for k in spec.identifiers):
        return f"no identifier: needs one of {', '.join(spec.identifiers)}"
    return _rule_violation(spec, present, clean) or _email_only_identifier(spec, present)


def validate_record(spec: EntitySpec, record: Any, clean: bool = False) -> Validated:
    """Turn one parsed record into a raw row, or say why it cannot be used.

    A rejected record keeps its watermark when it has one, so a dated bad row belongs to one
    interval like a good one and is quarantined once, not in every run. ``clean``: the
    record's JSON text holds no control character (json_text_is_clean).
    """
    if not isinstance(record, dict):
        return Validated(reason=f"not an object (got {type(record).__name__})")
    present = _present(spec, record)
    parsed = {c: parse_timestamp(present[c]) for c in spec.timestamps
              if present.get(c) not in (None, "")}  # fmt: skip
    record_ts = record_timestamp(spec, present, parsed)
    reason = rejection(spec, present, clean)
    if reason:
        return Validated(reason=reason, record_ts=record_ts)
    flags: list[str] = []
    rejected: dict[str, str] = {}
    for col in spec.email_fields:
        value = present.get(col)
        if value is None or not str(value).strip() or valid_email(str(value)):
            continue
        # Cleaned: the record loads without the address; the value is kept in _extra.
        rejected[f"{col}_rejected"] = str(value)
        present[col] = None
        flags.append(f"{col}:invalid_email")
    row: dict[str, Any] = {}
    for col in spec.columns:
        value = present.get(col)
        if col in spec.timestamps and value not in (None, ""):
            ts = parsed[col]
            if ts is None:
                flags.append(f"{col}:invalid_timestamp")
                row[col] = None
            else:
                row[col] = format_timestamp(ts)
            continue
        if col in spec.dates and value not in (None, ""):
            d = parse_date(value)
            if d is None:
                flags.append(f"{col}:invalid_date")
                row[col] = None
            else:
                row[col] = d.isoformat()
            continue
        text = to_text(value)
        row[col] = text if text != "" else None
    if spec.record_id and not row.get(spec.record_id):
        digest = hashlib.sha256(
            json.dumps(present, sort_keys=True, default=str).encode()
        ).hexdigest()
        row[spec.record_id] = f"h_{digest[:24]}"
        flags.append(f"{spec.record_id}:derived")
    extra = {k: v for k, v in present.items() if k not in spec.columns}
    extra.update(rejected)
    row["_extra"] = json.dumps(extra, ensure_ascii=False, default=str) if extra else None
    row["_flags"] = ",".join(flags) if flags else None
    row["_record_ts"] = format_timestamp(record_ts) if record_ts else None
    return Validated(row=row, record_ts=record_ts)


def quarantine_fingerprint(spec: EntitySpec, reason: str, payload: str) -> str:
    text = f"{spec.source}\x1f{spec.entity}\x1f{reason}\x1f{payload}"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()

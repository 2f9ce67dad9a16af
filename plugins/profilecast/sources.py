"""Source extraction: file drops -> validated records -> landing zone (Parquet) -> raw tables.

Two steps, so that extraction (no warehouse writes) can run in parallel while the raw load
is serialised by the warehouse pool:

* :func:`extract` reads one source's drop for a data interval, keeps the records whose
  watermark falls in the interval's window (plus a lookback), validates them and writes
  ``landing/source=<s>/entity=<e>/date=<ds>/`` with ``part-*.parquet``, ``quarantine.parquet``
  and ``manifest.json`` (row counts).
* :func:`load_raw` replaces that batch in ``raw.<source>__<entity>``, ``quarantine`` and
  ``load_batches``; rerunning an interval therefore replaces, never duplicates.

Nothing is dropped silently: every record read is either loaded or quarantined with a reason
(``rows_read = rows_loaded + rows_quarantined`` per batch); records outside the window are
counted as ``rows_outside_window`` and belong to other intervals.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from profilecast.config import Settings
from profilecast.dialects import normalize
from profilecast.interval import Interval

CHUNK_ROWS = 100_000
META_COLUMNS = ("_extra", "_flags", "_record_ts", "_source_file", "_line")


class SourceError(RuntimeError):
    """A drop that cannot be read at all (missing required column, missing drop, ...)."""


@dataclass(frozen=True)
class EntitySpec:
    source: str
    entity: str
    columns: tuple[str, ...]
    #: a record needs at least one of these non-empty, or it is quarantined
    identifiers: tuple[str, ...]
    #: the watermark is the latest parseable value among these (empty: full snapshot)
    watermark: tuple[str, ...] = ()
    #: CSV drops must carry these columns in their header
    required_columns: tuple[str, ...] = ()
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    #: the record's own id; derived from a hash of the payload when absent
    record_id: str | None = None
    #: fields holding an email address: a value that is not one quarantines the record
    email_fields: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return f"{self.source}__{self.entity}"


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        "crm", "contacts",
        ("contact_id", "email", "first_name", "last_name", "phone", "company", "job_title",
         "industry", "street", "city", "postcode", "state", "country", "birth_date",
         "lifecycle_stage", "created_at", "updated_at"),
        identifiers=("contact_id", "email"),
        watermark=("updated_at", "created_at"),
        required_columns=("contact_id", "email"),
        timestamps=("created_at", "updated_at"),
        dates=("birth_date",),
        record_id="contact_id",
        email_fields=("email",),
    ),
    EntitySpec(
        "crm", "companies",
        ("company_id", "name", "domain", "industry", "employees", "country"),
        identifiers=("company_id",),
        required_columns=("company_id", "name"),
        record_id="company_id",
    ),
    EntitySpec(
        "crm", "tickets",
        ("ticket_id", "contact_id", "email", "subject", "body", "product", "status", "priority",
         "created_at", "updated_at", "messages"),
        identifiers=("ticket_id",),
        watermark=("updated_at", "created_at"),
        timestamps=("created_at", "updated_at"),
        record_id="ticket_id",
        email_fields=("email",),
    ),
    EntitySpec(
        "billing", "customers",
        ("id", "email", "name", "phone", "currency", "created", "address", "metadata", "deleted",
         "updated"),
        identifiers=("id",), watermark=("updated", "created"), timestamps=("created", "updated"),
        record_id="id", email_fields=("email",),
    ),
    EntitySpec(
        "billing", "subscriptions",
        ("id", "customer", "status", "created", "current_period_start", "current_period_end",
         "canceled_at", "currency", "items", "updated"),
        identifiers=("id",), watermark=("updated", "created", "canceled_at"),
        timestamps=("created", "current_period_start", "current_period_end", "canceled_at",
                    "updated"),
        record_id="id",
    ),
    EntitySpec(
        "billing", "invoices",
        ("id", "customer", "subscription", "status", "amount_due", "amount_paid", "currency",
         "created", "lines"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
    ),
    EntitySpec(
        "billing", "charges",
        ("id", "customer", "amount", "amount_refunded", "currency", "status", "paid", "invoice",
         "created", "metadata"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
    ),
    EntitySpec(
        "billing", "refunds",
        ("id", "charge", "amount", "currency", "status", "reason", "created"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
    ),
    EntitySpec(
        "web", "events",
        ("messageId", "type", "event", "name", "anonymousId", "userId", "timestamp",
         "receivedAt", "properties", "traits", "context"),
        identifiers=("anonymousId", "userId"),
        watermark=("timestamp", "receivedAt"),
        timestamps=("timestamp", "receivedAt"),
        record_id="messageId",
    ),
    EntitySpec(
        "esp", "events",
        ("sg_event_id", "email", "event", "timestamp", "sg_message_id", "category", "url",
         "reason", "type", "asm_group_id"),
        identifiers=("email",),
        watermark=("timestamp",),
        timestamps=("timestamp",),
        record_id="sg_event_id",
        email_fields=("email",),
    ),
)  # fmt: skip


def specs_for(source: str) -> list[EntitySpec]:
    return [s for s in ENTITIES if s.source == source]


# --------------------------------------------------------------------------------------------
# Value parsing (pure functions)
# --------------------------------------------------------------------------------------------
def parse_timestamp(value: Any) -> datetime | None:
    """Parse ISO-8601 text or Unix seconds/milliseconds into an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
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
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


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
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Validated:
    row: dict[str, Any] | None = None
    reason: str | None = None
    record_ts: datetime | None = None


#: C0 and C1 control characters other than tab, line feed and carriage return (NUL included).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: A pragmatic address check (RFC 5322's dot-atom local part, a dotted domain): what an ESP
#: accepts. Surrounding whitespace and case are normalised downstream, not rejected here.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
#: Fields the Segment spec requires per call type (beyond userId/anonymousId).
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


def _rule_violation(spec: EntitySpec, present: dict[str, Any]) -> str | None:
    """Why a record breaks its source's own rules (control characters, email syntax, the
    Segment spec's required fields), or None."""
    bad = control_character(present)
    if bad:
        return f"control character in {bad}"
    if spec.source == "web" and spec.entity == "events":
        kind = present.get("type")
        if not isinstance(kind, str) or not kind:
            return "Segment spec: missing type"
        if kind not in SEGMENT_REQUIRED:
            return f"Segment spec: unknown type {kind!r}"
        missing = [f for f in SEGMENT_REQUIRED[kind] if not str(present.get(f) or "").strip()]
        if missing:
            return f"Segment spec: {kind} call without {', '.join(missing)}"
    return None


def record_timestamp(spec: EntitySpec, present: dict[str, Any]) -> datetime | None:
    """The record's watermark: the latest parseable value among ``spec.watermark``."""
    stamps = [parse_timestamp(present.get(c)) for c in spec.watermark]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def validate_record(spec: EntitySpec, record: Any) -> Validated:
    """Turn one parsed record into a raw row, or say why it cannot be used.

    A rejected record keeps its watermark when it has one, so a dated bad row belongs to one
    interval like a good one and is quarantined once, not in every run.
    """
    if not isinstance(record, dict):
        return Validated(reason=f"not an object (got {type(record).__name__})")
    present = {k: v for k, v in record.items() if k is not None}
    if (
        spec.source == "web"
        and not present.get("type")
        and present.get("action") in SEGMENT_REQUIRED
    ):
        present["type"] = present.pop("action")  # the HTTP API's legacy name for type
    record_ts = record_timestamp(spec, present)
    if not any(str(present.get(k) or "").strip() for k in spec.identifiers):
        return Validated(
            reason=f"no identifier: needs one of {', '.join(spec.identifiers)}",
            record_ts=record_ts,
        )
    violation = _rule_violation(spec, present)
    if violation:
        return Validated(reason=violation, record_ts=record_ts)
    flags: list[str] = []
    rejected: dict[str, str] = {}
    for col in spec.email_fields:
        value = present.get(col)
        if value is None or not str(value).strip() or valid_email(str(value)):
            continue
        others = [k for k in spec.identifiers if k != col and str(present.get(k) or "").strip()]
        if not others:  # the address is what identifies the record: nothing left to load
            return Validated(
                reason=f"invalid email syntax in {col}: {str(value).strip()[:80]!r}",
                record_ts=record_ts,
            )
        # Cleaned: the record loads without the address; the value is kept in _extra.
        rejected[f"{col}_rejected"] = str(value)
        present[col] = None
        flags.append(f"{col}:invalid_email")
    row: dict[str, Any] = {}
    for col in spec.columns:
        value = present.get(col)
        if col in spec.timestamps and value not in (None, ""):
            ts = parse_timestamp(value)
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


# --------------------------------------------------------------------------------------------
# Reading drops
# --------------------------------------------------------------------------------------------
FORMATS = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")


@dataclass
class RawRecord:
    source_file: str
    line: int
    record: Any = None
    error: str | None = None
    payload: str | None = None


def _fmt(name: str) -> str | None:
    base = name[:-3] if name.endswith(".gz") else name
    for ext in FORMATS:
        if base.endswith(ext):
            return ext
    return None


def list_drop_files(root: str, source: str, entity: str) -> list[str]:
    """Files for ``<source>/<entity>.<ext>`` or the parts under ``<source>/<entity>/``."""
    if root.startswith("s3://"):
        return _s3_list(root, source, entity)
    base = Path(root) / source
    found: list[Path] = []
    if base.is_dir():
        found += [p for p in base.iterdir() if p.is_file() and p.name.split(".")[0] == entity]
        folder = base / entity
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.is_file()]
    return sorted(str(p) for p in found if _fmt(p.name))


def _s3_split(url: str) -> tuple[str, str]:
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def s3_client():  # -> botocore client
    import boto3

    return boto3.client("s3")


def _s3_list(root: str, source: str, entity: str) -> list[str]:
    bucket, prefix = _s3_split(root.rstrip("/") + f"/{source}/")
    client = s3_client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            name = rel.split("/")[0]
            if (name.split(".")[0] == entity or rel.startswith(f"{entity}/")) and _fmt(rel):
                keys.append(f"s3://{bucket}/{obj['Key']}")
    return sorted(keys)


def _open_bytes(path: str) -> bytes:
    if path.startswith("s3://"):
        bucket, key = _s3_split(path)
        data = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        data = Path(path).read_bytes()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def _open_text(path: str) -> io.TextIOBase:
    if not path.startswith("s3://") and not path.endswith(".gz"):
        return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    if not path.startswith("s3://"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(io.BytesIO(_open_bytes(path)), encoding="utf-8-sig", newline="")


def read_records(path: str, spec: EntitySpec) -> Iterator[RawRecord]:
    """Yield every record of one file, with a parse error instead of a record when broken."""
    fmt = _fmt(path)
    if fmt == ".csv":
        yield from _read_csv(path, spec)
    elif fmt in (".jsonl", ".ndjson"):
        with _open_text(path) as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield RawRecord(path, n, error=f"invalid JSON: {exc.msg}", payload=line[:10000])
                    continue
                yield from _explode(path, n, obj, line)
    elif fmt == ".json":
        try:
            obj = json.loads(_open_bytes(path).decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(obj, dict):
            for key in ("data", "records", "results"):  # API list / sObject tree / HubSpot
                if isinstance(obj.get(key), list):
                    obj = obj[key]
                    break
        items = obj if isinstance(obj, list) else [obj]
        for n, item in enumerate(items, start=1):
            yield from _explode(path, n, item, None)
    elif fmt == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(_open_bytes(path)))
        for n, item in enumerate(table.to_pylist(), start=1):
            yield RawRecord(path, n, record=item)


def _explode(path: str, n: int, obj: Any, line: str | None) -> Iterator[RawRecord]:
    """A Segment batch envelope ``{"batch": [...]}`` holds several events."""
    if isinstance(obj, dict) and isinstance(obj.get("batch"), list) and "type" not in obj:
        shared = {k: v for k, v in obj.items() if k != "batch"}
        for item in obj["batch"]:
            if isinstance(item, dict):
                merged = {**{k: v for k, v in shared.items() if k in ("context",)}, **item}
                yield RawRecord(path, n, record=merged)
            else:
                yield RawRecord(path, n, record=item)
        return
    yield RawRecord(path, n, record=obj, payload=line)


def _read_csv(path: str, spec: EntitySpec) -> Iterator[RawRecord]:
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        mapped = normalize(spec.source, spec.entity, {h: h for h in header})
        missing = [c for c in spec.required_columns if c not in header and c not in mapped]
        if missing:
            raise SourceError(
                f"{path}: required column(s) {', '.join(missing)} missing from the header "
                f"(found: {', '.join(header)})"
            )
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield RawRecord(
                    path,
                    line,
                    error=f"row has {len(values)} fields, header has {len(header)}",
                    payload=json.dumps(values, ensure_ascii=False),
                )
                continue
            yield RawRecord(path, line, record=dict(zip(header, values, strict=True)))


# --------------------------------------------------------------------------------------------
# Extraction into the landing zone
# --------------------------------------------------------------------------------------------
@dataclass
class Window:
    start: datetime | None  # None: no lower bound
    end: datetime

    def contains(self, ts: datetime | None) -> bool:
        if ts is None:
            return True  # undated records (snapshots) belong to every batch
        return (self.start is None or ts >= self.start) and ts < self.end

    def is_late(self, ts: datetime | None) -> bool:
        """A record dated at or after the window's end belongs to a later interval."""
        return ts is not None and ts >= self.end


@dataclass
class FileRead:
    """What one batch did with one drop file (the ``load_files`` ledger)."""

    path: str
    fingerprint: str
    mode: str  # "full", "rest", "lookback" or "skipped": see plan_file
    read_from: str | None = None  # the lower bound the records were read from (None: none)
    rows_read: int = 0
    rows_later: int = 0  # records dated after the window: the file is not done with

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


FILE_READ_COLUMNS = ("path", "fingerprint", "mode", "read_from", "rows_read", "rows_later")


@dataclass
class BatchResult:
    batch_id: str
    source: str
    entity: str
    landing_dir: str
    files: list[str] = field(default_factory=list)
    file_reads: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_outside_window: int = 0
    rows_previously_quarantined: int = 0
    window_start: str | None = None
    window_end: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class History:
    """What earlier batches of one entity did: the input to an incremental extraction.

    ``batches`` are load_batches rows by batch id, ``files`` the load_files rows and
    ``quarantined`` the fingerprints of quarantined records with the batch that holds them.
    """

    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)

    def for_entity(self, spec: EntitySpec) -> History:
        return History(
            {k: b for k, b in self.batches.items()
             if b["source"] == spec.source and b["entity"] == spec.entity},
            [f for f in self.files if f["source"] == spec.source and f["entity"] == spec.entity],
            self.quarantined,
        )  # fmt: skip


def batch_id_for(spec: EntitySpec, interval: Interval) -> str:
    return f"{spec.source}__{spec.entity}__{interval.stamp}"


def landing_dir_for(settings: Settings, spec: EntitySpec, interval: Interval) -> Path:
    return (
        settings.landing_dir
        / f"source={spec.source}"
        / f"entity={spec.entity}"
        / f"date={interval.ds}"
    )


def choose_window(
    history: History, batch_id: str, interval: Interval, lookback_days: int
) -> Window:
    """The first load takes all history; later ones their interval plus a lookback.

    A rerun of an interval that was already loaded reuses that batch's window, so rerunning
    the very first interval still reloads all history.
    """
    previous = history.batches.get(batch_id)
    if previous is not None:
        start = previous.get("window_start")
        return Window(parse_timestamp(start) if start else None, interval.end)
    if not any(b != batch_id for b in history.batches):
        return Window(None, interval.end)
    return Window(interval.lookback(lookback_days), interval.end)


def file_fingerprint(path: str) -> str:
    """Size and modification time (local) or size and ETag (S3): changes when a file does."""
    if path.startswith("s3://"):
        bucket, key = _s3_split(path)
        head = s3_client().head_object(Bucket=bucket, Key=key)
        return f"{head['ContentLength']}:{head['ETag'].strip(chr(34))}"
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def plan_file(
    path: str, fingerprint: str, history: History, batch_id: str, window: Window
) -> tuple[str, Window | None]:
    """How to read a drop file, from the batches that read it before (this one excluded).

    ``skipped``: another batch read this very file (same fingerprint) to its end, so all its
    records are in raw already. ``rest``: the same file was read before, but only up to an
    earlier interval's end (it held records dated later): only those later records are new.
    ``lookback``: the file has changed since it was read (a snapshot rewritten in place):
    the window's records are taken. ``full``: a file never read: every record up to the
    window's end, however old (late drops are not lost to the lookback).
    """
    own = [f for f in history.files if f["path"] == path and f["batch_id"] == batch_id]
    if own:
        # A rerun replaces this batch's rows, so it must hold again what it held: the same
        # file read from the same lower bound (a changed file: the window's records).
        before = own[0]
        if before["mode"] == "skipped":
            return "skipped", None
        if before["fingerprint"] != fingerprint:
            return "lookback", window
        start = parse_timestamp(before.get("read_from")) if before.get("read_from") else None
        return str(before["mode"]), Window(start, window.end)
    earlier = [
        f for f in history.files
        if f["path"] == path and f["batch_id"] != batch_id and f["mode"] != "skipped"
    ]  # fmt: skip
    same = [f for f in earlier if f["fingerprint"] == fingerprint]
    if any(int(f["rows_later"] or 0) == 0 for f in same):
        return "skipped", None
    if same:
        ends = [history.batches.get(f["batch_id"], {}).get("window_end") for f in same]
        ends = [parse_timestamp(e) for e in ends if e]
        if ends:
            return "rest", Window(max(e for e in ends if e is not None), window.end)
        return "full", Window(None, window.end)
    if earlier:
        return "lookback", window
    return "full", Window(None, window.end)


def quarantine_fingerprint(spec: EntitySpec, reason: str, payload: str) -> str:
    text = f"{spec.source}\x1f{spec.entity}\x1f{reason}\x1f{payload}"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _write_parquet(rows: list[dict[str, Any]], path: Path, columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {c: pa.array([r.get(c) for r in rows], type=pa.string()) for c in columns}
    pq.write_table(pa.table(arrays), path, compression="zstd")


QUARANTINE_COLUMNS = [
    "source", "entity", "batch_id", "source_file", "line_no", "reason", "raw_payload",
    "fingerprint", "record_ts",
]  # fmt: skip


def extract_entity(
    settings: Settings,
    spec: EntitySpec,
    interval: Interval,
    history: History | None = None,
    files: Iterable[str] | None = None,
    records_fn: Callable[[Window], Iterable[RawRecord]] | None = None,
) -> BatchResult:
    """Read one entity's drop (files, or an API through ``records_fn``) into the landing zone.

    Counts: ``rows_read = rows_loaded + rows_quarantined``. Records dated outside the window
    (``rows_outside_window``) and bad records already quarantined by another batch
    (``rows_previously_quarantined``) belong to other batches and are not read again.
    """
    history = (history or History()).for_entity(spec)
    bid = batch_id_for(spec, interval)
    window = choose_window(history, bid, interval, settings.lookback_days)
    if records_fn is not None:
        files = []
    else:
        files = (
            list(files)
            if files is not None
            else list_drop_files(settings.sources, spec.source, spec.entity)
        )
    out = landing_dir_for(settings, spec, interval)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    result = BatchResult(
        batch_id=bid,
        source=spec.source,
        entity=spec.entity,
        landing_dir=str(out),
        files=files,
        window_start=format_timestamp(window.start) if window.start else None,
        window_end=format_timestamp(window.end),
    )
    columns = [*spec.columns, *META_COLUMNS]
    rows: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    part = 0

    def flush() -> None:
        nonlocal rows, part
        if rows:
            _write_parquet(rows, out / f"part-{part:05d}.parquet", columns)
            part += 1
            rows = []

    def take(raw: RawRecord, file_window: Window, read: FileRead | None) -> None:
        if raw.error:
            checked = Validated(reason=raw.error)
        else:
            checked = validate_record(spec, normalize(spec.source, spec.entity, raw.record))
        if not file_window.contains(checked.record_ts):
            result.rows_outside_window += 1
            if read is not None and file_window.is_late(checked.record_ts):
                read.rows_later += 1
            return
        if checked.row is None:
            q = _q(spec, result, raw, checked.reason or "invalid", checked.record_ts)
            holder = history.quarantined.get(q["fingerprint"])
            if holder is not None and holder != bid:
                result.rows_previously_quarantined += 1
                return
            result.rows_read += 1
            if read is not None:
                read.rows_read += 1
            quarantined.append(q)
            return
        result.rows_read += 1
        if read is not None:
            read.rows_read += 1
        checked.row["_source_file"] = raw.source_file
        checked.row["_line"] = str(raw.line)
        rows.append(checked.row)
        result.rows_loaded += 1
        if len(rows) >= CHUNK_ROWS:
            flush()

    if records_fn is not None:
        for raw in records_fn(window):
            take(raw, window, None)
    for path in files:
        fp = file_fingerprint(path)
        mode, file_window = plan_file(path, fp, history, bid, window)
        read = FileRead(path, fp, mode)
        if file_window is not None and file_window.start is not None:
            read.read_from = format_timestamp(file_window.start)
        if file_window is not None:
            for raw in read_records(path, spec):
                take(raw, file_window, read)
        result.file_reads.append(read.as_dict())
    flush()
    result.rows_quarantined = len(quarantined)
    _write_parquet(quarantined, out / "quarantine.parquet", QUARANTINE_COLUMNS)
    (out / "manifest.json").write_text(json.dumps(result.as_dict(), indent=2))
    landing_url = _landing_url()
    if landing_url:
        result.landing_dir = publish_landing(out, landing_url, spec, interval)
    return result


def _landing_url() -> str | None:
    """PROFILECAST_LANDING_URL=s3://bucket/prefix puts the landing zone on S3."""
    import os

    url = os.environ.get("PROFILECAST_LANDING_URL", "")
    return url.rstrip("/") if url.startswith("s3://") else None


def publish_landing(local: Path, url: str, spec: EntitySpec, interval: Interval) -> str:
    """Upload a batch's landing folder to S3 (parts first, manifest last); replace old parts."""
    prefix_url = f"{url}/source={spec.source}/entity={spec.entity}/date={interval.ds}"
    bucket, prefix = _s3_split(prefix_url + "/")
    client = s3_client()
    stale = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    for obj in stale:
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    files = sorted(local.glob("*.parquet")) + [local / "manifest.json"]
    for path in files:
        client.upload_file(str(path), bucket, prefix + path.name,
                           ExtraArgs={"ServerSideEncryption": "AES256"})  # fmt: skip
    return prefix_url


def _local_landing(landing_dir: str) -> Path:
    """A local folder holding the batch's landing files (downloaded when they live on S3)."""
    if not landing_dir.startswith("s3://"):
        return Path(landing_dir)
    import tempfile

    bucket, prefix = _s3_split(landing_dir.rstrip("/") + "/")
    target = Path(tempfile.mkdtemp(prefix="profilecast-landing-"))
    client = s3_client()
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        client.download_file(bucket, obj["Key"], str(target / obj["Key"][len(prefix) :]))
    return target


def _q(
    spec: EntitySpec,
    result: BatchResult,
    raw: RawRecord,
    reason: str,
    record_ts: datetime | None = None,
) -> dict[str, Any]:
    payload = raw.payload
    if payload is None:
        payload = json.dumps(raw.record, ensure_ascii=False, default=str)
    payload = payload.rstrip("\r\n")[:10000]
    return {
        "source": spec.source,
        "entity": spec.entity,
        "batch_id": result.batch_id,
        "source_file": raw.source_file,
        "line_no": str(raw.line),
        "reason": reason,
        "raw_payload": payload,
        "fingerprint": quarantine_fingerprint(spec, reason, payload),
        "record_ts": format_timestamp(record_ts) if record_ts else None,
    }


def load_history(wh: Any, source: str | None = None) -> History:
    """What earlier batches did (empty when nothing has been loaded yet)."""
    history = History()
    if wh.table_exists("load_batches"):
        frame = wh.df("select * from load_batches")
        history.batches = {r["batch_id"]: r for r in frame.to_dict("records")}
    if wh.table_exists("load_files"):
        where, params = ("where source = %s", (source,)) if source else ("", ())
        history.files = wh.df(f"select * from load_files {where}", params).to_dict("records")
    if wh.table_exists("quarantine") and "fingerprint" in wh.columns("quarantine"):
        where, params = ("and source = %s", (source,)) if source else ("", ())
        history.quarantined = {
            fp: bid
            for fp, bid in wh.query(
                f"select fingerprint, min(batch_id) from quarantine "
                f"where fingerprint is not null {where} group by fingerprint",
                params,
            )
        }
    return history


def connector_for(source: str) -> str:
    """``files`` (default) or ``api``, from PROFILECAST_CONNECTORS=billing=api,crm=api."""
    import os

    for part in os.environ.get("PROFILECAST_CONNECTORS", "").split(","):
        name, _, kind = part.strip().partition("=")
        if name == source and kind:
            if kind not in ("files", "api"):
                raise SourceError(
                    f"PROFILECAST_CONNECTORS: unknown connector {kind!r} for {source}"
                )
            return kind
    return "files"


def api_records_fn(spec: EntitySpec) -> Callable[[Window], Iterable[RawRecord]] | None:
    """A record source for entities that have an API extractor (else None: files).

    Extraction is incremental by update time: the first load lists every object; later
    ones read Stripe's events feed (every change to an old object arrives as an event with
    the object's new state) and HubSpot's search by ``lastmodifieddate``.
    """
    from profilecast import api

    if spec.source == "billing" and spec.entity in api.STRIPE_ENTITIES:
        conn_id, lister = "billing_api", "stripe"
    elif spec.source == "crm" and spec.entity in api.HUBSPOT_ENTITIES:
        conn_id, lister = "crm_api", "hubspot"
    else:
        return None

    def records(window: Window) -> Iterator[RawRecord]:
        conn = api.get_connection(conn_id)
        if lister == "stripe":
            if window.start is None:
                items = api.stripe_list(conn, spec.entity)
                path = api.STRIPE_ENTITIES[spec.entity]
            else:
                items = api.stripe_changed(conn, spec.entity, window.start, window.end)
                path = "/v1/events"
        elif window.start is None:
            items = api.hubspot_list(conn, spec.entity)
            path = api.HUBSPOT_ENTITIES[spec.entity]
        else:
            items = api.hubspot_modified(conn, spec.entity, window.start, window.end)
            path = api.HUBSPOT_ENTITIES[spec.entity] + "/search"
        for n, item in enumerate(items, start=1):
            yield RawRecord(f"api:{conn.base_url}{path}", n, record=item)

    return records


def extract_source(
    settings: Settings,
    source: str,
    interval: Interval,
    history: History,
) -> list[dict[str, Any]]:
    """Extract every entity of one source; returns the batch manifests."""
    results = []
    any_files = False
    use_api = connector_for(source) == "api"
    for spec in specs_for(source):
        records_fn = api_records_fn(spec) if use_api else None
        files = [] if records_fn else list_drop_files(settings.sources, spec.source, spec.entity)
        any_files = any_files or bool(files) or records_fn is not None
        results.append(
            extract_entity(
                settings, spec, interval, history=history, files=files, records_fn=records_fn
            ).as_dict()
        )
    if not any_files and source in settings.required_sources:
        raise SourceError(
            f"source '{source}' has no files under {settings.sources}/{source}/ and is listed "
            "in PROFILECAST_REQUIRED_SOURCES"
        )
    return results


# --------------------------------------------------------------------------------------------
# Raw load
# --------------------------------------------------------------------------------------------
def load_raw(wh: Any, manifests: Iterable[dict[str, Any]], loaded_at: datetime) -> list[dict]:
    """Replace each batch in its raw table, the quarantine table and load_batches."""
    import pandas as pd
    import pyarrow.parquet as pq

    done = []
    for m in manifests:
        spec = next(s for s in ENTITIES if s.source == m["source"] and s.entity == m["entity"])
        folder = _local_landing(m["landing_dir"])
        parts = sorted(str(p) for p in folder.glob("part-*.parquet"))
        loaded = wh.load_parquet(
            f"{wh.raw_schema}.{spec.table}",
            parts,
            [*spec.columns, *META_COLUMNS],
            {"_batch_id": m["batch_id"], "_loaded_at": format_timestamp(loaded_at)},
            key="_batch_id",
        )
        q = pq.read_table(folder / "quarantine.parquet").to_pandas()
        if str(m["landing_dir"]).startswith("s3://"):
            import shutil

            shutil.rmtree(folder, ignore_errors=True)  # the temporary download
        wh.replace_rows("quarantine", "batch_id", m["batch_id"], q)
        if loaded != m["rows_loaded"]:
            raise SourceError(
                f"{m['batch_id']}: landing says {m['rows_loaded']} rows, loaded {loaded}"
            )
        batch = pd.DataFrame(
            [
                {
                    "batch_id": m["batch_id"],
                    "source": m["source"],
                    "entity": m["entity"],
                    "rows_read": m["rows_read"],
                    "rows_loaded": loaded,
                    "rows_quarantined": len(q),
                    "rows_outside_window": m["rows_outside_window"],
                    "rows_previously_quarantined": m.get("rows_previously_quarantined", 0),
                    "window_start": m["window_start"],
                    "window_end": m["window_end"],
                    "source_files": len(m["files"]),
                    "loaded_at": format_timestamp(loaded_at),
                }
            ]
        )
        wh.replace_rows(
            "load_batches",
            "batch_id",
            m["batch_id"],
            batch,
            column_types={
                "rows_read": "bigint",
                "rows_loaded": "bigint",
                "rows_quarantined": "bigint",
                "rows_outside_window": "bigint",
                "rows_previously_quarantined": "bigint",
                "source_files": "integer",
            },
        )
        reads = pd.DataFrame(
            [
                {"batch_id": m["batch_id"], "source": m["source"], "entity": m["entity"], **r}
                for r in m.get("file_reads", [])
            ],
            columns=["batch_id", "source", "entity", *FILE_READ_COLUMNS],
        )
        wh.replace_rows(
            "load_files",
            "batch_id",
            m["batch_id"],
            reads,
            column_types={"rows_read": "bigint", "rows_later": "bigint"},
        )
        done.append(batch.iloc[0].to_dict())
    return done


def ensure_raw_tables(wh: Any) -> None:
    """Create every raw table (empty) so dbt sources exist even for a source with no drop."""
    import pandas as pd

    for spec in ENTITIES:
        if not wh.table_exists(spec.table, wh.raw_schema):
            cols = [*spec.columns, *META_COLUMNS, "_batch_id", "_loaded_at"]
            wh.replace_rows(
                f"{wh.raw_schema}.{spec.table}", "_batch_id", "", pd.DataFrame(columns=cols)
            )

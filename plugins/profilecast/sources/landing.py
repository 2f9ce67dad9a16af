"""Extraction into the landing zone: validated Parquet parts, quarantine and a manifest per batch."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from profilecast.config import Settings, landing_url
from profilecast.consent.erasure import Forgotten, forgotten
from profilecast.interval import Interval
from profilecast.sources.catalog import (
    CHUNK_ROWS,
    META_COLUMNS,
    EntitySpec,
    SourceError,
    connector_for,
    specs_for,
)
from profilecast.sources.connectors.api import api_records_fn
from profilecast.sources.connectors.dialects import normalize
from profilecast.sources.readers import (
    RawRecord,
    list_drop_files,
    read_lines_at,
    read_records,
    seekable,
)
from profilecast.sources.validation import (
    Validated,
    format_timestamp,
    json_text_is_clean,
    quarantine_fingerprint,
    validate_record,
)
from profilecast.sources.window import (
    FileRead,
    History,
    Window,
    batch_id_for,
    choose_window,
    file_fingerprint,
    plan_file,
    rest_lines,
)
from profilecast.storage import upload_folder


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
    #: records about a person who was erased: read, and kept out (never stored anywhere)
    rows_erased: int = 0
    window_start: str | None = None
    window_end: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def landing_dir_for(settings: Settings, spec: EntitySpec, interval: Interval) -> Path:
    return (
        settings.landing_dir
        / f"source={spec.source}"
        / f"entity={spec.entity}"
        / f"date={interval.ds}"
    )


def _rows_table(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """The rows as string columns (a missing key: null), one struct array: twice as fast."""
    import pyarrow as pa

    shape = pa.struct([(c, pa.string()) for c in columns])
    return pa.Table.from_struct_array(pa.array(rows, type=shape))


def _write_parquet(rows: list[dict[str, Any]], path: Path, columns: list[str]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_rows_table(rows, columns), path, compression="zstd")


QUARANTINE_COLUMNS = [
    "source", "entity", "batch_id", "source_file", "line_no", "reason", "raw_payload",
    "fingerprint", "record_ts",
]  # fmt: skip


class _BatchWriter:
    """Validates one batch's records and writes them as Parquet parts, counting each one."""

    def __init__(self, spec: EntitySpec, history: History, result: BatchResult, out: Path,
                 forgotten: Forgotten | None = None, prefix: str = "part-"):  # fmt: skip
        self.spec, self.history, self.result, self.out = spec, history, result, out
        self.forgotten = forgotten
        self.columns = [*spec.columns, *META_COLUMNS]
        self.rows: list[dict[str, Any]] = []
        self.pending: list[Any] = []  # Arrow tables of rows waiting for the next part
        self.pending_rows = 0
        self.quarantined: list[dict[str, Any]] = []
        self.part = 0
        self.prefix = prefix

    def flush(self) -> None:
        """Write the buffered rows (dicts and Arrow tables, in order) as the next part."""
        import pyarrow.parquet as pq

        self._table_rows()
        if self.pending:
            import pyarrow as pa

            path = self.out / f"{self.prefix}{self.part:05d}.parquet"
            pq.write_table(pa.concat_tables(self.pending), path, compression="zstd")
            self.part += 1
            self.pending, self.pending_rows = [], 0

    def _table_rows(self) -> None:
        if self.rows:
            self.pending.append(_rows_table(self.rows, self.columns))
            self.pending_rows += len(self.rows)
            self.rows = []

    def add_table(self, table: Any) -> None:
        """Buffer an Arrow table of loaded rows (``self.columns``), after the rows so far."""
        if len(table):
            self._table_rows()
            self.pending.append(table)
            self.pending_rows += len(table)
            if self.pending_rows >= CHUNK_ROWS:
                self.flush()

    def take(self, raw: RawRecord, window: Window, read: FileRead | None) -> None:
        """Count ``raw`` (see :meth:`check`) and buffer its row when it is loaded."""
        row = self.check(raw, window, read)
        if row is not None:
            self.rows.append(row)
            if len(self.rows) + self.pending_rows >= CHUNK_ROWS:
                self.flush()

    def check(self, raw: RawRecord, window: Window, read: FileRead | None) -> dict | None:
        """Count ``raw`` as outside the window, quarantined, skipped (quarantined by another
        batch already) or loaded; the row to load, or None."""
        spec, result = self.spec, self.result
        if raw.error:
            checked = Validated(reason=raw.error)
        else:
            clean = json_text_is_clean(raw.payload)
            checked = validate_record(spec, normalize(spec.dialect, raw.record), clean)
        if read is not None and (checked.record_ts is None or window.is_late(checked.record_ts)):
            read.reread(raw.line)  # what a later "rest" read of this file must read again
        if not window.contains(checked.record_ts):
            result.rows_outside_window += 1
            if read is not None and window.is_late(checked.record_ts):
                read.rows_later += 1
            return None
        if self.forgotten and names_forgotten(spec, raw.record, self.forgotten):
            result.rows_erased += 1
            result.rows_read += 1
            if read is not None:
                read.rows_read += 1
            return None
        row = None
        if checked.row is None:
            q = _q(spec, result, raw, checked.reason or "invalid", checked.record_ts)
            holder = self.history.quarantined.get(q["fingerprint"])
            if holder is not None and holder != result.batch_id:
                result.rows_previously_quarantined += 1
                return None
            self.quarantined.append(q)
        else:
            row = checked.row
            row["_source_file"] = raw.source_file
            row["_line"] = str(raw.line)
            result.rows_loaded += 1
        result.rows_read += 1
        if read is not None:
            read.rows_read += 1
        return row

    def finish(self) -> None:
        self.flush()
        self.result.rows_quarantined = len(self.quarantined)
        _write_parquet(self.quarantined, self.out / "quarantine.parquet", QUARANTINE_COLUMNS)
        (self.out / "manifest.json").write_text(json.dumps(self.result.as_dict(), indent=2))


#: The counters a file's records add to their batch (rows_quarantined is counted at the end).
FILE_COUNTERS = (
    "rows_read", "rows_loaded", "rows_outside_window", "rows_previously_quarantined",
    "rows_erased",
)  # fmt: skip


def plan_read(
    path: str, history: History, batch_id: str, window: Window
) -> tuple[FileRead, Window | None, dict[int, int | None] | None]:
    """What this batch reads of one drop file: its ledger row, the window its records are
    read in (None: skipped) and the lines worth parsing with their byte offsets where known
    (None: all lines)."""
    fp = file_fingerprint(path)
    mode, file_window = plan_file(path, fp, history, batch_id, window)
    read = FileRead(path, fp, mode)
    lines = None
    if file_window is not None:
        if file_window.start is not None:
            read.read_from = format_timestamp(file_window.start)
        if mode == "rest":
            lines = rest_lines(path, fp, history, batch_id, file_window.start)
    return read, file_window, lines


def read_file(
    writer: _BatchWriter,
    read: FileRead,
    file_window: Window | None,
    lines: dict[int, int | None] | None,
) -> None:
    """Every record of one planned file through ``writer`` (ordinary records of a local file
    checked by DuckDB in bulk: vectorised.py, vectorised_csv.py; a "rest" read seeks)."""
    from profilecast.sources import vectorised, vectorised_csv

    if file_window is None:
        return
    if lines is not None and seekable(read.path, lines):
        offsets = {n: int(at) for n, at in lines.items() if at is not None}
        for n, at in offsets.items():
            read.locate(n, at)
        for raw in read_lines_at(read.path, offsets):
            writer.take(raw, file_window, read)
    elif vectorised.applies(writer.spec, read.path, lines):
        vectorised.read_file(writer, read, file_window)
    elif vectorised_csv.applies(writer.spec, read.path, lines):
        vectorised_csv.read_file(writer, read, file_window)
    else:
        for raw in read_records(read.path, writer.spec, lines):
            writer.take(raw, file_window, read)


def parallel_workers(files: list[str]) -> int:
    """Processes for one entity's files: one per file up to PROFILECAST_EXTRACT_WORKERS (the
    cores), and one when the files are smaller in all than PROFILECAST_EXTRACT_PARALLEL_MIN_MB."""
    from profilecast.config import extract_parallel_min_bytes, extract_workers
    from profilecast.sources.parallel import total_bytes

    if len(files) < 2 or total_bytes(files) < extract_parallel_min_bytes():
        return 1
    return min(extract_workers(), len(files))


def names_forgotten(spec: EntitySpec, record: Any, gone: Forgotten) -> bool:
    """Whether a record's person fields name someone who was erased."""
    if not isinstance(record, dict):
        return False
    record = normalize(spec.dialect, record)
    for name in spec.person_fields:
        value: Any = record
        for part in name.split("."):
            if isinstance(value, str) and value.startswith("{"):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int) and gone.has(value):
            return True
    return False


def extract_entity(
    settings: Settings,
    spec: EntitySpec,
    interval: Interval,
    history: History | None = None,
    files: Iterable[str] | None = None,
    records_fn: Callable[[Window], Iterable[RawRecord]] | None = None,
) -> BatchResult:
    """Read one entity's drop (files, or an API through ``records_fn``) into the landing zone.

    Counts: ``rows_read = rows_loaded + rows_quarantined + rows_erased`` (records about an
    erased person are read and kept out). Records dated outside the window
    (``rows_outside_window``) and bad records already quarantined by another batch
    (``rows_previously_quarantined``) belong to other batches and are not read again.
    """
    history = (history or History()).for_entity(spec)
    bid = batch_id_for(spec, interval)
    window = choose_window(history, bid, interval, settings.lookback_days)
    if records_fn is not None:
        files = []
    elif files is None:
        files = list_drop_files(settings.sources, spec.source, spec.entity)
    files = list(files)
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
    writer = _BatchWriter(spec, history, result, out, forgotten(settings.home))
    if records_fn is not None:
        for raw in records_fn(window):
            writer.take(raw, window, None)
    plans = [plan_read(path, history, bid, window) for path in files]
    workers = parallel_workers(files)
    if workers > 1:
        from profilecast.sources.parallel import read_files_in_parallel

        for read, quarantined, counts in read_files_in_parallel(writer, plans, workers):
            writer.quarantined.extend(quarantined)
            for name, n in counts.items():
                setattr(result, name, getattr(result, name) + n)
            result.file_reads.append(read.as_dict())
    else:
        for read, file_window, lines in plans:
            read_file(writer, read, file_window, lines)
            result.file_reads.append(read.as_dict())
    writer.finish()
    remote = landing_url()
    if remote:
        result.landing_dir = publish_landing(out, remote, spec, interval)
    return result


def publish_landing(local: Path, url: str, spec: EntitySpec, interval: Interval) -> str:
    """Upload a batch's landing folder to S3 (parts first, manifest last); replace old parts."""
    prefix_url = f"{url}/source={spec.source}/entity={spec.entity}/date={interval.ds}"
    names = [p.name for p in sorted(local.glob("*.parquet"))] + ["manifest.json"]
    upload_folder(local, prefix_url, names)
    return prefix_url


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

"""Sources: from a source system's drop (or API) to raw warehouse tables.

- ``catalog``: the registry of source entities, each declared once (columns, ids,
  watermark, API endpoint).
- ``readers``: drop files (CSV, JSON lines, JSON, Parquet; gzip; local or S3) -> records.
- ``validation``: value parsing and the rules that quarantine a record, with its reason.
- ``window``: which records of which files a batch reads (the interval, reruns, history).
- ``landing``: validated records -> Parquet landing zone + quarantine + manifest per batch.
- ``raw``: the landing zone -> ``raw.<source>__<entity>``, ``quarantine``, ``load_batches``.
- ``connectors``: API clients (Stripe, HubSpot) and dialects (Salesforce, HubSpot and
  Snowplow record shapes).

Nothing is dropped silently: every record read is loaded or quarantined with a reason
(``rows_read = rows_loaded + rows_quarantined`` per batch).
"""

from profilecast.sources.catalog import (
    ENTITIES,
    EntitySpec,
    SourceError,
    connector_for,
    specs_for,
)
from profilecast.sources.landing import (
    BatchResult,
    api_records_fn,
    extract_entity,
    extract_source,
)
from profilecast.sources.raw import ensure_raw_tables, load_raw
from profilecast.sources.readers import RawRecord, list_drop_files, read_records
from profilecast.sources.validation import validate_record
from profilecast.sources.window import History, batch_id_for, choose_window, load_history

__all__ = [
    "ENTITIES",
    "BatchResult",
    "EntitySpec",
    "History",
    "RawRecord",
    "SourceError",
    "api_records_fn",
    "batch_id_for",
    "choose_window",
    "connector_for",
    "ensure_raw_tables",
    "extract_entity",
    "extract_source",
    "list_drop_files",
    "load_history",
    "load_raw",
    "read_records",
    "specs_for",
    "validate_record",
]

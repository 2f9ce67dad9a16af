"""The raw load: a batch's landing files replace that batch in raw tables, quarantine and load_batches."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilecast.sources import catalog
from profilecast.sources.catalog import META_COLUMNS, SourceError
from profilecast.sources.validation import format_timestamp
from profilecast.sources.window import FILE_READ_COLUMNS
from profilecast.storage import download_folder

LOAD_COLUMNS = ("_batch_id", "_loaded_at", "_ingested_at")


def _local_landing(landing_dir: str) -> Path:
    """A local folder holding the batch's landing files (downloaded when they live on S3)."""
    if not landing_dir.startswith("s3://"):
        return Path(landing_dir)
    import tempfile

    return download_folder(landing_dir, Path(tempfile.mkdtemp(prefix="profilecast-landing-")))


def load_raw(wh: Any, manifests: Iterable[dict[str, Any]], loaded_at: datetime) -> list[dict]:
    """Replace each batch in its raw table, the quarantine table and load_batches."""
    import pandas as pd
    import pyarrow.parquet as pq

    ingested_at = format_timestamp(next_ingestion_time(wh))
    done = []
    for m in manifests:
        spec = catalog.spec_for(m["source"], m["entity"])
        folder = _local_landing(m["landing_dir"])
        parts = sorted(str(p) for p in folder.glob("part-*.parquet"))
        loaded = wh.load_parquet(
            f"{wh.raw_schema}.{spec.table}",
            parts,
            [*spec.columns, *META_COLUMNS],
            {
                "_batch_id": m["batch_id"],
                "_loaded_at": format_timestamp(loaded_at),
                "_ingested_at": ingested_at,
            },
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
                    "rows_erased": m.get("rows_erased", 0),
                    "window_start": m["window_start"],
                    "window_end": m["window_end"],
                    "source_files": len(m["files"]),
                    "loaded_at": format_timestamp(loaded_at),
                    "ingested_at": ingested_at,
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
                "rows_erased": "bigint",
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


def next_ingestion_time(wh: Any, now: datetime | None = None) -> datetime:
    """The ingestion time of a load: the wall clock, but always after every earlier load.

    The data interval's end is the load's logical time (``_loaded_at``, the same on a rerun
    or a backfill); ``_ingested_at`` orders the writes themselves and is the watermark of
    incremental staging, so it must never go back, even when the clock of the machine that
    loads does (another worker, a corrected clock). Loads hold the warehouse pool (one
    writer), so reading the newest and adding a microsecond is enough."""
    from datetime import timedelta

    now = now or datetime.now(UTC)
    if not (wh.table_exists("load_batches") and "ingested_at" in wh.columns("load_batches")):
        return now
    newest = wh.query("select max(ingested_at) from load_batches")[0][0]
    if not newest:
        return now
    after = datetime.strptime(str(newest), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return max(now, after + timedelta(microseconds=1))


def ensure_raw_tables(wh: Any) -> None:
    """Create every raw table (empty) so dbt sources exist even for a source with no drop."""
    import pandas as pd

    for spec in catalog.ENTITIES:
        cols = [*spec.columns, *META_COLUMNS, *LOAD_COLUMNS]
        if not wh.table_exists(spec.table, wh.raw_schema):
            wh.replace_rows(
                f"{wh.raw_schema}.{spec.table}", "_batch_id", "", pd.DataFrame(columns=cols)
            )
        else:  # a warehouse from an earlier version: add the columns a source gained since
            wh.ensure_table(f"{wh.raw_schema}.{spec.table}", cols)

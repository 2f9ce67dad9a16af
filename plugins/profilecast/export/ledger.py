"""The send ledger and export batches tables, and the manifest built from them."""

from __future__ import annotations

from typing import Any

MANIFEST_VERSION = "profilecast.manifest/1"


def pd_frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


def build_manifest(wh: Any, campaign_id: str, run_date: str) -> dict[str, Any]:
    rows = wh.query(
        "select batch_file, format, schema_version, messages, lines, sha256, run_id, exported_at "
        "from export_batches where campaign_id = %s and run_date = %s order by batch_file",
        (campaign_id, run_date),
    )
    batches = [
        {"file": f, "format": fmt, "schema_version": sv, "rows": int(m), "lines": int(n),
         "sha256": sha, "run_id": rid, "exported_at": str(at)}
        for f, fmt, sv, m, n, sha, rid, at in rows
    ]  # fmt: skip
    return {
        "manifest_version": MANIFEST_VERSION,
        "campaign_id": campaign_id,
        "ds": run_date,
        "schema_version": batches[0]["schema_version"] if batches else None,
        "batches": batches,
        "total_rows": sum(b["rows"] for b in batches),
        "run_id": batches[-1]["run_id"] if batches else None,
    }


def ensure_ledger_tables(wh: Any) -> None:
    if not wh.table_exists("send_ledger"):
        wh.execute(
            "create table send_ledger (message_key varchar primary key, campaign_id varchar, "
            "customer_id varchar, run_date date, batch_file varchar, exported_at timestamp)"
        )
    if not wh.table_exists("export_batches"):
        wh.execute(
            "create table export_batches (campaign_id varchar, run_date date, batch_file varchar, "
            "format varchar, schema_version varchar, messages integer, lines integer, "
            "sha256 varchar, run_id varchar, exported_at timestamp, "
            "primary key (campaign_id, run_date, batch_file))"
        )

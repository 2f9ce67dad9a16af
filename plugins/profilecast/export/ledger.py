"""The send ledger and export batches tables, and the manifest built from them."""

from __future__ import annotations

from typing import Any

MANIFEST_VERSION = "profilecast.manifest/1"


def pd_frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


def build_manifest(wh: Any, campaign_id: str, run_date: str) -> dict[str, Any]:
    rows = wh.query(
        "select batch_file, format, schema_version, messages, lines, sha256, run_id, exported_at, "
        "send_at from export_batches where campaign_id = %s and run_date = %s order by batch_file",
        (campaign_id, run_date),
    )
    batches = [
        {"file": f, "format": fmt, "schema_version": sv, "rows": int(m), "lines": int(n),
         "sha256": sha, "run_id": rid, "exported_at": str(at),
         **({"send_at": str(sa)} if sa is not None else {})}
        for f, fmt, sv, m, n, sha, rid, at, sa in rows
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
            "sha256 varchar, run_id varchar, exported_at timestamp, send_at timestamp, "
            "primary key (campaign_id, run_date, batch_file))"
        )
    elif "send_at" not in wh.columns("export_batches"):  # a warehouse from before send times
        wh.execute("alter table export_batches add column send_at timestamp")
    if not wh.table_exists("experiment_holdouts"):
        wh.execute(
            "create table experiment_holdouts (message_key varchar primary key, "
            "campaign_id varchar, customer_id varchar, experiment_id varchar, run_date date, "
            "recorded_at timestamp)"
        )


def record_holdouts(wh: Any, holdouts: list[dict[str, Any]], run_date: str) -> int:
    """Record the day's holdout rows not recorded yet (never exported); returns how many."""
    from datetime import UTC, datetime

    if not holdouts:
        return 0
    known = {
        k for (k,) in wh.query(
            "select message_key from experiment_holdouts where run_date = %s", (run_date,)
        )
    }  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        {"message_key": m["message_key"], "campaign_id": m["campaign_id"],
         "customer_id": m["customer_id"], "experiment_id": m.get("experiment_id"),
         "run_date": run_date, "recorded_at": now}
        for m in holdouts if m["message_key"] not in known
    ]  # fmt: skip
    if rows:
        wh.insert_frames({"experiment_holdouts": pd_frame(rows)})
    return len(rows)

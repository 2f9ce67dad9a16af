"""The send ledger and export batches tables, and the manifest built from them."""

from __future__ import annotations

from collections import Counter
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


class LedgerError(RuntimeError):
    """A message the send ledger holds already was about to be recorded again."""


def _ledger_key_clause(wh: Any) -> str:
    """The send ledger's key: a primary key on PostgreSQL. DuckDB keeps no index on it:
    its index (an ART over every key ever sent) is read and written again by every export,
    whose commits then grow with the ledger's history (at 9 million keys, a month of a
    million-contact campaign, 5 s of a 14 s export). There, one process writes at a time and
    ``append_ledger`` refuses a key the ledger holds for the date before it inserts."""
    return " primary key" if wh.kind != "duckdb" else ""


def _drop_duckdb_ledger_index(wh: Any) -> None:
    """A DuckDB ledger made before it lost its index, rebuilt without it (once)."""
    indexed = wh.query(
        "select count(*) from duckdb_constraints() where table_name = 'send_ledger' "
        "and constraint_type = 'PRIMARY KEY' and schema_name = current_schema()"
    )[0][0]
    if indexed:
        with wh.transaction():
            wh.execute("create table send_ledger__unindexed as select * from send_ledger")
            wh.execute("drop table send_ledger")
            wh.execute("alter table send_ledger__unindexed rename to send_ledger")


def append_ledger(wh: Any, campaign_id: str, run_date: str, ledger: Any, batches: Any) -> None:
    """A campaign's new ledger rows (a frame) and their batches' rows, in one transaction,
    refused with :class:`LedgerError` when one of the message keys is there already or twice.
    A key is made of the campaign, the customer and the date, so only the rows of that
    campaign and date are looked at."""
    keys = list(ledger["message_key"])
    with wh.transaction():
        held = wh.query(
            "select message_key from send_ledger where run_date = %s and campaign_id = %s "
            "and message_key in (select unnest(%s)) limit 1",
            (run_date, campaign_id, keys),
        )
        twice = len(set(keys)) != len(keys)
        if held or twice:
            which = held[0][0] if held else next(k for k, n in Counter(keys).items() if n > 1)
            raise LedgerError(f"message {which!r} of {campaign_id} on {run_date} is in the "
                              f"send ledger already: it would be sent twice")  # fmt: skip
        wh._insert_frame("send_ledger", ledger)
        wh._insert_frame("export_batches", batches)


def ensure_ledger_tables(wh: Any) -> None:
    if not wh.table_exists("send_ledger"):
        wh.execute(
            f"create table send_ledger (message_key varchar{_ledger_key_clause(wh)}, "
            "campaign_id varchar, customer_id varchar, run_date date, batch_file varchar, "
            "exported_at timestamp)"
        )
    elif wh.kind == "duckdb":
        _drop_duckdb_ledger_index(wh)
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

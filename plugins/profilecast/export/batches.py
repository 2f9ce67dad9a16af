"""Exactly-once batch export to the ESP (a local folder or S3).

Layout under the export URL::

    <campaign_id>/<ds>/batch-00000.jsonl.gz   one message per line (schema below)
    <campaign_id>/<ds>/manifest.json          written last: the ESP's commit marker

Exactly once: each message has a deterministic ``message_key`` (campaign, customer, date).
Keys already in the warehouse ``send_ledger`` are never written again. Batch names are
deterministic (continuing the manifest's numbering), so an export that crashed after writing
a batch but before recording it rewrites the same file with the same content on retry; the
ledger rows commit before the manifest is written.

The batches themselves are made part by part, in worker processes when the rendered files
are large (``prepare.py``); this module numbers them, writes them in order and commits.

Generic JSON-lines schema, version ``profilecast.jsonl/1``: ``message_key, campaign_id,
customer_id, to, from, subject, subject_variant, preheader, html, text, headers, fields``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilecast.export.ledger import (
    build_manifest,
    ensure_ledger_tables,
    pd_frame,
    record_holdouts,
)
from profilecast.export.message_log import log_record, write_log, write_log_lines
from profilecast.export.prepare import Batch, Context, prepare_files
from profilecast.storage import ObjectStore

SCHEMA_VERSION = "profilecast.jsonl/1"

#: gzip's own default: within 2% of level 9's size on these batches, in 60% of its time.
GZIP_LEVEL = 6
#: Batches whose ledger rows commit in one transaction. Safe at any size: the ESP reads only
#: the batches the manifest lists, and a retry rewrites uncommitted batch files with the
#: same names and content. One commit per batch cost a fifth of the export.
COMMIT_EVERY = 20


def _ordered(paths: list[Path], context: Context, workers: int) -> tuple[list[Batch], list[dict]]:
    """The parts' batches, ordered by send time then part (the order they are numbered in),
    and the holdouts. A message key in two parts is an error: render writes each once."""
    batches: list[tuple[str, int, Batch]] = []
    holdouts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, part in enumerate(prepare_files(paths, context, workers)):
        holdouts += part.holdouts
        for batch in part.batches:
            keys = set(batch.message_keys)
            if keys & seen:
                raise ValueError(f"message {min(keys & seen)!r} was rendered twice for "
                                 f"{context.run_date}: {[str(p) for p in paths]}")  # fmt: skip
            seen |= keys
            batches.append((batch.send_at or "", n, batch))
    batches.sort(key=lambda t: t[:2])  # stable: a part's batches keep their order
    return [b for _, _, b in batches], holdouts


def export_campaign(
    wh: Any,
    target: ObjectStore,
    campaign_id: str,
    run_date: str,
    rendered_files: list[Path],
    run_id: str,
    fmt: str = "jsonl",
    topic: str | None = None,
    sent_at: str | None = None,
    attribution_days: int = 5,
    sources: ObjectStore | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Export rendered messages not yet in the send ledger; returns what was written.

    Per batch the file is written (conditionally); every COMMIT_EVERY batches, and at the
    end, their ledger rows and ``export_batches`` rows commit together. The manifest is
    rebuilt from ``export_batches`` and written last, so it lists exactly the committed
    batches even after a crash. ``workers``: processes making the batches (``prepare.py``;
    default: ``config.export_workers`` when the rendered files are large enough to pay for
    them, else one). The batch files are the same for any number.
    """
    from profilecast.config import export_parallel_min_bytes, export_workers
    from profilecast.export.formats import SCHEMAS, spec

    spec(fmt)  # an unknown format fails before anything is read
    ensure_ledger_tables(wh)
    exported = {
        r[0]
        for r in wh.query(
            "select message_key from send_ledger where campaign_id = %s", (campaign_id,)
        )
    }
    prefix = f"{campaign_id}/{run_date}"
    sent_at = sent_at or f"{run_date} 00:00:00"
    if workers is None:
        size = sum(p.stat().st_size for p in rendered_files if p.exists())
        workers = export_workers() if size >= export_parallel_min_bytes() else 1
    context = Context(fmt, topic, run_date, sent_at, attribution_days, GZIP_LEVEL, exported)
    batches, holdouts = _ordered(rendered_files, context, workers)
    del exported, context

    def logged(msgs: list[dict[str, Any]], rel: str) -> None:
        if sources is not None:
            write_log(sources, rel, [log_record(m, run_date, m.get("send_at") or sent_at,
                                                attribution_days) for m in msgs])  # fmt: skip

    held = record_holdouts(wh, sorted(holdouts, key=lambda m: m["message_key"]), run_date)
    logged(sorted(holdouts, key=lambda m: m["message_key"]), f"{prefix}-holdout")
    committed = {
        name
        for (name,) in wh.query(
            "select batch_file from export_batches where campaign_id = %s and run_date = %s",
            (campaign_id, run_date),
        )
    }
    seq = len(committed)
    written = new_batches = 0
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    ledger: dict[str, list[Any]] = {"message_key": [], "customer_id": [], "batch_file": []}
    batch_rows: list[dict[str, Any]] = []

    def commit() -> None:
        if batch_rows:
            import pandas as pd

            frame = pd.DataFrame(ledger)
            frame.insert(1, "campaign_id", campaign_id)
            frame.insert(3, "run_date", run_date)
            frame["exported_at"] = now
            wh.insert_frames({"send_ledger": frame, "export_batches": pd_frame(batch_rows)})
            committed.update(b["batch_file"] for b in batch_rows)
            for column in ledger.values():
                column.clear()
            batch_rows.clear()

    for batch in batches:
        name = f"batch-{seq:05d}.jsonl.gz"
        # An uncommitted file of that name is an orphan of a crashed attempt: replace it.
        target.write(f"{prefix}/{name}", batch.data, "application/gzip",
                     overwrite=name not in committed)  # fmt: skip
        if sources is not None:
            write_log_lines(sources, f"{prefix}-{name.split('.')[0]}", [batch.log])
        location = target.location(f"{prefix}/{name}")
        ledger["message_key"] += batch.message_keys
        ledger["customer_id"] += batch.customer_ids
        ledger["batch_file"] += [location] * len(batch.message_keys)
        batch_rows.append(
            {
                "campaign_id": campaign_id,
                "run_date": run_date,
                "batch_file": name,
                "format": fmt,
                "schema_version": SCHEMAS[fmt],
                "messages": len(batch.message_keys),
                "lines": batch.lines,
                "sha256": batch.sha256,
                "run_id": run_id,
                "exported_at": now,
                "send_at": batch.send_at,
            }
        )
        written += len(batch.message_keys)
        new_batches += 1
        seq += 1
        if len(batch_rows) >= COMMIT_EVERY:
            commit()
    commit()
    if not committed:
        return {"campaign_id": campaign_id, "exported": 0, "batches": 0, "held_out": held,
                "total_batches": 0, "location": None}  # fmt: skip
    # Rebuilt from export_batches and written on every attempt, new batches or not: a crash
    # after the last batch committed but before this write is repaired by the resume, so the
    # ESP's commit marker always lists every committed batch (the content is deterministic).
    manifest = build_manifest(wh, campaign_id, run_date)
    target.write(
        f"{prefix}/manifest.json",
        json.dumps(manifest, indent=2).encode(),
        "application/json",
        overwrite=True,
    )
    return {
        "campaign_id": campaign_id,
        "exported": written,
        "held_out": held,
        "batches": new_batches,
        "total_batches": len(committed),
        "location": target.location(prefix) if written else None,
        "manifest": target.location(f"{prefix}/manifest.json"),
    }

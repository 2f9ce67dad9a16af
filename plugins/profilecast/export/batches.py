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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilecast.export.ledger import (
    append_ledger,
    build_manifest,
    ensure_ledger_tables,
    pd_frame,
    record_holdouts,
)
from profilecast.export.message_log import log_record, write_log, write_log_lines
from profilecast.export.prepare import Batch, Context, Part, prepare_campaigns
from profilecast.storage import ObjectStore

SCHEMA_VERSION = "profilecast.jsonl/1"

#: gzip's own default: within 2% of level 9's size on these batches, in 60% of its time.
GZIP_LEVEL = 6
#: Batches whose ledger rows commit in one transaction. Safe at any size: the ESP reads only
#: the batches the manifest lists, and a retry rewrites uncommitted batch files with the
#: same names and content. One commit per batch cost a fifth of the export.
COMMIT_EVERY = 20


def _ordered(
    parts: list[Part], context: Context, paths: list[Path]
) -> tuple[list[Batch], list[dict]]:
    """The parts' batches, ordered by send time then part (the order they are numbered in),
    and the holdouts. A message key in two parts is an error: render writes each once."""
    batches: list[tuple[str, int, Batch]] = []
    holdouts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, part in enumerate(parts):
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


@dataclass(frozen=True)
class CampaignExport:
    """One campaign's part of an export: its rendered files and how they go out."""

    campaign_id: str
    rendered_files: list[Path]
    fmt: str = "jsonl"
    topic: str | None = None
    attribution_days: int = 5


def campaign_context(wh: Any, request: CampaignExport, run_date: str, sent_at: str) -> Context:
    """What every message of the campaign's export shares, with the keys the send ledger
    holds for it on this run date (never prepared again). A message key is made of the
    campaign, the customer and the run date (``campaigns.message_key``), so the keys of
    other dates can never be this date's: reading them would only cost more every day."""
    from profilecast.export.formats import spec

    spec(request.fmt)  # an unknown format fails before anything is read
    ensure_ledger_tables(wh)
    exported = {
        r[0]
        for r in wh.query(
            "select message_key from send_ledger where campaign_id = %s and run_date = %s",
            (request.campaign_id, run_date),
        )
    }
    return Context(request.fmt, request.topic, run_date, sent_at, request.attribution_days,
                   GZIP_LEVEL, exported)  # fmt: skip


def _workers_for(paths: list[Path]) -> int:
    """``config.export_workers`` when the rendered files are large enough to pay for the
    processes, else one."""
    from profilecast.config import export_parallel_min_bytes, export_workers

    size = sum(p.stat().st_size for p in paths if p.exists())
    return export_workers() if size >= export_parallel_min_bytes() else 1


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
    """Export one campaign's rendered messages not yet in the send ledger; returns what was
    written (``export_campaigns`` with one campaign).

    Per batch the file is written (conditionally); every COMMIT_EVERY batches, and at the
    end, their ledger rows and ``export_batches`` rows commit together. The manifest is
    rebuilt from ``export_batches`` and written last, so it lists exactly the committed
    batches even after a crash. ``workers``: processes making the batches (``prepare.py``;
    default: ``config.export_workers`` when the rendered files are large enough to pay for
    them, else one). The batch files are the same for any number.
    """
    request = CampaignExport(campaign_id, rendered_files, fmt, topic, attribution_days)
    (result,) = export_campaigns(wh, target, [request], run_date, run_id, sent_at, sources,
                                 workers)  # fmt: skip
    return result


def export_campaigns(
    wh: Any,
    target: ObjectStore,
    requests: list[CampaignExport],
    run_date: str,
    run_id: str,
    sent_at: str | None = None,
    sources: ObjectStore | None = None,
    workers: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Export each campaign's rendered messages not yet in the send ledger, in the order
    given; yields each campaign's result once it committed. One pool of ``workers`` makes
    every campaign's batches (``prepare_campaigns``): while a campaign's batches are written
    and committed here, the workers make the next campaign's."""
    twice = sorted(k for k, n in Counter(r.campaign_id for r in requests).items() if n > 1)
    if twice:
        raise ValueError(f"campaign {twice[0]!r} is asked for twice in one export")
    sent_at = sent_at or f"{run_date} 00:00:00"
    contexts = {r.campaign_id: campaign_context(wh, r, run_date, sent_at) for r in requests}
    if workers is None:
        workers = _workers_for([p for r in requests for p in r.rendered_files])
    by_id = {r.campaign_id: r for r in requests}
    prepared = prepare_campaigns(
        [(r.campaign_id, r.rendered_files, contexts[r.campaign_id]) for r in requests], workers
    )
    for campaign_id, parts in prepared:
        request = by_id[campaign_id]
        batches, holdouts = _ordered(parts, contexts.pop(campaign_id), request.rendered_files)
        del parts
        yield _commit_campaign(wh, target, request, run_date, run_id, sent_at, sources, batches,
                               holdouts)  # fmt: skip


def _commit_campaign(
    wh: Any,
    target: ObjectStore,
    request: CampaignExport,
    run_date: str,
    run_id: str,
    sent_at: str,
    sources: ObjectStore | None,
    batches: list[Batch],
    holdouts: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write the campaign's batches in order, commit their ledger rows, write the manifest."""
    from profilecast.export.formats import SCHEMAS

    campaign_id, fmt = request.campaign_id, request.fmt
    attribution_days = request.attribution_days
    prefix = f"{campaign_id}/{run_date}"

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
            append_ledger(wh, campaign_id, run_date, frame, pd_frame(batch_rows))
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

"""Exactly-once batch export to the ESP (a local folder or S3).

Layout under the export URL::

    <campaign_id>/<ds>/batch-00000.jsonl.gz   one message per line (schema below)
    <campaign_id>/<ds>/manifest.json          written last: the ESP's commit marker

Exactly once: each message has a deterministic ``message_key`` (campaign, customer, date).
Keys already in the warehouse ``send_ledger`` are never written again. Batch names are
deterministic (continuing the manifest's numbering), so an export that crashed after writing
a batch but before recording it rewrites the same file with the same content on retry; the
ledger rows are inserted once the manifest is written.

Generic JSON-lines schema, version ``profilecast.jsonl/1``: ``message_key, campaign_id,
customer_id, to, from, subject, subject_variant, preheader, html, text, headers, fields``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SCHEMA_VERSION = "profilecast.jsonl/1"
BATCH_SIZE = 1000


class ExportError(RuntimeError):
    pass


@dataclass
class Target:
    """Where batches go: ``file:///path`` or ``s3://bucket/prefix``."""

    url: str

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def _local(self, rel: str) -> Path:
        return Path(urlparse(self.url).path) / rel

    def location(self, rel: str) -> str:
        return f"{self.url.rstrip('/')}/{rel}"

    def read(self, rel: str) -> bytes | None:
        if self.is_s3:
            client = _s3()
            bucket, key = self._s3_key(rel)
            try:
                return client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                return None
        path = self._local(rel)
        return path.read_bytes() if path.exists() else None

    def write(self, rel: str, data: bytes, content_type: str) -> None:
        if self.is_s3:
            bucket, key = self._s3_key(rel)
            _s3().put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ServerSideEncryption="AES256",
            )
            return
        path = self._local(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: an ESP never sees half a file

    def _s3_key(self, rel: str) -> tuple[str, str]:
        bucket, _, prefix = self.url[5:].partition("/")
        return bucket, f"{prefix.strip('/')}/{rel}".lstrip("/")


def _s3():
    import boto3

    return boto3.client("s3")


def _read_rendered(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def unsubscribe_headers(message: dict[str, Any], secret: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers with a signed per-recipient token."""
    import hmac

    token = hmac.new(secret.encode(), message["message_key"].encode(), hashlib.sha256)
    url = f"https://unsubscribe.example.com/u/{message['message_key']}?t={token.hexdigest()[:32]}"
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Profilecast-Message-Key": message["message_key"],
    }


def export_campaign(
    wh: Any,
    target: Target,
    campaign_id: str,
    run_date: str,
    rendered_files: list[Path],
    run_id: str,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Export rendered messages not yet in the send ledger; returns what was written."""
    import pandas as pd

    exported: set[str] = set()
    if wh.table_exists("send_ledger"):
        exported = {
            r[0]
            for r in wh.query(
                "select message_key from send_ledger where campaign_id = %s", (campaign_id,)
            )
        }
    secret = os.environ.get("PROFILECAST_UNSUBSCRIBE_SECRET", "profilecast-demo-secret")
    pending = []
    for path in rendered_files:
        for msg in _read_rendered(path):
            if msg["message_key"] not in exported:
                msg["headers"] = unsubscribe_headers(msg, secret)
                msg["schema_version"] = SCHEMA_VERSION
                pending.append(msg)
                exported.add(msg["message_key"])
    pending.sort(key=lambda m: m["message_key"])
    prefix = f"{campaign_id}/{run_date}"
    existing = target.read(f"{prefix}/manifest.json")
    manifest = (
        json.loads(existing)
        if existing
        else {
            "schema_version": SCHEMA_VERSION,
            "campaign_id": campaign_id,
            "ds": run_date,
            "batches": [],
        }
    )
    if not pending:
        return {"campaign_id": campaign_id, "exported": 0, "batches": 0, "location": None}
    new_batches = []
    ledger_rows = []
    seq = len(manifest["batches"])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        name = f"batch-{seq:05d}.jsonl.gz"
        body = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in chunk).encode()
        data = gzip.compress(body, mtime=0)
        target.write(f"{prefix}/{name}", data, "application/gzip")
        new_batches.append(
            {
                "file": name,
                "rows": len(chunk),
                "sha256": hashlib.sha256(data).hexdigest(),
                "run_id": run_id,
            }
        )
        ledger_rows += [
            {
                "message_key": m["message_key"],
                "campaign_id": campaign_id,
                "customer_id": m["customer_id"],
                "run_date": run_date,
                "batch_file": target.location(f"{prefix}/{name}"),
                "exported_at": now,
            }
            for m in chunk
        ]
        seq += 1
    manifest["batches"] += new_batches
    manifest["total_rows"] = sum(b["rows"] for b in manifest["batches"])
    manifest["run_id"] = run_id
    manifest["written_at"] = now
    target.write(
        f"{prefix}/manifest.json",
        json.dumps(manifest, indent=2).encode(),
        "application/json",
    )
    frame = pd.DataFrame(ledger_rows)
    _append_ledger(wh, frame)
    return {
        "campaign_id": campaign_id,
        "exported": len(pending),
        "batches": len(new_batches),
        "location": target.location(prefix),
    }


def _append_ledger(wh: Any, frame: Any) -> None:
    if not wh.table_exists("send_ledger"):
        wh.execute(
            "create table send_ledger (message_key varchar primary key, campaign_id varchar, "
            "customer_id varchar, run_date date, batch_file varchar, exported_at timestamp)"
        )
    wh.begin()
    try:
        wh._insert_frame("send_ledger", frame)
        wh.commit()
    except Exception:
        wh.rollback()
        raise

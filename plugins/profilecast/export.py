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

from profilecast.config import env_int

SCHEMA_VERSION = "profilecast.jsonl/1"
MANIFEST_VERSION = "profilecast.manifest/1"


class ExportError(RuntimeError):
    pass


class Conflict(ExportError):
    """A committed batch file exists with different content: never overwritten."""


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

    def write(self, rel: str, data: bytes, content_type: str, overwrite: bool = False) -> None:
        """Write ``rel``. Without ``overwrite`` the write is conditional: an existing object
        with the same bytes is fine (an idempotent retry), a different one raises Conflict."""
        if self.is_s3:
            self._s3_write(rel, data, content_type, overwrite)
            return
        path = self._local(rel)
        if not overwrite and path.exists():
            if path.read_bytes() == data:
                return
            raise Conflict(f"{self.location(rel)} exists with different content")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: an ESP never sees half a file

    def _s3_write(self, rel: str, data: bytes, content_type: str, overwrite: bool) -> None:
        from botocore.exceptions import ClientError

        client = _s3()
        bucket, key = self._s3_key(rel)
        extra: dict[str, Any] = {"ContentType": content_type, "ServerSideEncryption": "AES256"}
        condition = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            if len(data) >= MULTIPART_BYTES:
                _multipart_put(client, bucket, key, data, extra, condition)
            else:
                client.put_object(Bucket=bucket, Key=key, Body=data, **extra, **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise
            if self.read(rel) != data:
                raise Conflict(f"{self.location(rel)} exists with different content") from exc

    def _s3_key(self, rel: str) -> tuple[str, str]:
        bucket, _, prefix = self.url[5:].partition("/")
        return bucket, f"{prefix.strip('/')}/{rel}".lstrip("/")


MULTIPART_BYTES = env_int("PROFILECAST_MULTIPART_BYTES", 64 * 1024 * 1024)
PART_BYTES = 8 * 1024 * 1024


def _multipart_put(
    client: Any, bucket: str, key: str, data: bytes, extra: dict, condition: dict
) -> None:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    parts = []
    try:
        for n, start in enumerate(range(0, len(data), PART_BYTES), start=1):
            part = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                Body=data[start : start + PART_BYTES],
            )  # fmt: skip
            parts.append({"ETag": part["ETag"], "PartNumber": n})
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts}, **condition,
        )  # fmt: skip
    except Exception:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        raise


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
    fmt: str = "jsonl",
) -> dict[str, Any]:
    """Export rendered messages not yet in the send ledger; returns what was written.

    Per batch: the file is written (conditionally), then its ledger rows and its
    ``export_batches`` row commit together. The manifest is rebuilt from ``export_batches``
    and written last, so it lists exactly the committed batches even after a crash.
    """
    from profilecast.formats import SCHEMAS, batch_files

    _ensure_tables(wh)
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
    for chunk, lines in batch_files(fmt, pending):
        name = f"batch-{seq:05d}.jsonl.gz"
        data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
        # An uncommitted file of that name is an orphan of a crashed attempt: replace it.
        target.write(f"{prefix}/{name}", data, "application/gzip", overwrite=name not in committed)
        ledger = pd_frame(
            [
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
        )
        batch = pd_frame(
            [
                {
                    "campaign_id": campaign_id,
                    "run_date": run_date,
                    "batch_file": name,
                    "format": fmt,
                    "schema_version": SCHEMAS[fmt],
                    "messages": len(chunk),
                    "lines": len(lines),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "run_id": run_id,
                    "exported_at": now,
                }
            ]
        )
        wh.begin()
        try:
            wh._insert_frame("send_ledger", ledger)
            wh._insert_frame("export_batches", batch)
            wh.commit()
        except Exception:
            wh.rollback()
            raise
        committed.add(name)
        written += len(chunk)
        new_batches += 1
        seq += 1
    if not committed:
        return {"campaign_id": campaign_id, "exported": 0, "batches": 0,
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
        "batches": new_batches,
        "total_batches": len(committed),
        "location": target.location(prefix) if written else None,
        "manifest": target.location(f"{prefix}/manifest.json"),
    }


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


def _ensure_tables(wh: Any) -> None:
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

"""Objects in a local folder or on S3, for the landing zone and the export alike.

The one module that opens an S3 client. Writes are atomic locally (write then rename) and
conditional on S3 (``If-None-Match: *``): an object that exists with other bytes is never
overwritten unless asked, which is what makes retried exports and landings safe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from profilecast.config import multipart_bytes


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client configured from the environment (endpoint, credentials, region)."""
    import boto3

    return boto3.client("s3")


def read_bytes(url: str) -> bytes:
    """The bytes of a local file or an S3 object."""
    if url.startswith("s3://"):
        bucket, key = split_s3_url(url)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(url).read_bytes()


def fingerprint(url: str) -> str:
    """Size and modification time (local) or size and ETag (S3): changes when the bytes do."""
    if url.startswith("s3://"):
        bucket, key = split_s3_url(url)
        head = s3_client().head_object(Bucket=bucket, Key=key)
        return f"{head['ContentLength']}:{head['ETag'].strip(chr(34))}"
    st = Path(url).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def list_keys(prefix_url: str) -> list[str]:
    """Every object key under an ``s3://bucket/prefix/`` URL (all pages)."""
    bucket, prefix = split_s3_url(prefix_url)
    keys: list[str] = []
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def upload_folder(local: Path, prefix_url: str, names: list[str]) -> None:
    """Replace what is under ``prefix_url`` with ``names`` from ``local``, in that order
    (so a marker file listed last appears last)."""
    bucket, prefix = split_s3_url(prefix_url.rstrip("/") + "/")
    client = s3_client()
    for key in list_keys(f"s3://{bucket}/{prefix}"):
        client.delete_object(Bucket=bucket, Key=key)
    for name in names:
        client.upload_file(str(local / name), bucket, prefix + name,
                           ExtraArgs={"ServerSideEncryption": "AES256"})  # fmt: skip


def download_folder(prefix_url: str, target: Path) -> Path:
    """Copy every object under ``prefix_url`` into the folder ``target``."""
    bucket, prefix = split_s3_url(prefix_url.rstrip("/") + "/")
    client = s3_client()
    target.mkdir(parents=True, exist_ok=True)
    for key in list_keys(f"s3://{bucket}/{prefix}"):
        dest = target / key[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(dest))
    return target


class Conflict(RuntimeError):
    """A committed batch file exists with different content: never overwritten."""


@dataclass
class ObjectStore:
    """Objects under ``file:///path`` (or a plain path) or ``s3://bucket/prefix``."""

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
            client = s3_client()
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

        client = s3_client()
        bucket, key = self._s3_key(rel)
        extra: dict[str, Any] = {"ContentType": content_type, "ServerSideEncryption": "AES256"}
        condition = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            if len(data) >= multipart_bytes():
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

"""Erasure: forget a person everywhere profilecast keeps them, and keep them forgotten.

A request (``profilecast forget --email X``, or ``POST /privacy/erasures`` on the collector
for a privacy tool) is recorded in ``$PROFILECAST_HOME/privacy/erasure.sqlite`` as salted
SHA-256 digests only, never the address. Applying it (at once from the CLI when the
warehouse is free, otherwise by the daily DAG's first task) finds the person's customers in
the warehouse by those digests, gathers every identifier they have (customer ids, source
record ids, web user and anonymous ids, every address), and removes them from:

* every table of the warehouse (raw, quarantine, staging state, marts, audiences, ledgers),
* the fresh-facts store, the flows' state, history and ledger, the profile snapshot,
* files under ``PROFILECAST_HOME``: the landing zone (Parquet parts, whose manifests are
  re-counted), rendered batches not exported yet, the collector's sealed journal segments,
  reports.

The digests of every identifier are kept in the ``erased`` table: extraction drops records
that carry one (counted as ``rows_erased``: rows read = loaded + quarantined + erased), and
the render and flow steps treat them as suppressed, so a later drop that still holds the
person does not bring them back. Already exported batches belong to the ESP: the audit row
counts them so the erasure can be forwarded there. Each request leaves an audit row: when,
who asked, the subject's digest and what was removed where; never the person's data.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists erased (
    digest text primary key,
    request_id text not null,
    erased_at text not null
);
create table if not exists requests (
    request_id text primary key,
    requested_at text not null,
    requested_by text not null,
    subject_digest text not null,
    status text not null,
    applied_at text,
    removed text not null default '{}'
);
"""


class ErasureError(RuntimeError):
    """A request that cannot be taken (no address) or applied (the warehouse is busy)."""


def normalize(value: str) -> str:
    return str(value).strip().lower()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    """The erasure requests, their audit rows and the digests kept forgotten."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "privacy"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "erasure.sqlite"
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("pragma journal_mode=wal")
        self.conn.execute("pragma secure_delete=on")
        self.conn.executescript(SCHEMA)
        self.salt = _salt(self.dir)

    def close(self) -> None:
        self.conn.close()

    def digest(self, value: str) -> str:
        return hashlib.sha256(f"{self.salt}|{normalize(value)}".encode()).hexdigest()

    def request(self, email: str, requested_by: str) -> str:
        """Record a request for ``email``; returns its id (the same pending one when asked
        twice)."""
        if "@" not in str(email):
            raise ErasureError(f"not an email address: {email!r}")
        subject = self.digest(email)
        with self.conn:
            row = self.conn.execute(
                "select request_id from requests where subject_digest = ? and status = 'pending'",
                (subject,),
            ).fetchone()
            if row:
                return str(row[0])
            rid = f"er_{uuid.uuid4().hex[:16]}"
            self.conn.execute(
                "insert into requests (request_id, requested_at, requested_by, subject_digest, "
                "status) values (?, ?, ?, ?, 'pending')",
                (rid, _now(), requested_by, subject),
            )
            self._keep(rid, [subject])
        return rid

    def _keep(self, rid: str, digests: Iterable[str]) -> None:
        self.conn.executemany(
            "insert or ignore into erased values (?, ?, ?)", [(d, rid, _now()) for d in digests]
        )

    def add(self, rid: str, identifiers: Iterable[str]) -> None:
        """Keep more of the request's person forgotten (identifiers found on the way)."""
        with self.conn:
            self._keep(rid, {self.digest(i) for i in identifiers})

    def pending(self) -> list[tuple[str, str]]:
        return self.conn.execute(
            "select request_id, subject_digest from requests where status = 'pending' "
            "order by requested_at"
        ).fetchall()

    def finish(self, rid: str, identifiers: Iterable[str], removed: dict[str, Any]) -> None:
        with self.conn:
            self._keep(rid, {self.digest(i) for i in identifiers})
            self.conn.execute(
                "update requests set status = 'done', applied_at = ?, removed = ? "
                "where request_id = ?",
                (_now(), json.dumps(removed, sort_keys=True), rid),
            )

    def audit(self, rid: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "select request_id, requested_at, requested_by, subject_digest, status, applied_at, "
            "removed from requests where request_id = ?",
            (rid,),
        ).fetchone()
        if row is None:
            return None
        keys = ("request_id", "requested_at", "requested_by", "subject_digest", "status",
                "applied_at", "removed")  # fmt: skip
        out = dict(zip(keys, row, strict=True))
        out["removed"] = json.loads(out["removed"])
        return out

    def digests(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.conn.execute("select digest from erased"))


def _salt(directory: Path) -> str:
    """``PROFILECAST_ERASURE_SALT``, else a random salt made once and kept beside the
    registry (mode 0600). Lose it and the digests no longer match anything: back it up with
    the registry, and set the variable on every machine of a cluster."""
    from profilecast.config import erasure_salt

    configured = erasure_salt()
    if configured:
        return configured
    path = directory / "salt"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


class Forgotten:
    """The digests kept forgotten, to test values against (extraction, render, flows)."""

    def __init__(self, salt: str, digests: frozenset[str]) -> None:
        self.salt, self.digests = salt, digests

    def __bool__(self) -> bool:
        return bool(self.digests)

    def has(self, value: Any) -> bool:
        if value in (None, "") or not self.digests:
            return False
        text = normalize(str(value))
        return hashlib.sha256(f"{self.salt}|{text}".encode()).hexdigest() in self.digests


def forgotten(home: Path) -> Forgotten:
    """The current forgotten digests (empty when nobody was ever erased)."""
    if not (home / "privacy" / "erasure.sqlite").exists():
        return Forgotten("", frozenset())
    reg = Registry(home)
    try:
        return Forgotten(reg.salt, reg.digests())
    finally:
        reg.close()


# -- the whole request ------------------------------------------------------------------------


@contextmanager
def _registry(home: Path) -> Iterator[Registry]:
    reg = Registry(home)
    try:
        yield reg
    finally:
        reg.close()


def request_erasure(email: str, requested_by: str, home: Path | None = None) -> str:
    """Record a request (digests only); the person is suppressed from now on."""
    from profilecast.config import load_settings

    with _registry(home or load_settings().home) as reg:
        return reg.request(email, requested_by)


def apply_pending(settings: Any = None, email: str | None = None) -> list[dict[str, Any]]:
    """Carry out every pending request on the warehouse, the stores and the files; returns
    their audit rows. ``email`` (the CLI's, held only in memory) also finds a person the
    warehouse does not know yet (only in the landing zone or the fresh facts)."""
    from profilecast.config import load_settings
    from profilecast.consent.sweep import Matcher, find_person, sweep_warehouse
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    done = []
    with _registry(settings.home) as reg:
        pending = reg.pending()
        if not pending:
            return []
        subjects = {d for _, d in pending}
        try:
            with connect(settings) as wh:
                person = find_person(wh, reg, subjects)
                if email and reg.digest(email) in subjects:
                    person.emails.add(normalize(email))
                matcher = person.matcher()
                removed: dict[str, Any] = {}
                if matcher:
                    removed["warehouse"] = sweep_warehouse(wh, matcher)
        except Exception as exc:
            if "lock" in str(exc).lower():
                raise ErasureError(
                    "the warehouse is in use by another process (a pipeline run?): the request "
                    "is recorded and suppressed already; the daily DAG's apply_erasures task, "
                    "or `profilecast forget --apply-pending` later, carries it out"
                ) from exc
            raise
        gone = Forgotten(reg.salt, reg.digests())
        removed.update(_sweep_outside_warehouse(
            settings, Matcher(matcher.emails, matcher.ids, gone)))  # fmt: skip
        removed["customers"] = len(person.customer_ids)
        removed["identifiers"] = len(person.identifiers)
        removed["exported_files_still_holding"] = _exported(settings, matcher)
        for rid, _ in pending:
            reg.finish(rid, person.identifiers, removed)
            done.append(reg.audit(rid))
    return done


def _sweep_outside_warehouse(settings: Any, m: Any) -> dict[str, Any]:
    from profilecast.consent.sweep import sweep_files, sweep_sqlite
    from profilecast.flows.store import FlowStore

    out: dict[str, Any] = {}
    out["fresh_facts"] = sweep_sqlite(settings.fresh_path, m)
    out["profile_snapshot"] = sweep_sqlite(settings.profiles_snapshot_path, m)
    if settings.flows_path.exists():
        store = FlowStore(settings.flows_path)
        try:
            with store.exclusive():
                store.close()
                out["flows"] = sweep_sqlite(settings.flows_path, m)
        finally:
            store.close()
    # Source drops are the upstream systems' files (extraction keeps the person out of
    # them from now on); the collector's sealed journal segments among them are ours.
    sources = None if str(settings.sources).startswith("s3://") else Path(settings.sources)
    skip = (settings.home / "exports", settings.airflow_home, settings.home / "privacy")
    out["files"] = sweep_files(settings.home, m, skip + ((sources,) if sources else ()))
    if sources is not None and sources.exists():
        for journal in sorted(sources.glob("*/*/collector")):
            for name, n in sweep_files(journal, m, ()).items():
                out["files"][str(journal.relative_to(sources) / name)] = n
    return out


def _exported(settings: Any, m: Any) -> int:
    """How many exported files still name the person (the ESP has them: forward the
    erasure there); only a local export folder is counted."""
    root = settings.home / "exports"
    if not root.exists():
        return 0
    count = 0
    for path in root.rglob("*"):
        if path.is_file() and path.name.endswith((".jsonl.gz", ".jsonl", ".csv", ".json")):
            import gzip

            raw = path.read_bytes()
            text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode(
                "utf-8", errors="replace"
            )
            count += any(m.hits(line) for line in text.splitlines())
    return count


def forget(email: str | None, apply_only: bool, requested_by: str | None) -> int:
    """``profilecast forget``: record a request (unless ``apply_only``) and carry out the
    pending ones; prints what was removed, never the person. Exit 2 on a bad call, 3 when
    the request is recorded but the warehouse is busy."""
    import getpass
    import sys

    from profilecast.config import load_settings

    settings = load_settings()
    if not email and not apply_only:
        print("forget: give --email ADDRESS, or --apply-pending", file=sys.stderr)
        return 2
    try:
        if email:
            rid = request_erasure(email, requested_by or getpass.getuser(), settings.home)
            print(f"{rid}: recorded; the person is suppressed from now on")
        done = apply_pending(settings, email=email)
    except ErasureError as exc:
        print(f"forget: {exc}", file=sys.stderr)
        return 3 if email else 2
    for audit in done:
        removed = audit["removed"]
        where = {k: v for k, v in removed.items() if v}
        print(f"{audit['request_id']}: done at {audit['applied_at']}: "
              f"{json.dumps(where, sort_keys=True)}")  # fmt: skip
        if removed.get("exported_files_still_holding"):
            print(f"  {removed['exported_files_still_holding']} exported file(s) already handed "
                  "to the ESP still hold the person: forward the erasure to the ESP")  # fmt: skip
    if not done and not email:
        print("no pending erasure request")
    return 0

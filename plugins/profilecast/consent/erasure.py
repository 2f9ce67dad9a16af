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
import re
import secrets
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SALT_ENV = "PROFILECAST_ERASURE_SALT"

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
    configured = os.environ.get(SALT_ENV, "").strip()
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


# -- finding what belongs to the person ---------------------------------------------------


@dataclass
class Person:
    """Everything that names one erased person."""

    customer_ids: set[str] = field(default_factory=set)
    record_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)

    @property
    def identifiers(self) -> set[str]:
        return self.customer_ids | self.record_ids | self.emails

    def matcher(self) -> Matcher:
        return Matcher(self.emails, self.customer_ids | self.record_ids)


#: columns that may hold an all-digit id (a CRM contact id): elsewhere such a value is more
#: likely an amount or a count, and equal to an id by chance
ID_COLUMN = re.compile(r"(^|_)(id|ids|customer|contact|user|subject|identifier|record)(_|$)|id$",
                       re.IGNORECASE)  # fmt: skip


_EMAILISH = re.compile(r"[a-z0-9_.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_QUOTED = re.compile(r'"([^"\\]{3,80})"')


class Matcher:
    """Whether a value or a line of text names the person: an address anywhere in it, an id
    as a whole value (an all-digit id only in an id column) or quoted in JSON (``"C123"``),
    never as part of another value."""

    def __init__(self, emails: set[str], ids: set[str], gone: Forgotten | None = None) -> None:
        #: digests to test the addresses and quoted values of a line of text against: a
        #: person the warehouse does not know (only in the journal, say) is found by them
        self.gone = gone if gone else None
        ids = {normalize(i) for i in ids if len(normalize(i)) >= 3}
        self.emails = {normalize(e) for e in emails if e}
        self.numeric = {i for i in ids if i.isdigit()}
        self.strong = self.emails | (ids - self.numeric)
        parts = [re.escape(e) for e in sorted(self.emails)]
        alternatives = []
        if parts:
            alternatives.append(r"(^|[^a-z0-9_.+-])(" + "|".join(parts) + r")($|[^a-z0-9_.-])")
        if ids:
            alternatives.append("(" + "|".join(re.escape(f'"{i}"') for i in sorted(ids)) + ")")
        self.ids = ids
        self.pattern = "|".join(alternatives)
        self._re = re.compile(self.pattern) if self.pattern else None

    def __bool__(self) -> bool:
        return bool(self.strong or self.numeric or self.gone)

    def exact_for(self, column: str) -> set[str]:
        """The whole values that name the person in ``column``."""
        return self.strong | (self.numeric if ID_COLUMN.search(column) else set())

    def hits(self, text: str | None, column: str | None = None) -> bool:
        if not text or not self:
            return False
        low = str(text).lower()
        if column is not None and low.strip() in self.exact_for(column):
            return True
        if self._re and self._re.search(low):
            return True
        if self.gone is not None:
            if column is not None:
                return self.gone.has(low)
            return any(self.gone.has(v) for v in _EMAILISH.findall(low)) or any(
                self.gone.has(v) for v in _QUOTED.findall(low))  # fmt: skip
        return False

    def redact(self, text: str) -> tuple[str, int]:
        """``text`` with every address and quoted id replaced by ``[erased]``."""
        count = 0
        for token, quoted in [(e, False) for e in self.emails] + [(i, True) for i in self.ids]:
            needle = f'"{token}"' if quoted else token
            text, n = re.subn(re.escape(needle), '"[erased]"' if quoted else "[erased]", text,
                              flags=re.IGNORECASE)  # fmt: skip
            count += n
        return text, count


def find_person(wh: Any, reg: Registry, subjects: set[str]) -> Person:
    """The customers whose address (or ESP recipient) has one of the ``subjects`` digests,
    and every identifier and address the warehouse links to them."""
    person = Person()
    if not wh.table_exists("customer_identity_map"):
        return person
    for cid, email in wh.query("select customer_id, email from customer_profiles"):
        if email and reg.digest(email) in subjects:
            person.customer_ids.add(str(cid))
    for cid, source, rid in wh.query(
        "select customer_id, source, source_record_id from customer_identity_map"
    ):
        if source == "esp" and rid and reg.digest(rid) in subjects:
            person.customer_ids.add(str(cid))
    if not person.customer_ids:
        return person
    marks = ", ".join(["%s"] * len(person.customer_ids))
    ids = sorted(person.customer_ids)
    for (rid,) in wh.query(
        f"select source_record_id from customer_identity_map where customer_id in ({marks})", ids
    ):
        if rid:
            (person.emails if "@" in str(rid) else person.record_ids).add(normalize(rid))
    for (email,) in wh.query(
        f"select email from customer_profiles where customer_id in ({marks})", ids
    ):
        if email:
            person.emails.add(normalize(email))
    person.emails |= _raw_emails(wh, person.record_ids)
    return person


def _raw_emails(wh: Any, record_ids: set[str]) -> set[str]:
    """Every address the person's CRM and billing records ever carried (a second work
    address, an old one) from the raw tables."""
    from profilecast.sources import catalog

    found: set[str] = set()
    if not record_ids:
        return found
    ids = sorted(record_ids)
    marks = ", ".join(["%s"] * len(ids))
    for spec in catalog.ENTITIES:
        if not spec.email_fields or not spec.record_id:
            continue
        if not wh.table_exists(spec.table, wh.raw_schema):
            continue
        keys = [f for f in (spec.record_id, "contact_id") if f in spec.columns]
        where = " or ".join(f'"{k}" in ({marks})' for k in keys)
        cols = ", ".join(f'"{c}"' for c in spec.email_fields)
        for row in wh.query(
            f"select {cols} from {wh.raw_schema}.{spec.table} where {where}", ids * len(keys)
        ):
            found |= {normalize(v) for v in row if v and "@" in str(v)}
    return found


# -- removing it ----------------------------------------------------------------------------


def sweep_warehouse(wh: Any, m: Matcher) -> dict[str, int]:
    """Delete every row of every table that names the person; {schema.table: rows}."""
    from profilecast.warehouse.connection import PostgresWarehouse

    postgres = isinstance(wh, PostgresWarehouse)
    tables = wh.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema not in "
        "('information_schema', 'pg_catalog', 'pg_toast')"
        + ("" if postgres else " and table_catalog = current_database()")
    )
    removed: dict[str, int] = {}
    for schema, table in tables:
        cols = [
            c
            for c, t in wh.query(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                (schema, table),
            )
            if str(t).lower() in ("varchar", "character varying", "text", "json", "jsonb")
        ]
        if not cols:
            continue
        where, params = _row_test(cols, m, postgres)
        name = f'"{schema}"."{table}"'
        n = wh.query(f"select count(*) from {name} where {where}", params)[0][0]
        if n:
            wh.execute(f"delete from {name} where {where}", params)
            removed[f"{schema}.{table}"] = int(n)
    return removed


def sweep_sqlite(path: Path, m: Matcher) -> dict[str, int]:
    """Delete the rows of a SQLite store that name the person, then VACUUM so no free page
    keeps them; {table: rows}."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(path, timeout=60)
    conn.create_function("names_person", 2, lambda v, c: 1 if m.hits(v, c) else 0,
                         deterministic=True)  # fmt: skip
    removed: dict[str, int] = {}
    try:
        tables = [r[0] for r in conn.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")]  # fmt: skip
        with conn:
            for table in tables:
                cols = [r[1] for r in conn.execute(f'pragma table_info("{table}")')]
                where = " or ".join(f"names_person(cast(\"{c}\" as text), '{c}')" for c in cols)
                cur = conn.execute(f'delete from "{table}" where {where}')
                if cur.rowcount:
                    removed[table] = cur.rowcount
        if removed:
            conn.execute("vacuum")
    finally:
        conn.close()
    return removed


LINE_FILES = (".jsonl", ".ndjson", ".csv", ".txt", ".log", ".jsonl.gz", ".csv.gz", ".ndjson.gz")
TEXT_FILES = (".json", ".html", ".md")


def sweep_files(root: Path, m: Matcher, skip: tuple[Path, ...]) -> dict[str, int]:
    """Remove the person from the files under ``root`` (not under ``skip``): the lines of
    line files that name them, their rows in Parquet files (a landing batch's manifest is
    re-counted), their values in JSON and HTML reports; {relative path: lines or rows}."""
    removed: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(path.is_relative_to(s) for s in skip):
            continue
        name = path.name.lower()
        if name.endswith(".parquet"):
            n = _sweep_parquet(path, m)
        elif name.endswith(LINE_FILES):
            n = _sweep_lines(path, m)
        elif name.endswith(TEXT_FILES):
            n = _sweep_text(path, m)
        else:
            continue
        if n:
            removed[str(path.relative_to(root))] = n
    return removed


def _rewrite(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".erasing")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sweep_lines(path: Path, m: Matcher) -> int:
    import gzip

    packed = path.name.endswith(".gz")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if packed else raw).decode("utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not m.hits(line)]
    if len(kept) == len(lines):
        return 0
    data = "".join(kept).encode("utf-8", errors="surrogateescape")
    _rewrite(path, gzip.compress(data, mtime=0) if packed else data)
    return len(lines) - len(kept)


def _sweep_text(path: Path, m: Matcher) -> int:
    text = path.read_text(errors="surrogateescape")
    redacted, count = m.redact(text)
    if count:
        _rewrite(path, redacted.encode(errors="surrogateescape"))
    return count


def _row_test(columns: list[str], m: Matcher, postgres: bool = False) -> tuple[str, list[Any]]:
    """A SQL condition (and its parameters) true for a row that names the person: a column
    equal to one of their values, or holding their address or a quoted id."""
    tests: list[str] = []
    params: list[Any] = []
    for c in columns:
        text = f'lower(cast("{c}" as varchar))'
        exact = sorted(m.exact_for(c))
        if exact:
            tests.append(f"trim({text}) in ({', '.join(['%s'] * len(exact))})")
            params += exact
        if m.pattern:
            tests.append(f"{text} ~ %s" if postgres else f"regexp_matches({text}, %s)")
            params.append(m.pattern)
    return " or ".join(tests) or "false", params


def _sweep_parquet(path: Path, m: Matcher) -> int:
    """Rewrite a Parquet file without the person's rows (DuckDB, vectorised: a landing zone
    holds every day's data). Only the person's known values are looked for here."""
    import duckdb

    con = duckdb.connect()
    try:
        src = f"read_parquet('{path}')"
        cols = [r[0] for r in con.execute(f"describe select * from {src}").fetchall()
                if str(r[1]).upper() == "VARCHAR"]  # fmt: skip
        where, params = _row_test(cols, m)
        if where == "false":
            return 0
        sql_where = where.replace("%s", "?")
        n = con.execute(f"select count(*) from {src} where {sql_where}", params).fetchone()[0]
        if n:
            tmp = path.with_name(path.name + ".erasing")
            con.execute(f"copy (select * from {src} where not ({sql_where})) to '{tmp}' "
                        "(format parquet, compression zstd)", params)  # fmt: skip
            os.replace(tmp, path)
            _recount_manifest(path, int(n))
        return int(n)
    finally:
        con.close()


def _recount_manifest(part: Path, n: int) -> None:
    """Keep a landing batch's row accounting true: rows that left a part are erased rows."""
    manifest = part.parent / "manifest.json"
    if not manifest.exists():
        return
    data = json.loads(manifest.read_text())
    field_name = "rows_quarantined" if part.name == "quarantine.parquet" else "rows_loaded"
    data[field_name] = int(data.get(field_name, 0)) - n
    data["rows_erased"] = int(data.get("rows_erased", 0)) + n
    _rewrite(manifest, json.dumps(data, indent=2).encode())


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


def _sweep_outside_warehouse(settings: Any, m: Matcher) -> dict[str, Any]:
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


def _exported(settings: Any, m: Matcher) -> int:
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

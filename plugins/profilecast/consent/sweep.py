"""Finding and removing one erased person: the identifiers that name them, and the sweeps
of the warehouse, the SQLite stores and the files under ``PROFILECAST_HOME`` (see
``consent.erasure`` for the request, the registry and what stays forgotten)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profilecast.consent.erasure import Forgotten, Registry, normalize

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
    if removed and not postgres:
        wh.execute("checkpoint")  # the deletions reach the database file, not just its WAL
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
            conn.execute("pragma wal_checkpoint(truncate)")  # no old page left in the WAL
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

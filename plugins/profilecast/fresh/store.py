"""The fresh-facts store: SQLite in WAL mode beside the warehouse.

One process writes (the collector's journal thread); renders and the profile API read at
the same time, which WAL allows. Writes are idempotent by event id, so replaying a journal
segment after a crash adds nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profilecast.fresh.facts import Fact

SCHEMA = """
create table if not exists facts (
    event_id text primary key,
    kind text not null,
    id_kind text not null,
    identifier text not null,
    occurred_at text not null,
    products text not null,
    received_at text not null,
    props text not null default '{}'
);
create index if not exists facts_by_identifier on facts (id_kind, identifier);
create index if not exists facts_by_received on facts (received_at);
create table if not exists links (
    anonymous_id text not null,
    user_id text not null,
    linked_at text not null,
    primary key (anonymous_id, user_id)
);
"""


@dataclass(frozen=True)
class StoredFact:
    kind: str
    id_kind: str
    identifier: str
    occurred_at: str
    products: tuple[str, ...]
    received_at: str
    props: dict[str, Any] = field(default_factory=dict, compare=False)
    event_id: str = ""


_COLS = "kind, id_kind, identifier, occurred_at, products, received_at, props, event_id"


def _stored(row: tuple[Any, ...]) -> StoredFact:
    k, ik, i, o, p, r, props, e = row
    return StoredFact(k, ik, i, o, tuple(json.loads(p)), r, json.loads(props or "{}"), e)


class FreshStore:
    """A connection to the store at ``path`` (created on first use)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=10, check_same_thread=False
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.conn.execute("pragma journal_mode=wal")
            # The journal is the durable record; the store can be replayed from it.
            self.conn.execute("pragma synchronous=normal")
            self.conn.executescript(SCHEMA)
            columns = {r[1] for r in self.conn.execute("pragma table_info(facts)")}
            if "props" not in columns:  # a store written before facts kept properties
                self.conn.execute("alter table facts add column props text not null default '{}'")

    @classmethod
    def open_for_reading(cls, path: Path) -> FreshStore | None:
        """The store for a reader, or None when no collector has written one yet."""
        return cls(path, readonly=True) if Path(path).exists() else None

    def close(self) -> None:
        self.conn.close()

    def add(self, facts: Iterable[Fact], links: Iterable[tuple[str, str]], received_at: str) -> int:
        """Store facts and anonymous-to-user links; returns how many facts were new."""
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(
                "insert or ignore into facts (event_id, kind, id_kind, identifier, occurred_at, "
                "products, received_at, props) values (?, ?, ?, ?, ?, ?, ?, ?)",
                [f.row(received_at) for f in facts],
            )
            added = self.conn.total_changes - before
            self.conn.executemany(
                "insert or ignore into links values (?, ?, ?)",
                [(a, u, received_at) for a, u in links],
            )
        return added

    def facts_since(self, received_since: str) -> list[StoredFact]:
        """Every fact received at or after ``received_since`` (a formatted UTC timestamp)."""
        rows = self.conn.execute(
            f"select {_COLS} from facts where received_at >= ? order by occurred_at, event_id",
            (received_since,),
        ).fetchall()
        return [_stored(row) for row in rows]

    def facts_after(self, rowid: int, limit: int = 50_000) -> list[tuple[int, StoredFact]]:
        """Facts stored after position ``rowid``, in the order they were stored, with their
        positions: a reader's cursor (triggered flows) resumes from the last one it saw."""
        rows = self.conn.execute(
            f"select rowid, {_COLS} from facts where rowid > ? order by rowid limit ?",
            (rowid, limit),
        ).fetchall()
        return [(row[0], _stored(row[1:])) for row in rows]

    def facts_for(
        self, identifiers: list[tuple[str, str]], received_since: str
    ) -> list[StoredFact]:
        """The facts about the given ``(id_kind, identifier)`` pairs (the profile API)."""
        found: list[StoredFact] = []
        for id_kind, identifier in identifiers:
            rows = self.conn.execute(
                f"select {_COLS} from facts where id_kind = ? and identifier = ? "
                "and received_at >= ? order by occurred_at",
                (id_kind, identifier, received_since),
            ).fetchall()
            found += [_stored(row) for row in rows]
        return found

    def links(self, anonymous_ids: Iterable[str] | None = None) -> dict[str, str]:
        """anonymous id -> the user id an identify or alias linked it to (the latest)."""
        rows = self.conn.execute(
            "select anonymous_id, user_id from links order by linked_at"
        ).fetchall()
        wanted = set(anonymous_ids) if anonymous_ids is not None else None
        return {a: u for a, u in rows if wanted is None or a in wanted}

    def anonymous_ids_of(self, user_ids: list[str]) -> list[str]:
        """The anonymous ids identify or alias calls linked to these user ids."""
        found: list[str] = []
        for user in user_ids:
            found += [r[0] for r in self.conn.execute(
                "select anonymous_id from links where user_id = ?", (user,))]  # fmt: skip
        return found

    def stats(self) -> dict[str, Any]:
        kinds = dict(self.conn.execute("select kind, count(*) from facts group by kind"))
        latest = self.conn.execute("select max(received_at) from facts").fetchone()[0]
        return {"facts": sum(kinds.values()), "by_kind": kinds, "latest_received_at": latest}

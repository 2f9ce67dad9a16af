"""Flow state: SQLite in WAL mode beside the fresh-facts store, never the DuckDB warehouse.

The warehouse file has one writer at a time and the daily build holds it for minutes, so
triggered flows keep their own state here: per customer and flow the entry, the current
step and its due time, and why it ended; every transition in ``flow_history``; every
message in ``flow_sends`` (the flows' exactly-once ledger, keyed like the daily one); every
export batch in ``flow_batches``. One advance runs at a time (a file lock); renders and the
CLI read concurrently, which WAL allows.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists flow_state (
    flow_id text not null,
    subject text not null,          -- customer_id, or id_kind:identifier before the build knows them
    customer_id text,
    email text,
    entry_seq integer not null,
    entered_at text not null,
    entry_event_id text,
    entry_props text,               -- the entry event's properties (traits), for templates
    step_index integer not null,
    next_due_at text,
    status text not null,           -- active, completed, exited
    exit_reason text,
    updated_at text not null,
    primary key (flow_id, subject)
);
create index if not exists flow_state_due on flow_state (status, next_due_at);
create index if not exists flow_state_subject on flow_state (subject);
create table if not exists flow_history (
    flow_id text not null,
    subject text not null,
    entry_seq integer not null,
    at text not null,
    step_id text,
    transition text not null,       -- entered, sent, skipped, deferred, exited, completed
    detail text
);
create index if not exists flow_history_subject on flow_history (subject);
create table if not exists flow_sends (
    message_key text primary key,
    flow_id text not null,
    step_id text not null,
    subject text not null,
    customer_id text,
    entry_seq integer not null,
    kind text not null,
    batch_id integer not null,
    sent_at text not null
);
create index if not exists flow_sends_customer on flow_sends (customer_id, sent_at);
create table if not exists flow_batches (
    batch_id integer primary key autoincrement,
    flow_id text not null,
    day text not null,
    file text not null,
    format text not null,
    messages integer not null,
    sha256 text not null,
    state text not null,            -- pending until the file is written, then committed
    data blob,                      -- the file's bytes while pending (a crash rewrites them)
    created_at text not null,
    committed_at text
);
create index if not exists flow_history_at on flow_history (at);
create table if not exists flow_meta (key text primary key, value text);
-- What the daily campaigns sent, by day: a flow step defers when a campaign of higher
-- priority emailed the customer that day (written by the daily export).
create table if not exists campaign_contacts (
    message_key text primary key,
    customer_id text not null,
    day text not null,
    campaign_id text not null,
    kind text not null,
    priority integer not null
);
create index if not exists campaign_contacts_day on campaign_contacts (customer_id, day);
"""


@dataclass
class State:
    flow_id: str
    subject: str
    customer_id: str | None
    email: str | None
    entry_seq: int
    entered_at: str
    step_index: int
    next_due_at: str | None
    status: str
    exit_reason: str | None = None


_STATE_COLS = (
    "flow_id, subject, customer_id, email, entry_seq, entered_at, step_index, next_due_at, "
    "status, exit_reason"
)


class FlowStore:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.execute("pragma journal_mode=wal")
            self.conn.execute("pragma synchronous=full")
            self.conn.executescript(SCHEMA)

    @classmethod
    def open_for_reading(cls, path: Path) -> FlowStore | None:
        return cls(path, readonly=True) if Path(path).exists() else None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One advance at a time (a scheduled run and a CLI run may overlap)."""
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- cursor --------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("select value from flow_meta where key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "insert into flow_meta values (?, ?) on conflict (key) do update set value = excluded.value",
            (key, value),
        )

    # -- state ---------------------------------------------------------------------------
    def state(self, flow_id: str, subject: str) -> State | None:
        row = self.conn.execute(
            f"select {_STATE_COLS} from flow_state where flow_id = ? and subject = ?",
            (flow_id, subject),
        ).fetchone()
        return State(*row) if row else None

    def active_for(self, subject: str) -> list[State]:
        rows = self.conn.execute(
            f"select {_STATE_COLS} from flow_state where subject = ? and status = 'active'",
            (subject,),
        ).fetchall()
        return [State(*r) for r in rows]

    def due(self, now: str) -> list[State]:
        rows = self.conn.execute(
            f"select {_STATE_COLS} from flow_state where status = 'active' and next_due_at <= ? "
            "order by next_due_at, flow_id, subject",
            (now,),
        ).fetchall()
        return [State(*r) for r in rows]

    def save(self, s: State, now: str, entry_event_id: str | None = None,
             entry_props: str | None = None) -> None:  # fmt: skip
        self.conn.execute(
            "insert into flow_state values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (flow_id, subject) do update set customer_id = excluded.customer_id, "
            "email = excluded.email, entry_seq = excluded.entry_seq, "
            "entered_at = excluded.entered_at, "
            "entry_event_id = coalesce(excluded.entry_event_id, flow_state.entry_event_id), "
            "entry_props = coalesce(excluded.entry_props, flow_state.entry_props), "
            "step_index = excluded.step_index, next_due_at = excluded.next_due_at, "
            "status = excluded.status, exit_reason = excluded.exit_reason, "
            "updated_at = excluded.updated_at",
            (s.flow_id, s.subject, s.customer_id, s.email, s.entry_seq, s.entered_at,
             entry_event_id, entry_props, s.step_index, s.next_due_at, s.status, s.exit_reason, now),
        )  # fmt: skip

    def entry_props(self, flow_id: str, subject: str) -> dict[str, Any]:
        row = self.conn.execute(
            "select entry_props from flow_state where flow_id = ? and subject = ?",
            (flow_id, subject),
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def history(
        self, s: State, at: str, step_id: str | None, transition: str, detail: str = ""
    ) -> None:
        self.conn.execute(
            "insert into flow_history values (?, ?, ?, ?, ?, ?, ?)",
            (s.flow_id, s.subject, s.entry_seq, at, step_id, transition, detail),
        )

    def known_email(self, email: str, flow_id: str) -> bool:
        """Whether this flow has had someone with this address (under any identifier)."""
        return bool(self.conn.execute(
            "select 1 from flow_state where email = ? and flow_id = ? limit 1", (email, flow_id)
        ).fetchone())  # fmt: skip

    # -- sends and batches ---------------------------------------------------------------
    def sent(self, message_key: str) -> bool:
        return bool(self.conn.execute(
            "select 1 from flow_sends where message_key = ?", (message_key,)).fetchone())  # fmt: skip

    def next_batch_seq(self, flow_id: str, day: str) -> int:
        return int(self.conn.execute(
            "select count(*) from flow_batches where flow_id = ? and day = ?", (flow_id, day)
        ).fetchone()[0])  # fmt: skip

    def add_batch(self, flow_id: str, day: str, file: str, fmt: str, messages: int,
                  sha256: str, data: bytes, now: str) -> int:  # fmt: skip
        cur = self.conn.execute(
            "insert into flow_batches (flow_id, day, file, format, messages, sha256, state, "
            "data, created_at) values (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (flow_id, day, file, fmt, messages, sha256, data, now),
        )
        return int(cur.lastrowid)

    def pending_batches(self) -> list[tuple[int, str, str, str, bytes]]:
        return self.conn.execute(
            "select batch_id, flow_id, day, file, data from flow_batches where state = 'pending' "
            "order by batch_id"
        ).fetchall()

    def commit_batch(self, batch_id: int, now: str) -> None:
        with self.conn:
            self.conn.execute(
                "update flow_batches set state = 'committed', data = null, committed_at = ? "
                "where batch_id = ?",
                (now, batch_id),
            )

    def committed_batches(self, flow_id: str, day: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "select file, format, messages, sha256, committed_at from flow_batches "
            "where flow_id = ? and day = ? and state = 'committed' order by batch_id",
            (flow_id, day),
        ).fetchall()

    def add_send(
        self, key: str, s: State, step_id: str, kind: str, batch_id: int, now: str
    ) -> None:
        self.conn.execute(
            "insert into flow_sends values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, s.flow_id, step_id, s.subject, s.customer_id, s.entry_seq, kind, batch_id, now),
        )

    def marketing_sends_since(self, subject: str, since: str) -> list[str]:
        """When marketing flow messages went to this customer since ``since`` (oldest first)."""
        return [r[0] for r in self.conn.execute(
            "select sent_at from flow_sends where subject = ? and kind = 'marketing' "
            "and sent_at >= ? order by sent_at", (subject, since))]  # fmt: skip

    def record_campaign_contacts(self, rows: list[tuple[str, str, str, str, str, int]]) -> int:
        """(message_key, customer_id, day, campaign_id, kind, priority) of daily sends."""
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(
                "insert or ignore into campaign_contacts values (?, ?, ?, ?, ?, ?)", rows
            )
            return self.conn.total_changes - before

    def last_marketing_contact(self, subject: str, customer_id: str | None) -> str | None:
        """When this customer last got marketing mail: a flow step or a daily campaign."""
        flow = self.conn.execute("select max(sent_at) from flow_sends where subject = ? "
                                 "and kind = 'marketing'", (subject,)).fetchone()[0]  # fmt: skip
        daily = self.conn.execute("select max(day) from campaign_contacts where customer_id = ? "
                                  "and kind = 'marketing'", (customer_id,)).fetchone()[0] if (
            customer_id) else None  # fmt: skip
        return max((t for t in (flow, daily) if t), default=None)

    def campaign_contact(self, customer_id: str, day: str) -> tuple[str, int] | None:
        """The highest-priority marketing campaign that emailed the customer on ``day``."""
        row = self.conn.execute(
            "select campaign_id, priority from campaign_contacts where customer_id = ? "
            "and day = ? and kind = 'marketing' order by priority desc limit 1",
            (customer_id, day),
        ).fetchone()
        return (row[0], int(row[1])) if row else None

    def flow_claims(self, day: str, day_end: str) -> list[tuple[str, str]]:
        """(customer_id, flow_id) of marketing flow messages sent on ``day`` or due before
        ``day_end``: the daily campaigns leave these customers to the flows that outrank them."""
        return self.conn.execute(
            "select customer_id, flow_id from flow_sends where kind = 'marketing' "
            "and customer_id is not null and substr(sent_at, 1, 10) = ? "
            "union select customer_id, flow_id from flow_state where status = 'active' "
            "and customer_id is not null and next_due_at < ?",
            (day, day_end),
        ).fetchall()

    # -- reports -------------------------------------------------------------------------
    def counts(self) -> list[tuple[Any, ...]]:
        """(flow_id, status, step_index, exit_reason, subjects)."""
        return self.conn.execute(
            "select flow_id, status, step_index, coalesce(exit_reason, ''), count(*) "
            "from flow_state group by 1, 2, 3, 4 order by 1, 2, 3, 4"
        ).fetchall()

    def sends_by_step(self) -> list[tuple[str, str, int]]:
        return self.conn.execute(
            "select flow_id, step_id, count(*) from flow_sends group by 1, 2 order by 1, 2"
        ).fetchall()

    def skipped_on(self, day: str, detail_prefix: str) -> list[tuple[Any, ...]]:
        """(flow_id, subject, entry_seq, at, step_id, detail) of the day's skipped steps
        whose detail starts with the prefix."""
        return self.conn.execute(
            "select flow_id, subject, entry_seq, at, step_id, detail from flow_history "
            "where at >= ? and at < ? and transition = 'skipped' and detail like ? "
            "order by flow_id, at", (day, day + "~", detail_prefix + "%"),
        ).fetchall()  # fmt: skip

    def history_of(self, subjects: list[str]) -> list[tuple[Any, ...]]:
        marks = ", ".join("?" for _ in subjects) or "''"
        return self.conn.execute(
            f"select flow_id, subject, entry_seq, at, step_id, transition, detail from flow_history "
            f"where subject in ({marks}) order by at, rowid",
            subjects,
        ).fetchall()

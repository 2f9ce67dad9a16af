"""The profile API's data: a snapshot of the gated profiles, with the fresh facts on top.

The warehouse is a DuckDB file that one process writes at a time, so the API never reads
it: after each gated build the pipeline publishes the allow-listed fields of every profile,
and the identifiers the fresh facts name, into a SQLite file (written aside, then renamed
over the old one). The API answers from that file and the fresh-facts store.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from profilecast.fresh.overlay import Overlay, facts_cutoff
from profilecast.fresh.store import FreshStore

SCHEMA = """
create table profiles (customer_id text primary key, email_sha256 text, body text not null);
create index profiles_by_email on profiles (email_sha256);
create table identifiers (customer_id text not null, id_kind text not null, identifier text not null);
create index identifiers_by_customer on identifiers (customer_id);
create index identifiers_by_value on identifiers (id_kind, identifier);
create table meta (key text primary key, value text);
create table products (product_name text primary key, reorder_days real not null);
create table segments (customer_id text not null, segment text not null, entered_at text);
create index segments_by_segment on segments (segment, entered_at);
"""


def email_hash(email: str) -> str:
    """SHA-256 of the trimmed, lower-cased address (how ESPs and ad platforms hash it)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


#: What every snapshot holds beyond the API's allow-list: what triggered flows need to
#: address, suppress, time and personalise a message (the API never answers with them
#: unless they are on its allow-list).
FLOW_BASE_FIELDS = (
    "email", "is_emailable", "time_zone", "last_order_at", "last_cart_added_at", "cart_items",
    "cart_items_count", "country", "email_frequency",
)  # fmt: skip


def publish_profiles(
    wh: Any,
    path: Path,
    fields: tuple[str, ...],
    lookback_days: int,
    flow_fields: dict[str, set[str]] | None = None,
) -> int:
    """Write the snapshot for the current build; returns how many profiles it holds.

    ``fields`` is the profile API's allow-list; ``flow_fields`` (flow id -> the profile
    fields its conditions and templates read) are published too, for the flows only."""
    available = set(wh.columns("customer_profiles"))
    unknown = sorted(set(fields) - available)
    if unknown:
        raise ValueError(f"PROFILECAST_PROFILE_FIELDS names unknown profile column(s): {unknown}")
    stored = set(fields) | (set(FLOW_BASE_FIELDS) & available)
    for wanted in (flow_fields or {}).values():
        stored |= wanted & available  # the others are event properties, not profile columns
    cols = sorted(stored | {"customer_id", "email", "profile_as_of"})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(SCHEMA)
        frame = wh.df(f"select {', '.join(cols)} from customer_profiles")
        blocked: dict[str, dict[str, str]] = {}
        if wh.table_exists("customer_topic_consent"):
            for cid, topic, reason in wh.query(
                "select customer_id, topic, blocked_reason from customer_topic_consent "
                "where not may_email"
            ):
                blocked.setdefault(cid, {})[topic] = reason or f"may not get {topic}"
        rows = []
        for rec in frame.to_dict("records"):
            body = {f: _json_value(rec.get(f)) for f in sorted(stored)}
            body["customer_id"] = rec["customer_id"]
            # the marketing topics this customer may not get, and why (flows only)
            body["consent_blocked"] = blocked.get(rec["customer_id"], {})
            email = rec.get("email")
            digest = email_hash(email) if isinstance(email, str) and email.strip() else None
            rows.append((rec["customer_id"], digest, json.dumps(body, default=str)))
        conn.executemany("insert into profiles values (?, ?, ?)", rows)
        conn.executemany(
            "insert into identifiers values (?, ?, ?)",
            wh.query(
                "select customer_id, source, source_record_id from customer_identity_map "
                "where source in ('web_user', 'web_anonymous')"
            ),
        )
        conn.executemany(
            "insert into identifiers values (?, 'email', ?)",
            wh.query(
                "select customer_id, lower(email) from customer_profiles where email is not null"
            ),
        )
        if wh.table_exists("product_reorder_intervals"):
            conn.executemany("insert into products values (?, ?)", wh.query(
                "select product_name, cast(reorder_days as double precision) "
                "from product_reorder_intervals"))  # fmt: skip
        run_date = None
        if wh.table_exists("customer_segments"):
            conn.executemany("insert into segments values (?, ?, ?)", wh.query(
                "select customer_id, segment, cast(entered_at as varchar) from customer_segments"
            ))  # fmt: skip
            run_date = wh.query("select cast(max(run_date) as varchar) from segment_runs")[0][0]
        as_of = frame["profile_as_of"].max() if len(frame) else None
        conn.executemany(
            "insert into meta values (?, ?)",
            [("profile_as_of", str(as_of)), ("run_date", run_date),
             ("facts_cutoff", facts_cutoff(as_of, lookback_days)),
             ("api_fields", json.dumps(sorted(set(fields) | {"customer_id"})))],
        )  # fmt: skip
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)
    return len(rows)


def _topic_names() -> list[str]:
    from profilecast.config import topics_path
    from profilecast.consent.topics import load_topics

    return sorted(load_topics(topics_path()))


class ProfileReader:
    """Answers profile lookups from the snapshot, reopening it when a new one is published."""

    def __init__(self, snapshot: Path, fresh: Path) -> None:
        self.snapshot = Path(snapshot)
        self.fresh_path = Path(fresh)
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._store: FreshStore | None = None

    def _db(self) -> sqlite3.Connection | None:
        try:
            inode = self.snapshot.stat().st_ino
        except FileNotFoundError:
            return None
        if self._conn is None or inode != self._inode:
            if self._conn is not None:
                self._conn.close()
            self._conn = sqlite3.connect(
                f"file:{self.snapshot}?mode=ro", uri=True, check_same_thread=False
            )
            self._inode = inode
        return self._conn

    def _fresh(self) -> FreshStore | None:
        if self._store is None:
            self._store = FreshStore.open_for_reading(self.fresh_path)
        return self._store

    def customer_for_email_hash(self, digest: str) -> str | None:
        db = self._db()
        row = db.execute(
            "select customer_id from profiles where email_sha256 = ?", (digest.lower(),)
        ).fetchone() if db else None  # fmt: skip
        return row[0] if row else None

    def meta(self) -> dict[str, str]:
        db = self._db()
        return dict(db.execute("select key, value from meta").fetchall()) if db else {}

    def segment_entrants(self, segment: str, run_date: str) -> list[str]:
        """Customers whose current stay in ``segment`` began with the build of ``run_date``."""
        db = self._db()
        return [r[0] for r in db.execute(
            "select customer_id from segments where segment = ? and entered_at = ? order by 1",
            (segment, run_date))] if db else []  # fmt: skip

    def anniversaries(self, field: str, month_day: str) -> list[tuple[str, str]]:
        """(customer_id, the date) of profiles whose ``field`` falls on ``month_day`` (MM-DD)."""
        db = self._db()
        if db is None:
            return []
        path = "$." + field
        return db.execute(
            "select customer_id, json_extract(body, ?) from profiles "
            "where substr(json_extract(body, ?), 6, 5) = ? order by 1",
            (path, path, month_day),
        ).fetchall()

    def reorder_days(self, products: list[str]) -> float | None:
        """The shortest re-order interval (days) among these products, None when unknown."""
        db = self._db()
        if db is None or not products:
            return None
        marks = ", ".join("?" for _ in products)
        row = db.execute(
            f"select min(reorder_days) from products where product_name in ({marks})", products
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def customer_for(self, id_kind: str, identifier: str) -> str | None:
        """The customer a web user id, anonymous id or (lower-cased) email belongs to."""
        db = self._db()
        row = db.execute(
            "select customer_id from identifiers where id_kind = ? and identifier = ? limit 1",
            (id_kind, identifier),
        ).fetchone() if db else None  # fmt: skip
        return row[0] if row else None

    def identifiers_of(self, customer_id: str) -> list[tuple[str, str]]:
        """(id_kind, identifier) the snapshot links to a customer."""
        db = self._db()
        return db.execute("select id_kind, identifier from identifiers where customer_id = ?",
                          (customer_id,)).fetchall() if db else []  # fmt: skip

    def profile(self, customer_id: str, all_fields: bool = False) -> dict[str, Any] | None:
        """The published profile with the fresh facts laid over it, or None. Only the API's
        allow-listed fields unless ``all_fields`` (the flows' own use)."""
        db = self._db()
        if db is None:
            return None
        row = db.execute(
            "select body from profiles where customer_id = ?", (customer_id,)
        ).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        meta = dict(db.execute("select key, value from meta").fetchall())
        allowed = set(json.loads(meta["api_fields"])) if "api_fields" in meta else set(body)
        ids = self.identifiers_of(customer_id)
        store = self._fresh()
        facts = []
        if store is not None:
            users = [i for k, i in ids if k == "web_user"]
            ids += [("web_anonymous", a) for a in store.anonymous_ids_of(users)]
            facts = store.facts_for(sorted(set(ids)), meta.get("facts_cutoff", "0000"))
        overlay = Overlay(facts)
        built_last_order = body.get("last_order_at")
        body.update({k: v for k, v in overlay.fields(body).items() if k in body})
        if not all_fields:
            body = {k: v for k, v in body.items() if k in allowed}
        body["suppressed_by"] = overlay.suppression("marketing")
        body["unsubscribed_topics"] = overlay.unsubscribed_topics(_topic_names())
        body["resubscribed_topics"] = overlay.resubscribed_topics(_topic_names())
        chosen = overlay.frequency()
        if chosen and (all_fields or "email_frequency" in allowed):
            body["email_frequency"] = chosen  # the preference centre, since the build
        body["last_purchase_since_build"] = overlay.last("purchase")
        body["purchases_since_build"] = overlay.count_after("purchase", built_last_order)
        body["recently_viewed_since_build"] = sorted(
            {p for f in overlay.facts if f.kind == "view" for p in f.products}
        )
        body["freshness"] = {
            "profile_as_of": meta.get("profile_as_of"),
            "fresh_facts_as_of": overlay.fresh_as_of,
        }
        return body

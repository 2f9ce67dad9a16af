"""The privacy API a privacy tool calls to erase a person, and the collector's own part of
an erasure.

``POST /privacy/erasures`` (``{"email": ..., "requested_by": ...}``, a bearer token from
``PROFILECAST_PRIVACY_TOKENS``) records the request as salted digests, removes the person
from what the collector holds (the fresh facts) at once, and answers 202 with the request's
id: from that moment nothing is mailed to them and the collector keeps their new events
out. The warehouse, the landing zone, the flows and the files are swept by the daily DAG's
``apply_erasures`` task (or ``profilecast forget --apply-pending``), since only a warehouse
writer may touch the warehouse. ``GET /privacy/erasures/{id}`` returns the audit row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from profilecast.consent import erasure, sweep


class ForgottenCache:
    """The erased digests, reloaded when the registry changes (a CLI request included)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._stamp: tuple[float, ...] | None = None
        self.current = erasure.Forgotten("", frozenset())

    def get(self) -> erasure.Forgotten:
        base = self.home / "privacy" / "erasure.sqlite"
        stamp = tuple(
            p.stat().st_mtime_ns if p.exists() else 0
            for p in (base, base.with_name(base.name + "-wal"))
        )
        if stamp != self._stamp:
            self._stamp = stamp
            self.current = erasure.forgotten(self.home)
        return self.current


def keep_out(gone: erasure.Forgotten, stream: str, records: list[dict[str, Any]]) -> list[dict]:
    """The records that do not name an erased person (web events, ESP events)."""
    from profilecast.sources.catalog import spec_for
    from profilecast.sources.landing import names_forgotten

    if not gone:
        return records
    source, _, entity = stream.partition("/")
    try:
        spec = spec_for(source, entity)
    except Exception:  # noqa: BLE001 - not a source stream (the quarantine): keep as is
        return records
    return [r for r in records if not names_forgotten(spec, r, gone)]


def _matcher_for(c: Any, email: str) -> sweep.Matcher:
    """The address and the identifiers the profile snapshot links to it."""
    ids: set[str] = set()
    cid = c.profiles.customer_for("email", erasure.normalize(email))
    if cid:
        ids |= {cid} | {identifier for _, identifier in c.profiles.identifiers_of(cid)}
    emails = {erasure.normalize(email)} | {i for i in ids if "@" in i}
    first = sweep.Matcher(emails, {i for i in ids if "@" not in i})
    ids |= _fact_identifiers(c.settings.fresh_path, first)
    return sweep.Matcher(emails, {i for i in ids if "@" not in i})


def _fact_identifiers(path: Path, m: sweep.Matcher) -> set[str]:
    """The web user and anonymous ids the fresh facts tie to the person (an identify call
    with their address names their user id; links name its anonymous ids)."""
    import sqlite3

    if not path.exists():
        return set()
    conn = sqlite3.connect(path, timeout=30)
    try:
        found = {str(r[0]) for r in conn.execute("select identifier, props from facts")
                 if m.hits(r[1]) or m.hits(r[0], "identifier")}  # fmt: skip
        if found:
            marks = ", ".join("?" * len(found))
            found |= {str(r[0]) for r in conn.execute(
                f"select anonymous_id from links where user_id in ({marks})", sorted(found))}  # fmt: skip
        return {erasure.normalize(i) for i in found}
    finally:
        conn.close()


def add_privacy_routes(app: FastAPI, col: Callable[[Request], Any]) -> None:
    from profilecast.collector.routes import _bearer_ok
    from profilecast.config import privacy_tokens

    def _refused(request: Request) -> JSONResponse | None:
        tokens = privacy_tokens()
        if not tokens:
            return JSONResponse({"error": "the privacy API is off: set PROFILECAST_PRIVACY_TOKENS"},
                                404)  # fmt: skip
        if not _bearer_ok(request, tokens):
            return JSONResponse({"error": "a valid bearer token is required"}, 401)
        return None

    @app.post("/privacy/erasures")
    async def erase(request: Request) -> Any:
        """Erase a person: suppressed now, removed from the collector's stores now, from
        the warehouse and files by the next apply_erasures."""
        refused = _refused(request)
        if refused:
            return refused
        c = col(request)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        email = str((body or {}).get("email") or "").strip()
        who = str((body or {}).get("requested_by") or "privacy-api")[:200]
        try:
            rid = await asyncio.to_thread(erasure.request_erasure, email, who, c.settings.home)
        except erasure.ErasureError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        matcher = _matcher_for(c, email)
        reg = erasure.Registry(c.settings.home)
        try:  # their ids too: a later event naming only their user id stays out as well
            reg.add(rid, matcher.ids | matcher.emails)
        finally:
            reg.close()
        removed = await asyncio.to_thread(sweep.sweep_sqlite, c.settings.fresh_path, matcher)
        return JSONResponse({"request_id": rid, "status": "pending", "suppressed": True,
                             "removed_now": {"fresh_facts": removed},
                             "status_url": f"/privacy/erasures/{rid}"}, 202)  # fmt: skip

    @app.get("/privacy/erasures/{rid}")
    async def status(rid: str, request: Request) -> Any:
        """The request's audit row: when, who asked, what was removed where."""
        refused = _refused(request)
        if refused:
            return refused
        c = col(request)

        def _audit() -> dict[str, Any] | None:
            reg = erasure.Registry(c.settings.home)
            try:
                return reg.audit(rid)
            finally:
                reg.close()

        audit = await asyncio.to_thread(_audit)
        return JSONResponse(audit) if audit else JSONResponse({"error": "no such request"}, 404)

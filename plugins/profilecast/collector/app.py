"""The collector's HTTP service (FastAPI): Segment calls, ESP webhooks and the profile API.

Every accepted event is journaled and fsynced before the answer goes out, then turned into
fresh facts. A rejected event is answered 4xx with its reason and journaled in the
``_collector/quarantine`` stream, so nothing posted is lost.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from profilecast.collector import segment
from profilecast.collector.journal import GroupCommitter, Journal
from profilecast.collector.limits import RateLimiter
from profilecast.collector.profiles import ProfileReader
from profilecast.collector.segment import Rejected
from profilecast.collector.wake import DueTimer, Waker
from profilecast.config import CollectorSettings, Settings
from profilecast.config import now as config_now
from profilecast.fresh.facts import facts_from_esp, facts_from_web, links_from_web
from profilecast.fresh.store import FreshStore
from profilecast.sources.validation import format_timestamp

WEB, ESP, QUARANTINE = "web/events", "esp/events", "_collector/quarantine"


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


def apply_facts(store: FreshStore, records: list[tuple[str, dict[str, Any]]]) -> int:
    """Turn journaled records into fresh facts (idempotent: replays add nothing twice)."""
    facts, links = [], []
    for stream, record in records:
        if stream == WEB:
            facts += facts_from_web(record)
            links += links_from_web(record)
        elif stream == ESP:
            facts += facts_from_esp(record)
    return store.add(facts, links, _now()) if facts or links else 0


def replay(store: FreshStore, segments: list[Path]) -> int:
    """Apply sealed segments' records to the store (after a crash: what may be missing)."""
    added = 0
    for path in segments:
        stream = WEB if f"/{WEB}/" in str(path) else ESP if f"/{ESP}/" in str(path) else None
        if stream is None:
            continue
        lines = path.read_bytes().splitlines()
        added += apply_facts(store, [(stream, json.loads(line)) for line in lines if line.strip()])
    return added


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (gzip bodies included)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(f"body is {declared} bytes; the limit is {limit}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(f"body exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise Rejected(f"body is not valid gzip: {exc}") from None
        if len(body) > limit:
            raise Rejected(f"decompressed body exceeds the limit of {limit} bytes", 413)
    return body


class Collector:
    """What the routes share: settings, the journal writer, the stores, the limiter."""

    def __init__(self, settings: Settings, cs: CollectorSettings) -> None:
        self.settings, self.cs = settings, cs
        root = Path(settings.sources)
        self.journal = Journal(root, rotate_seconds=cs.rotate_seconds)
        self.store = FreshStore(settings.fresh_path)
        self.recovered = self.journal.recover()
        self.replayed = replay(self.store, self.recovered)
        self.waker = Waker(cs.wake_url, cs.wake_channel) if cs.wake_url else None
        self.due_timer = (
            DueTimer(settings.flows_path, self.waker, config_now) if self.waker else None
        )
        self.committer = GroupCommitter(
            self.journal,
            apply=lambda r: apply_facts(self.store, r),
            after=self.waker.notify if self.waker else None,
        )
        self.limiter = RateLimiter(cs.rate_per_key, cs.rate_burst)
        self.profiles = ProfileReader(settings.profiles_snapshot_path, settings.fresh_path)
        self.counts = {"accepted": 0, "rejected": 0}
        from profilecast.config import topics_path, unsubscribe_keys, unsubscribe_max_age
        from profilecast.consent.tokens import Tokens
        from profilecast.consent.topics import load_topics

        self.tokens = Tokens(unsubscribe_keys(), unsubscribe_max_age())
        self.topics = load_topics(topics_path())
        from profilecast.collector.privacy import ForgottenCache

        self.forgotten = ForgottenCache(settings.home)

    def close(self) -> None:
        self.committer.close()
        if self.due_timer:
            self.due_timer.close()
        if self.waker:
            self.waker.close()
        self.store.close()

    async def quarantine(self, endpoint: str, rejected: list[tuple[Any, str]]) -> None:
        received = _now()
        self.counts["rejected"] += len(rejected)
        await self.committer.commit([
            (QUARANTINE, {"received_at": received, "endpoint": endpoint, "reason": reason,
                          "payload": json.dumps(payload, default=str)[:10000]
                          if not isinstance(payload, str) else payload[:10000]})
            for payload, reason in rejected
        ])  # fmt: skip

    async def accept(self, stream: str, records: list[dict[str, Any]]) -> None:
        from profilecast.collector.privacy import keep_out

        self.counts["accepted"] += len(records)
        kept = keep_out(self.forgotten.get(), stream, records)
        if len(kept) < len(records):  # about an erased person: acknowledged, never stored
            self.counts["erased"] = self.counts.get("erased", 0) + len(records) - len(kept)
        if kept:
            await self.committer.commit([(stream, r) for r in kept])


def _error(exc: Rejected) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
    return JSONResponse({"success": False, "reason": exc.reason}, exc.status, headers=headers)


async def _segment_call(col: Collector, request: Request, call: str | None) -> JSONResponse:
    endpoint = f"/v1/{call or 'batch'}"
    limit = col.cs.max_body_bytes if call is None else col.cs.max_event_bytes
    try:
        raw = await read_body(request, limit)
        body: Any = None
        try:
            body = segment.parse_body(raw)
        except Rejected:
            if segment.key_allowed(segment.write_key_from(request.headers.get("authorization"), None),
                                   col.cs.write_keys):  # fmt: skip
                await col.quarantine(
                    endpoint, [(raw.decode("utf-8", "replace"), "body is not JSON")]
                )
            raise
        key = segment.write_key_from(request.headers.get("authorization"), body)
        if not segment.key_allowed(key, col.cs.write_keys):
            raise Rejected("unknown or missing write key", 401)
        wait = col.limiter.allow(hashlib.sha256(str(key).encode()).hexdigest())
        if wait:
            raise Rejected("rate limit for this write key exceeded", 429, retry_after=wait)
        events, shared = segment.events_of(body, call)
    except Rejected as exc:
        return _error(exc)
    received = _now()
    accepted, rejected = [], []
    for i, event in enumerate(events):
        verdict = segment.check_event(event, call, received, col.cs.max_event_bytes, shared)
        if verdict.record is not None:
            accepted.append(verdict.record)
        else:
            rejected.append((i, event, verdict.reason))
    if accepted:
        await col.accept(WEB, accepted)
    if rejected:
        await col.quarantine(endpoint, [(e, str(r)) for _, e, r in rejected])
    answer: dict[str, Any] = {"success": bool(accepted) or not events, "accepted": len(accepted)}
    if rejected:
        answer["rejected"] = [{"index": i, "reason": r} for i, _, r in rejected]
        if call is not None:
            answer["reason"] = rejected[0][2]
    return JSONResponse(answer, 200 if accepted or not rejected else 400)


def create_app(settings: Settings, cs: CollectorSettings) -> FastAPI:
    """The collector as an ASGI app (``profilecast serve`` runs it under uvicorn)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.collector = Collector(settings, cs)
        app.state.started = time.time()
        try:
            yield
        finally:
            app.state.collector.close()

    app = FastAPI(title="profilecast collector", lifespan=lifespan)

    def col(request: Request) -> Collector:
        return request.app.state.collector

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        c = col(request)
        wake = (
            {
                "sent": c.waker.sent,
                "failed": c.waker.failed,
                "last_error": c.waker.last_error,
                "flows_due": c.due_timer.wakes if c.due_timer else 0,
            }  # fmt: skip
            if c.waker
            else None
        )
        return {"status": "ok", "journal": str(c.journal.root), "committed": c.committer.committed,
                "recovered_segments": len(c.recovered), "wake": wake, **c.counts}  # fmt: skip

    def segment_route(kind: str | None):
        async def handler(request: Request) -> JSONResponse:
            return await _segment_call(col(request), request, kind)

        return handler

    for call in (*segment.CALLS, "batch", "import"):
        kind = None if call in ("batch", "import") else call
        app.add_api_route(f"/v1/{call}", segment_route(kind), methods=["POST"], name=call)

    from profilecast.collector.routes import add_esp_and_profile_routes

    add_esp_and_profile_routes(app, col)
    from profilecast.collector.unsubscribe import add_unsubscribe_routes

    add_unsubscribe_routes(app, col)
    from profilecast.collector.privacy import add_privacy_routes

    add_privacy_routes(app, col)
    from profilecast.collector.preferences import add_preference_routes

    add_preference_routes(app, col)
    return app

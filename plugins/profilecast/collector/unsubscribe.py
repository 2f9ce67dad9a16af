"""One-click unsubscribe (RFC 8058) and its confirmation pages, served by the collector.

``POST /u/{token}`` with ``List-Unsubscribe=One-Click`` (what Gmail and Yahoo send) or from
the confirmation form records the choice; ``GET /u/{token}`` only shows that form, because
mail scanners open links. The choice is journaled durably as an ESP event (so the daily
build suppresses the person too) and becomes a fresh fact before the answer goes out, so
the very next render and flow step honour it. ``POST /u/{token}/resubscribe`` undoes a topic
unsubscribe.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from profilecast.consent import pages
from profilecast.consent.tokens import TokenError, Unsubscribe


def consent_event(u: Unsubscribe, resubscribe: bool, group: int | None,
                  source: str = "unsubscribe-link") -> dict[str, Any]:  # fmt: skip
    """The ESP-shaped event for a choice made through a link. Its id includes the second it
    was made: a click repeated later (unsubscribe, resubscribe, unsubscribe) is a new
    choice, and must not be deduplicated away as the first one."""
    if resubscribe:
        kind = "group_resubscribe"
    else:
        kind = "group_unsubscribe" if u.topic else "unsubscribe"
    now = int(time.time())
    digest = hashlib.sha256(f"{kind}|{u.message_key}|{u.topic}|{now}".encode()).hexdigest()[:24]
    event = {"event": kind, "email": u.email, "timestamp": now, "sg_event_id": f"link_{digest}",
             "topic": u.topic, "source": source, "message_key": u.message_key}  # fmt: skip
    if group is not None:
        event["asm_group_id"] = group
    return event


def add_unsubscribe_routes(app: FastAPI, col: Callable[[Request], Any]) -> None:
    from profilecast.collector.routes import _journal_esp

    def _read(c: Any, token: str) -> Unsubscribe | HTMLResponse:
        try:
            return c.tokens.read(token)
        except TokenError as exc:
            return HTMLResponse(pages.error_page(exc.reason), exc.status)

    async def _record(request: Request, token: str, resubscribe: bool) -> Any:
        c = col(request)
        u = _read(c, token)
        if isinstance(u, HTMLResponse):
            return u
        if resubscribe and not u.topic:
            return HTMLResponse(pages.error_page("this link is not for one topic"), 400)
        group = c.topics[u.topic].sendgrid_group if u.topic in c.topics else None
        answer = await _journal_esp(c, "/u", [consent_event(u, resubscribe, group)])
        if answer.status_code != 200:
            return answer
        body = (await request.body()).decode(errors="replace")
        if "List-Unsubscribe=One-Click" in body:
            return JSONResponse({"success": True, "unsubscribed": u.topic or "marketing"})
        action = f"/u/{token}"
        return HTMLResponse(pages.done_page(action, u.topic, pages.mask(u.email), resubscribe))

    @app.get("/u/{token}", response_class=HTMLResponse)
    async def confirm(token: str, request: Request) -> Any:
        """Ask before anything changes (a GET must not unsubscribe)."""
        u = _read(col(request), token)
        if isinstance(u, HTMLResponse):
            return u
        return HTMLResponse(pages.confirm_page(f"/u/{token}", u.topic, pages.mask(u.email)))

    @app.post("/u/{token}")
    async def unsubscribe(token: str, request: Request) -> Any:
        """RFC 8058 one-click, or the confirmation form."""
        return await _record(request, token, resubscribe=False)

    @app.post("/u/{token}/resubscribe")
    async def resubscribe(token: str, request: Request) -> Any:
        return await _record(request, token, resubscribe=True)

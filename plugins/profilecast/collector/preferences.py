"""The preference centre, served by the collector and linked from every email.

``GET /p/{token}`` shows the customer's marketing topics (ticked where they may get them:
their latest choice, or their country's regime when they never chose) and how often they
want mail; ``POST /p/{token}`` saves the form. Each change is journaled like an ESP event
(a group unsubscribe or resubscribe per topic, a ``preference`` event for the frequency),
so the send-time overlay applies it before the answer and the daily build records it in
``customer_topic_consent`` and ``customer_profiles.email_frequency``.

The token is the email's sealed link token. The form is protected against cross-site
requests: GET sets a random nonce in an HttpOnly, SameSite=Strict cookie and signs it,
with the token's digest, into a hidden field (``itsdangerous``, with every unsubscribe key
for rotation, valid two hours); POST needs both to agree. Plain HTML forms only: the page
works with the keyboard alone and with JavaScript disabled.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from profilecast.consent import pages
from profilecast.consent.tokens import TokenError, Unsubscribe

COOKIE = "pc_csrf"
CSRF_MAX_AGE = 2 * 3600


def _serializer(c: Any) -> Any:
    from itsdangerous import URLSafeTimedSerializer

    # itsdangerous signs with the last key and verifies with all of them.
    return URLSafeTimedSerializer(list(reversed(c.tokens.secrets)),
                                  salt="profilecast-preferences-csrf")  # fmt: skip


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def _marketing(c: Any) -> list[Any]:
    return [t for t in c.topics.values() if t.kind == "marketing"]


def current_choices(c: Any, u: Unsubscribe) -> tuple[dict[str, bool], str]:
    """Per marketing topic whether the customer gets it now, and their frequency: the
    build's verdict with the fresh facts (this page's own saves included) on top."""
    from profilecast.fresh.overlay import Overlay

    cid = c.profiles.customer_for("email", u.email) or u.customer_id
    profile = c.profiles.profile(cid, all_fields=True) if cid else None
    names = [t.name for t in _marketing(c)]
    if profile is None:  # not in the build yet: what the fresh facts say
        overlay = Overlay(c.store.facts_for([("email", u.email)], "0000"))
        profile = {"unsubscribed_topics": overlay.unsubscribed_topics(names),
                   "resubscribed_topics": overlay.resubscribed_topics(names),
                   "email_frequency": overlay.frequency()}  # fmt: skip
    blocked = profile.get("consent_blocked") or {}
    left = set(profile.get("unsubscribed_topics") or [])
    back = set(profile.get("resubscribed_topics") or [])
    state = {t: t not in left and (t not in blocked or t in back) for t in names}
    return state, str(profile.get("email_frequency") or "all")


def add_preference_routes(app: FastAPI, col: Callable[[Request], Any]) -> None:
    from profilecast.collector.routes import _journal_esp
    from profilecast.collector.unsubscribe import consent_event

    def _read(c: Any, token: str) -> Unsubscribe | HTMLResponse:
        try:
            return c.tokens.read(token)
        except TokenError as exc:
            return HTMLResponse(pages.error_page(exc.reason), exc.status)

    @app.get("/p/{token}", response_class=HTMLResponse)
    async def show(token: str, request: Request, saved: int = 0) -> Any:
        """The form, with a fresh CSRF nonce."""
        c = col(request)
        u = _read(c, token)
        if isinstance(u, HTMLResponse):
            return u
        state, frequency = current_choices(c, u)
        nonce = secrets.token_urlsafe(18)
        csrf = _serializer(c).dumps({"n": nonce, "t": _token_digest(token)})
        topics = [(t.name, t.description, state[t.name]) for t in _marketing(c)]
        page = pages.preferences_page(f"/p/{token}", pages.mask(u.email), topics, frequency,
                                      csrf, saved=bool(saved))  # fmt: skip
        resp = HTMLResponse(page, headers={"Cache-Control": "no-store",
                                           "Referrer-Policy": "no-referrer"})  # fmt: skip
        resp.set_cookie(COOKIE, nonce, max_age=CSRF_MAX_AGE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/p/")  # fmt: skip
        return resp

    @app.post("/p/{token}")
    async def save(token: str, request: Request) -> Any:
        """Save the form: one journaled event per change, then back to the page."""
        from itsdangerous import BadSignature

        c = col(request)
        u = _read(c, token)
        if isinstance(u, HTMLResponse):
            return u
        form = await request.form()
        try:
            signed = _serializer(c).loads(str(form.get("csrf") or ""), max_age=CSRF_MAX_AGE)
        except BadSignature:
            signed = None
        nonce = request.cookies.get(COOKIE)
        if (not signed or not nonce or not secrets.compare_digest(str(signed.get("n")), nonce)
                or signed.get("t") != _token_digest(token)):  # fmt: skip
            return HTMLResponse(pages.error_page(
                "this form has expired or did not come from this page: open the link in the "
                "email again and save once more"), 403)  # fmt: skip
        frequency = str(form.get("frequency") or "all")
        if frequency not in {v for v, _ in pages.FREQUENCIES}:
            return HTMLResponse(pages.error_page(f"unknown frequency {frequency!r}"), 400)
        wanted = {str(v) for v in form.getlist("topic")}
        state, current_frequency = current_choices(c, u)
        events = []
        for t in _marketing(c):
            on = t.name in wanted
            if on != state[t.name]:
                events.append(consent_event(replace(u, topic=t.name), on, t.sendgrid_group,
                                            source="preference-centre"))  # fmt: skip
        if frequency != current_frequency:
            now = int(time.time())
            digest = hashlib.sha256(f"pref|{u.message_key}|{frequency}|{now}".encode()).hexdigest()
            events.append({"event": "preference", "email": u.email, "timestamp": now,
                           "sg_event_id": f"pref_{digest[:24]}", "frequency": frequency,
                           "source": "preference-centre", "message_key": u.message_key})  # fmt: skip
        if events:
            answer = await _journal_esp(c, "/p", events)
            if answer.status_code != 200:
                return answer
        return RedirectResponse(f"/p/{token}?saved=1", status_code=303)

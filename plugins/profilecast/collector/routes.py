"""The collector's ESP webhooks and the profile API (the Segment routes are in ``app``)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from profilecast.collector import webhooks
from profilecast.collector.segment import Rejected, parse_body
from profilecast.sources.catalog import spec_for
from profilecast.sources.validation import rejection


def _error(exc: Rejected) -> JSONResponse:
    return JSONResponse({"success": False, "reason": exc.reason}, exc.status)


async def _journal_esp(col: Any, endpoint: str, events: list[Any]) -> JSONResponse:
    """Journal ESP events that pass the extract's own validation; quarantine the rest."""
    spec = spec_for("esp", "events")
    accepted, rejected = [], []
    for event in events:
        reason = rejection(spec, event)
        if reason:
            rejected.append((event, reason))
        else:
            accepted.append(event)
    if accepted:
        await col.accept("esp/events", accepted)
    if rejected:
        await col.quarantine(endpoint, rejected)
    body = {"success": True, "accepted": len(accepted),
            "rejected": [r for _, r in rejected]}  # fmt: skip
    return JSONResponse(body, 200 if accepted or not rejected else 400)


def _bearer_ok(request: Request, tokens: tuple[str, ...]) -> bool:
    auth = request.headers.get("authorization", "")
    if not tokens or not auth.lower().startswith("bearer "):
        return False
    given = auth[7:].strip().encode()
    return any(hmac.compare_digest(given, t.encode()) for t in tokens)


def _ses_message(c: Any, body: bytes) -> tuple[JSONResponse | None, list[dict[str, Any]]]:
    """A verified SNS message: an answer (subscription, other types) or the ESP events."""
    message = parse_body(body, dict, "an SNS message is a JSON object")
    webhooks.verify_sns(message, c.cs.sns_cert_hosts, c.cs.sns_topics)
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        webhooks.confirm_subscription(message, c.cs.sns_cert_hosts)
        return JSONResponse({"success": True, "confirmed": message.get("TopicArn")}), []
    if kind != "Notification":
        return JSONResponse({"success": True, "ignored": kind}), []
    try:
        note = json.loads(str(message.get("Message") or ""))
    except json.JSONDecodeError:
        raise Rejected("the SNS Message is not an SES notification (not JSON)") from None
    return None, webhooks.ses_events(note if isinstance(note, dict) else {})


def add_esp_and_profile_routes(app: FastAPI, col: Callable[[Request], Any]) -> None:
    @app.post("/webhooks/sendgrid")
    async def sendgrid(request: Request) -> JSONResponse:
        """SendGrid's Event Webhook: the ECDSA signature is checked before anything else."""
        from profilecast.collector.app import read_body

        c = col(request)
        try:
            body = await read_body(request, c.cs.max_body_bytes)
            webhooks.verify_sendgrid(
                c.cs.sendgrid_key,
                request.headers.get(webhooks.SENDGRID_SIGNATURE),
                request.headers.get(webhooks.SENDGRID_TIMESTAMP),
                body,
                c.cs.sendgrid_max_age,
            )
            events = webhooks.sendgrid_events(body)
        except Rejected as exc:
            return _error(exc)
        return await _journal_esp(c, "/webhooks/sendgrid", events)

    @app.post("/webhooks/ses")
    async def ses(request: Request) -> JSONResponse:
        """SES notifications through SNS: signature verified, subscriptions confirmed."""
        from profilecast.collector.app import read_body

        c = col(request)
        try:
            body = await read_body(request, c.cs.max_body_bytes)
            answer, events = _ses_message(c, body)
            if answer is not None:
                return answer
        except Rejected as exc:
            return _error(exc)
        return await _journal_esp(c, "/webhooks/ses", events)

    def _profile_answer(c: Any, request: Request, customer_id: str | None) -> JSONResponse:
        if not _bearer_ok(request, c.cs.api_tokens):
            return JSONResponse({"reason": "missing or unknown bearer token"}, 401)
        profile = c.profiles.profile(customer_id) if customer_id else None
        if profile is None:
            return JSONResponse({"reason": "no such customer"}, 404)
        return JSONResponse(profile)

    @app.get("/v1/profiles/by-email-hash/{digest}")
    async def profile_by_email(digest: str, request: Request) -> JSONResponse:
        """Look a customer up by the SHA-256 of their lower-cased address."""
        c = col(request)
        if not _bearer_ok(request, c.cs.api_tokens):
            return JSONResponse({"reason": "missing or unknown bearer token"}, 401)
        return _profile_answer(c, request, c.profiles.customer_for_email_hash(digest))

    @app.get("/v1/profiles/{customer_id}")
    async def profile(customer_id: str, request: Request) -> JSONResponse:
        """The current profile: the published build with the fresh facts laid over it."""
        return _profile_answer(col(request), request, customer_id)

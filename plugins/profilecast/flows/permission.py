"""Whether a flow step may mail a customer now: consent, suppression, erasure, and the
customer's own frequency choice. Pure functions of the profile and the stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from profilecast.campaigns.audiences import FREQUENCY_DAYS
from profilecast.flows.definition import Flow
from profilecast.flows.store import FlowStore, State
from profilecast.sources.validation import parse_timestamp


def may_not_mail(flow: Flow, profile: dict[str, Any], email: str | None, suppressions: Any,
                 regimes: Any) -> str | None:  # fmt: skip
    """Why this customer may not get this flow's mail any more, or None."""
    marketing = flow.kind == "marketing"
    if suppressions.erased(email, profile.get("customer_id")):
        return "erased"
    stop = profile.get("suppressed_by")
    if stop and (stop != "unsubscribe" or marketing):
        return str(stop)
    if marketing and flow.topic in (profile.get("unsubscribed_topics") or []):
        return f"unsubscribe from {flow.topic}"
    if marketing:
        why = consent_gap(flow.topic, profile, regimes)
        if why:
            return why
    if marketing and profile.get("is_emailable") is False:
        return "not emailable"
    if not email:
        return "no email address"
    if marketing and suppressions.stops(email, flow.topic):
        return "suppression list"
    return None


def consent_gap(topic: str, profile: dict[str, Any], regimes: Any) -> str | None:
    """Why the build's consent verdict (customer_topic_consent) keeps this topic from the
    customer; for someone the build does not know yet, whether their country's regime asks
    for an opt-in that nobody has recorded."""
    if "consent_blocked" in profile:
        return (profile.get("consent_blocked") or {}).get(topic)
    regime = regimes.for_country(profile.get("country"))
    if regime == "opt_out":
        return None
    where = profile.get("country") or "unknown country"
    return f"has no opt-in for {topic} yet ({where} is {regime})"


def preference_wait(flow: Flow, s: State, profile: dict[str, Any], now: datetime,
                    store: FlowStore) -> tuple[datetime, str] | None:  # fmt: skip
    """When the customer's own choice in the preference centre (at most one marketing email
    a week or a month) lets them have this one, or None when it does now."""
    days = FREQUENCY_DAYS.get(str(profile.get("email_frequency") or "all"))
    if flow.kind != "marketing" or not days:
        return None
    last = parse_timestamp(store.last_marketing_contact(s.subject, s.customer_id))
    if last is None:
        return None
    until = last + timedelta(days=days)
    if until <= now:
        return None
    return until, f"the customer asked for at most one email {profile['email_frequency']}"


def current_regimes() -> Any:
    """The per-country consent regimes of the topics file."""
    from profilecast.config import topics_path
    from profilecast.consent.topics import load_regimes

    return load_regimes(topics_path())

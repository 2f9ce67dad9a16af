"""Campaign audiences: who gets which campaign on a run date.

Segment members, minus excluded segments, minus non-emailable profiles (marketing), minus
those without consent for the campaign's topic (marketing: opted out, or no opt-in where
the country's regime asks for one), minus the frequency cap, one campaign per customer per
day (highest priority wins), each with a deterministic ``message_key``. Reads marts only; nothing reads it back into dbt.
"""

from __future__ import annotations

from typing import Any

from profilecast.campaigns.definition import Campaign, message_key

#: the preference centre's frequencies: at most one marketing email per this many days
FREQUENCY_DAYS = {"all": 0, "weekly": 7, "monthly": 30}


def build_audiences(wh: Any, campaigns: list[Campaign], run_date: str) -> dict[str, int]:
    """Write ``campaign_audiences`` rows for ``run_date`` (replacing a previous attempt)."""
    import pandas as pd

    # Tuples, not frames: iterating a million profiles' text columns through pandas took
    # most of this stage (its Arrow-backed strings box one value at a time).
    by_segment: dict[str, set[str]] = {}
    for cid, segment in wh.query("select customer_id, segment from customer_segments"):
        by_segment.setdefault(segment, set()).add(cid)
    # At most one marketing email a week or a month, where the customer chose so in the
    # preference centre.
    gaps = {f: days for f, days in FREQUENCY_DAYS.items() if days}
    chosen_gap = {
        cid: gaps[f]
        for cid, f in wh.query(
            "select customer_id, email_frequency from customer_profiles "
            f"where email_frequency in ({', '.join('%s' for _ in gaps)})",
            tuple(gaps),
        )
    } if gaps else {}  # fmt: skip
    emailable = {cid for (cid,) in wh.query(
        "select customer_id from customer_profiles where is_emailable")}  # fmt: skip
    # Transactional mail (receipts, account notices) ignores marketing opt-outs but never
    # goes to an address that bounced or complained, or to no address at all.
    reachable = {cid for (cid,) in wh.query(
        "select customer_id from customer_profiles where email is not null "
        "and bounced_at is null and complained_at is null")}  # fmt: skip
    # Only customers with a complaint can be left out of a promotion over it.
    complainers = None
    if any(c.promoted_product for c in campaigns):
        complainers = wh.df(
            "select customer_id, last_complaint_product, last_complaint_at "
            "from customer_profiles where last_complaint_product is not null"
        )
    # Days from run_date to each customer's nearest send on another date, before or after:
    # a backfill or a rerun of an earlier day must respect sends made by later days too.
    # A holdout row counts as a send: the control group is capped like the people mailed,
    # or it would come back every day and be counted again.
    nearest: dict[str, int] = {}
    contacted = [t for t in ("send_ledger", "experiment_holdouts") if wh.table_exists(t)]
    if contacted:
        union = " union all ".join(f"select customer_id, run_date from {t}" for t in contacted)
        for cid, days in wh.query(
            "select customer_id, min(abs(cast(run_date as date) - cast(%s as date))) "
            f"from ({union}) as sent where cast(run_date as date) <> cast(%s as date) group by 1",
            (run_date, run_date),
        ):
            nearest[cid] = int(days)
    # Who may not get a topic's marketing: opted out of it or of all marketing, or without
    # the opt-in their country's regime asks for (customer_topic_consent decides).
    left_topic: dict[str, set[str]] = {}
    if wh.table_exists("customer_topic_consent"):
        for cid, topic in wh.query(
            "select customer_id, topic from customer_topic_consent where not may_email"
        ):
            left_topic.setdefault(topic, set()).add(cid)
    taken: set[str] = set()
    rows = []
    counts = {}
    for c in campaigns:  # highest priority first
        audience: set[str] = set()
        for seg in c.segments:
            audience |= by_segment.get(seg, set())
        for seg in c.exclude_segments:
            audience -= by_segment.get(seg, set())
        audience &= emailable if c.kind == "marketing" else reachable
        if c.kind == "marketing":
            audience -= left_topic.get(c.topic or "", set())
        if c.promoted_product:
            audience -= complained_about(
                complainers, c.promoted_product, run_date, c.complaint_window_days
            )
        if c.kind == "marketing" and chosen_gap:
            audience = {
                cid
                for cid in audience
                if cid not in chosen_gap or nearest.get(cid, 10**6) >= chosen_gap[cid]
            }
        if c.frequency_cap_days:
            audience = {
                cid
                for cid in audience
                if cid not in nearest or nearest[cid] >= c.frequency_cap_days
            }
        audience -= taken
        taken |= audience
        counts[c.campaign_id] = len(audience)
        rows += [
            {
                "run_date": run_date,
                "campaign_id": c.campaign_id,
                "customer_id": cid,
                "message_key": message_key(c.campaign_id, cid, run_date),
                "kind": c.kind,
                "topic": c.topic,
            }
            for cid in sorted(audience)
        ]
    frame = pd.DataFrame(
        rows, columns=["run_date", "campaign_id", "customer_id", "message_key", "kind", "topic"]
    )
    wh.replace_rows(
        "campaign_audiences", "run_date", run_date, frame, column_types={"run_date": "date"}
    )
    return counts


def complained_about(profiles: Any, product: str, run_date: str, window_days: int) -> set[str]:
    """Customers whose latest complaint, within the window, is about ``product``."""
    import pandas as pd

    cutoff = pd.Timestamp(run_date) - pd.Timedelta(days=window_days)
    hit = (profiles["last_complaint_product"].fillna("").str.lower() == product.lower()) & (
        pd.to_datetime(profiles["last_complaint_at"]) >= cutoff
    )
    return set(profiles.loc[hit, "customer_id"])

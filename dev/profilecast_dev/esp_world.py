"""A simulated ESP and the people it mails: feedback for what profilecast exported, with
effects that are known, so the results can be checked against them.

For each message in a day's message log the world draws, from a random stream seeded by the
message key, whether it is delivered, opened by a person, fetched by Apple Mail Privacy
Protection, clicked, unsubscribed, complained about, and whether the customer orders within
the day after it went out. Holdout rows get the baseline conversion only. The effects:

- conversion = ``base_conversion`` + ``send_lift`` for a sent message + the variant's lift;
- the open rate depends on the campaign (its audience) and the variant;
- opens are likelier at the customer's preferred local hour (``preferred_hour``).

The events go where real ones would: ESP events into ``<sources>/esp/events/`` (SendGrid's
shape, with the message's custom args echoed) and orders as web ``Order Completed`` events
into ``<sources>/web/events/``. Every outcome is also returned (and written as truth).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TRUTH_COLUMNS = ("message_key", "campaign_id", "experiment_id", "variant", "status",
                 "customer_id", "run_date", "delivered", "bounced", "opened", "machine_open",
                 "clicked", "unsubscribed", "complained", "converted", "revenue",
                 "p_convert", "send_hour", "preferred_hour")  # fmt: skip


@dataclass(frozen=True)
class Effects:
    """The world's true rates. Lifts are absolute (added to a probability)."""

    base_conversion: float = 0.04
    send_lift: float = 0.03
    #: (experiment_id, variant) -> conversion lift on top of send_lift
    variant_lift: dict[tuple[str, str], float] = field(default_factory=dict)
    open_rate: dict[str, float] = field(default_factory=dict)  # by campaign
    default_open: float = 0.25
    variant_open_lift: dict[tuple[str, str], float] = field(default_factory=dict)
    #: open rate multiplier when the message arrives within an hour of the preferred hour
    preferred_hour_boost: float = 1.6
    click_given_open: float = 0.3
    delivered: float = 0.97
    mpp_share: float = 0.3
    unsubscribe: float = 0.01
    complaint: float = 0.002


#: The demo world: the cart reminder's "urgency" variant converts 3 points better.
DEFAULT_EFFECTS = Effects(
    variant_lift={("cart_reminder_2026_11", "urgency"): 0.03},
    open_rate={"vip_thank_you": 0.35, "cart_reminder": 0.25, "welcome_series": 0.30},
    variant_open_lift={("cart_reminder_2026_11", "urgency"): 0.05},
)


def unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    seed = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "country_timezones.csv"
    with seed.open(newline="") as fh:
        return {r["country"]: r["time_zone"] for r in csv.DictReader(fh)}


def country_time_zone(country: str) -> str:
    """The country's time zone as the warehouse knows it (the dbt seed), UTC when unknown."""
    return _zones().get(country, "UTC")


def preferred_hour(email: str) -> int:
    """The local hour this person reads mail at most (7 to 22), fixed per address (the
    generator times their opens by it, the world's open rate favours it)."""
    return 7 + int(unit("hour", str(email).strip().lower()) * 16)


def outcome(record: dict[str, Any], effects: Effects, seed: int,
            send_hour: int | None = None, email: str | None = None) -> dict[str, Any]:  # fmt: skip
    """What happens to one message-log record (deterministic for seed and message key).
    ``send_hour`` is the local hour it arrives at (None: not timed)."""
    rng = random.Random(f"{seed}|{record['message_key']}")
    exp, variant = record.get("experiment_id") or "", record.get("variant") or ""
    held = record.get("status") == "holdout"
    p_convert = effects.base_conversion
    out = {k: 0 for k in ("delivered", "bounced", "opened", "machine_open", "clicked",
                          "unsubscribed", "complained")}  # fmt: skip
    hour = preferred_hour(email or str(record.get("customer_id")))
    if not held:
        p_convert += effects.send_lift + effects.variant_lift.get((exp, variant), 0.0)
        if rng.random() < effects.delivered:
            out["delivered"] = 1
            p_open = effects.open_rate.get(record["campaign_id"], effects.default_open)
            p_open += effects.variant_open_lift.get((exp, variant), 0.0)
            if send_hour is not None and abs(send_hour - hour) <= 1:
                p_open *= effects.preferred_hour_boost
            out["machine_open"] = int(unit("mpp", record.get("customer_id")) < effects.mpp_share)
            out["opened"] = int(rng.random() < min(p_open, 1.0))
            out["clicked"] = int(out["opened"] and rng.random() < effects.click_given_open)
            out["unsubscribed"] = int(rng.random() < effects.unsubscribe)
            out["complained"] = int(rng.random() < effects.complaint)
        else:
            out["bounced"] = 1
    converted = int(rng.random() < p_convert)
    return {
        **{k: record.get(k) for k in ("message_key", "campaign_id", "experiment_id", "variant",
                                      "status", "customer_id", "run_date")},
        **out,
        "converted": converted,
        "revenue": round(20 + rng.random() * 100, 2) if converted else 0.0,
        "p_convert": p_convert,
        "send_hour": send_hour,
        "preferred_hour": hour,
    }  # fmt: skip


def _log_records(sources: Path, ds: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((sources / "sends" / "messages").glob(f"*/{ds}-*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def _recipients(exports: Path, ds: str) -> dict[str, str]:
    """message_key -> address, as the ESP reads the day's committed batches."""
    from profilecast.export.formats import FORMATS

    out = {}
    for manifest_path in exports.glob(f"*/{ds}/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        for batch in manifest["batches"]:
            data = gzip.decompress((manifest_path.parent / batch["file"]).read_bytes())
            for line in data.decode().splitlines():
                for m in FORMATS[batch["format"]].read(json.loads(line)):
                    out[m["message_key"]] = m["to"]
    return out


def _customers(warehouse: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(customer -> a web user id, customer -> time zone) from the warehouse."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        users = dict(con.execute(
            "select customer_id, min(source_record_id) from int_identities_resolved "
            "where source = 'web_user' group by customer_id"
        ).fetchall())  # fmt: skip
        zones = dict(con.execute(
            "select customer_id, coalesce(time_zone, 'UTC') from customer_profiles"
        ).fetchall())  # fmt: skip
        return users, zones
    finally:
        con.close()


def _ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def feedback(sources: Path, exports: Path, warehouse: Path, ds: str, truth_dir: Path,
             seed: int = 0, effects: Effects = DEFAULT_EFFECTS) -> list[dict[str, Any]]:  # fmt: skip
    """Write the ESP events and orders for the messages of run date ``ds``; returns the
    outcomes. A message whose customer has no web user id cannot order here (it is
    recorded with converted 0). Rewriting a day gives the same files."""
    records = _log_records(sources, ds)
    to = _recipients(exports, ds)
    users, zones = _customers(warehouse)
    esp_lines, web_lines, truth = [], [], []
    # Everything happens before the next run's interval ends (run date + 2 days), so the
    # next run loads all of it: a send timed late in the day has its events compressed.
    cap = datetime.fromisoformat(ds).replace(tzinfo=UTC) + timedelta(days=2, minutes=-5)
    for rec in sorted(records, key=lambda r: r["message_key"]):
        sent = _ts(rec.get("send_at") or rec["sent_at"])
        local = sent.astimezone(ZoneInfo(zones.get(rec["customer_id"]) or "UTC"))
        res = outcome(rec, effects, seed, local.hour if rec.get("send_at") else None,
                      to.get(rec["message_key"]))  # fmt: skip
        user = users.get(rec["customer_id"])
        if user is None:
            res.update(converted=0, revenue=0.0, p_convert=0.0)
        truth.append(res)
        key = rec["message_key"]
        if rec["status"] == "sent" and key in to:
            base = {"email": to[key], "sg_message_id": f"sim.{key}", "message_key": key,
                    "campaign_id": rec["campaign_id"], "experiment_id": rec["experiment_id"],
                    "variant": rec["variant"]}  # fmt: skip
            at = sent + timedelta(minutes=1)
            events = [("delivered", at, {})] if res["delivered"] else [("bounce", at, {})]
            if res["machine_open"]:
                events.append(("open", at + timedelta(minutes=1), {"sg_machine_open": True}))
            if res["opened"]:
                events.append(("open", sent + timedelta(hours=2), {"sg_machine_open": False}))
            if res["clicked"]:
                events.append(("click", sent + timedelta(hours=2, minutes=3),
                               {"url": "https://shop.example.com/cart"}))  # fmt: skip
            if res["unsubscribed"]:
                events.append(("unsubscribe", sent + timedelta(hours=3), {}))
            if res["complained"]:
                events.append(("spamreport", sent + timedelta(hours=3), {}))
            for event, t, extra in events:
                t = min(t, cap)
                esp_lines.append({**base, **extra, "event": event, "timestamp": int(t.timestamp()),
                                  "sg_event_id": f"sim-{key}-{event}-{int(t.timestamp())}"})  # fmt: skip
        if res["converted"]:
            t = min(sent + timedelta(hours=6), cap)
            web_lines.append({
                "type": "track", "event": "Order Completed",
                "messageId": f"sim-order-{key}", "userId": user, "anonymousId": None,
                "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "receivedAt": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "properties": {"order_id": f"sim_{key[:16]}", "total": res["revenue"],
                               "revenue": res["revenue"], "currency": "EUR", "products": []},
                "context": {"library": {"name": "esp_world", "version": "1"}},
            })  # fmt: skip
    for rel, lines in ((f"esp/events/{ds}-feedback.jsonl", esp_lines),
                       (f"web/events/{ds}-orders.jsonl", web_lines)):  # fmt: skip
        if lines:
            path = sources / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / f"experiments-{ds}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(truth)
    return truth

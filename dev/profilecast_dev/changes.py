"""Daily increments for the sample: the sources keep changing after the history ends.

For each day after ``end_date`` the generator writes what the sources would drop that day,
under ``increments/<day>/<source>/<entity>.<ext>``:

* new contacts (with their own web visits and billing records);
* web sessions and orders of existing people (a few of them arriving late, stamped one or
  two days earlier), with the billing charge of each order;
* one ESP send with deliveries, opens, clicks, and unsubscribes, spam complaints and hard
  bounces;
* updates to existing records: CRM email changes, billing plan changes and cancellations,
  billing email changes, and CRM merges (the duplicate contact re-sent with the surviving
  contact's address, as a CRM does after a merge).

Every change is written to ``truth/changes.csv`` (day, kind, person, source, entity, record
id, detail as JSON), so a multi-day run can be checked against what really happened.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from profilecast_dev.generate import (
    CONTACT_COLUMNS,
    PLANS,
    PRODUCTS,
    PersonState,
    _contact_row,
    _esp,
    _hid,
    _unix,
    _web,
    _write_person,
    _Writers,
)

CHANGE_COLUMNS = ["day", "kind", "person_id", "source", "entity", "record_id", "detail"]
#: Per person and day (new contacts: per day, as a share of the initial contacts).
DAILY_RATES = {
    "new_contact": 0.004,
    "web_session": 0.06,
    "late_session": 0.1,  # share of sessions that arrive one or two days late
    "esp_send": 0.5,
    "unsubscribe": 0.003,
    "spamreport": 0.001,
    "bounce": 0.002,
    "crm_email_change": 0.002,
    "billing_email_change": 0.002,
    "plan_change": 0.004,
    "cancellation": 0.004,
    "crm_merge": 0.01,  # of people with a duplicate contact
}


def write_increments(
    out: Path,
    seed: int,
    contacts: int,
    states: list[PersonState],
    history_end: datetime,
    days: int,
    companies: list,
) -> dict[str, int]:
    """Write ``days`` daily increments after ``history_end``; returns rows per file."""
    counts: dict[str, int] = {}
    truth = _Writers(out)
    next_index = contacts
    try:
        for d in range(days):
            day_start = history_end + timedelta(days=d)
            day_end = day_start + timedelta(days=1)
            ds = day_start.strftime("%Y-%m-%d")
            w = _Writers(out / "increments" / ds)
            try:
                for state in states:
                    _person_day(w, truth, seed, state, day_start, day_end, ds)
                n_new = max(1, round(contacts * DAILY_RATES["new_contact"]))
                for _ in range(n_new):
                    st = _write_person(
                        w, seed, next_index, day_start, day_end, companies, [], truth_w=truth,
                        truth_file="truth/records-increments.csv",
                    )  # fmt: skip
                    _change(truth, ds, "new_contact", st, "crm", "contacts", st.contact_id, {})
                    states.append(st)
                    next_index += 1
            finally:
                w.close()
            for k, v in w.counts.items():
                counts[f"increments/{ds}/{k}"] = v
    finally:
        truth.close()
    counts["truth/changes.csv"] = truth.counts.get("truth/changes.csv", 0)
    if not counts["truth/changes.csv"]:  # no change at all: the header alone
        (out / "truth").mkdir(parents=True, exist_ok=True)
        (out / "truth" / "changes.csv").write_text(",".join(CHANGE_COLUMNS) + "\n")
    return counts


def _change(
    truth: _Writers, ds: str, kind: str, st: PersonState, source: str, entity: str,
    record_id: str, detail: dict[str, Any],
) -> None:  # fmt: skip
    person_id = st.person.person_id if st.person else ""
    truth.csv_row("truth/changes.csv", CHANGE_COLUMNS,
                  [ds, kind, person_id, source, entity, record_id, json.dumps(detail)])  # fmt: skip


def _daily_send(
    w: _Writers,
    truth: _Writers,
    rng: random.Random,
    seed: int,
    st: PersonState,
    day_start: datetime,
    day_end: datetime,
    ds: str,
) -> None:
    """Today's promotion to one recipient, its feedback, and an opt-out when there is one."""
    p = st.person
    email = p.email
    sent = day_start + timedelta(hours=10)
    k = 10_000 + (day_start - datetime(2000, 1, 1, tzinfo=day_start.tzinfo)).days
    msg = f"{_hid(seed, 'msg', st.index, k, n=22)}.filter0001"
    base = {"email": email, "sg_message_id": msg, "category": ["promotions"]}
    _esp(w, rng, seed, st.index, k, "delivered", sent + timedelta(minutes=1), base, day_end)
    r = rng.random()
    if r < DAILY_RATES["bounce"]:
        _esp(w, rng, seed, st.index, k, "bounce", sent + timedelta(minutes=2),
             {**base, "type": "bounce", "reason": "550 5.1.1 mailbox unavailable"},
             day_end)  # fmt: skip
        st.opted_out = True
        _change(truth, ds, "bounce", st, "esp", "events", email, {"email": email})
    else:
        if rng.random() < p.engagement:
            t = sent + timedelta(hours=rng.uniform(0.1, 8))
            _esp(w, rng, seed, st.index, k, "open", t, base, day_end)
            if rng.random() < p.engagement * 0.6:
                _esp(w, rng, seed, st.index, k, "click", t + timedelta(minutes=1),
                     {**base, "url": f"https://shop.example.com/p/{rng.choice(PRODUCTS)[0]}"},
                     day_end)  # fmt: skip
        r = rng.random()
        if r < DAILY_RATES["unsubscribe"]:
            _esp(w, rng, seed, st.index, k, "unsubscribe", sent + timedelta(hours=2), base,
                 day_end)  # fmt: skip
            st.opted_out = True
            _change(truth, ds, "unsubscribe", st, "esp", "events", email, {"email": email})
        elif r < DAILY_RATES["unsubscribe"] + DAILY_RATES["spamreport"]:
            _esp(w, rng, seed, st.index, k, "spamreport", sent + timedelta(hours=3), base,
                 day_end)  # fmt: skip
            st.opted_out = True
            _change(truth, ds, "spamreport", st, "esp", "events", email, {"email": email})


def _person_day(
    w: _Writers,
    truth: _Writers,
    seed: int,
    st: PersonState,
    day_start: datetime,
    day_end: datetime,
    ds: str,
) -> None:
    p = st.person
    if p is None or p.created_at >= day_start:
        return
    rng = random.Random(f"{seed}-day-{ds}-{st.index}")
    span = (day_end - day_start).total_seconds()

    def at() -> datetime:
        return day_start + timedelta(seconds=rng.uniform(0.0, span * 0.95))

    # --- web sessions and orders ---------------------------------------------------------
    if st.anon and rng.random() < DAILY_RATES["web_session"] * (0.5 + p.engagement):
        t = at()
        received_at = None
        if rng.random() < DAILY_RATES["late_session"]:
            received_at = t  # sent today, stamped one or two days earlier
            t = t - timedelta(days=rng.choice((1, 2)))
        _session(w, rng, seed, st, t, day_end, ds, truth, received_at)

    # --- ESP: today's send ---------------------------------------------------------------
    if st.esp_recipient and not st.opted_out and rng.random() < DAILY_RATES["esp_send"]:
        _daily_send(w, truth, rng, seed, st, day_start, day_end, ds)

    # --- updates to existing records -----------------------------------------------------
    if st.contact_id and not st.dup_id and rng.random() < DAILY_RATES["crm_email_change"]:
        local, domain = p.email.split("@")
        new_email = f"{local}.{ds.replace('-', '')}@{domain}"
        p.email = new_email
        row = _contact_row(p, rng, st.contact_id, at())
        row[1] = new_email
        w.csv_row("crm/contacts.csv", CONTACT_COLUMNS, row)
        _change(truth, ds, "crm_email_change", st, "crm", "contacts", st.contact_id,
                {"email": new_email})  # fmt: skip
    if st.dup_id and rng.random() < DAILY_RATES["crm_merge"]:
        row = _contact_row(p, rng, st.dup_id, at())
        row[1] = p.email
        w.csv_row("crm/contacts.csv", CONTACT_COLUMNS, row)
        _change(truth, ds, "crm_merge", st, "crm", "contacts", st.dup_id,
                {"survivor_contact_id": st.contact_id})  # fmt: skip
        st.dup_id = ""
    if st.cus_id and rng.random() < DAILY_RATES["billing_email_change"]:
        local, domain = st.billing_email.split("@")
        st.billing_email = f"{local}.b{ds.replace('-', '')}@{domain}"
        t = at()
        w.json_row("billing/customers.jsonl", {
            "id": st.cus_id, "object": "customer", "email": st.billing_email,
            "name": f"{p.first} {p.last}", "phone": None, "currency": p.city[5],
            "created": _unix(p.created_at), "updated": _unix(t),
            "address": {"city": p.city[0], "country": p.city[2], "postal_code": None},
            "metadata": {"crm_contact_id": st.contact_id} if st.contact_id else {},
            "livemode": False,
        })  # fmt: skip
        _change(truth, ds, "billing_email_change", st, "billing", "customers", st.cus_id,
                {"email": st.billing_email})  # fmt: skip
    sub = st.subscription
    if sub and not sub["canceled"] and sub["created"] < _unix(day_start):  # started already
        r = rng.random()
        if r < DAILY_RATES["cancellation"]:
            t = at()
            sub["canceled"] = True
            _subscription(w, st, sub, "canceled", t, canceled_at=t)
            _change(truth, ds, "cancellation", st, "billing", "subscriptions", sub["id"],
                    {"status": "canceled"})  # fmt: skip
        elif r < DAILY_RATES["cancellation"] + DAILY_RATES["plan_change"]:
            t = at()
            sub["plan"] = rng.choice([pl[0] for pl in PLANS if pl[0] != sub["plan"]])
            _subscription(w, st, sub, "active", t)
            _change(truth, ds, "plan_change", st, "billing", "subscriptions", sub["id"],
                    {"plan": sub["plan"], "status": "active"})  # fmt: skip


def _subscription(
    w: _Writers, st: PersonState, sub: dict[str, Any], status: str, t: datetime,
    canceled_at: datetime | None = None,
) -> None:  # fmt: skip
    plan = next(pl for pl in PLANS if pl[0] == sub["plan"])
    w.json_row("billing/subscriptions.jsonl", {
        "id": sub["id"], "object": "subscription", "customer": st.cus_id, "status": status,
        "created": sub["created"], "current_period_start": sub["created"],
        "current_period_end": sub["created"] + 30 * 86400,
        "canceled_at": _unix(canceled_at) if canceled_at else None,
        "updated": _unix(t), "currency": sub["currency"],
        "items": {"object": "list", "data": [{"id": f"si_{_hid(sub['id'])}", "quantity": 1,
                  "price": {"id": plan[0], "nickname": plan[1], "unit_amount": plan[2],
                            "currency": sub["currency"],
                            "recurring": {"interval": "month", "interval_count": 1}}}]},
    })  # fmt: skip


def _session(
    w: _Writers, rng: random.Random, seed: int, st: PersonState, t: datetime,
    end: datetime, ds: str, truth: _Writers, received_at: datetime | None,
) -> None:  # fmt: skip
    """A short visit: pages, product views, maybe a cart, maybe an order (with its charge)."""
    p = st.person
    assert p is not None
    user_id = st.contact_id if st.identifies else None
    i = st.index
    emitted: list[tuple[str, dict[str, Any]]] = []
    cart: list[tuple] = []
    for _ in range(rng.randint(1, 4)):
        t += timedelta(seconds=rng.randrange(10, 240))
        prod = rng.choice(PRODUCTS)
        emitted.append(("page", {"t": t, "name": prod[2], "props": {
            "path": f"/c/{prod[2].lower()}", "title": prod[2], "category": prod[2]}}))  # fmt: skip
        emitted.append(("track", {"t": t, "event": "Product Viewed", "props": {
            "product_id": prod[0], "name": prod[1], "category": prod[2], "price": prod[3] / 100}}))  # fmt: skip
        if rng.random() < 0.3:
            cart.append(prod)
            emitted.append(("track", {"t": t, "event": "Product Added", "props": {
                "product_id": prod[0], "name": prod[1], "category": prod[2],
                "price": prod[3] / 100, "quantity": 1}}))  # fmt: skip
    order = None
    if cart and rng.random() < min(0.9, p.buyer * 2):
        t += timedelta(seconds=rng.randrange(30, 600))
        order = f"ord_{_hid(seed, i, ds, 'day')}"
        total = sum(c[3] for c in cart)
        emitted.append(("track", {"t": t, "event": "Order Completed", "props": {
            "order_id": order, "total": total / 100, "revenue": total / 100,
            "currency": p.city[5].upper(),
            "products": [{"product_id": c[0], "name": c[1], "category": c[2],
                          "price": c[3] / 100, "quantity": 1} for c in cart]}}))  # fmt: skip
        if st.cus_id:
            w.json_row("billing/charges.jsonl", {
                "id": f"ch_{_hid(order)}", "object": "charge", "customer": st.cus_id,
                "amount": total, "amount_refunded": 0, "currency": p.city[5],
                "status": "succeeded", "paid": True, "invoice": None,
                "created": _unix(min(t, end - timedelta(seconds=1))),
                "metadata": {"order_id": order}})  # fmt: skip
    for kind, e in emitted:
        msg_end = end if received_at is None else received_at + timedelta(days=3)
        _web(w, rng, seed, i, kind, st.anon, user_id, e["t"], msg_end,
             event=e.get("event"), name=e.get("name"), props=e["props"])  # fmt: skip
    if received_at is not None:
        _change(truth, ds, "late_events", st, "web", "events", st.anon,
                {"stamped": t.strftime("%Y-%m-%d"), "events": len(emitted)})  # fmt: skip
    if order:
        _change(truth, ds, "order", st, "web", "events", order, {})

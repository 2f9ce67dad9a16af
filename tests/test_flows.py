"""Triggered flows without Airflow: definitions, and the engine on a real fresh-facts store,
a real profile snapshot and a local export folder, with the clock moved by hand."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profilecast.collector.app import ESP, WEB, apply_facts
from profilecast.collector.profiles import SCHEMA, ProfileReader, email_hash
from profilecast.config import REPO_ROOT
from profilecast.consent.tokens import Tokens
from profilecast.flows import FlowError, load_flows
from profilecast.flows.definition import load_flow
from profilecast.flows.engine import FlowEngine
from profilecast.flows.store import FlowStore
from profilecast.flows.timing import quiet_until, zone
from profilecast.fresh.store import FreshStore
from profilecast.storage import ObjectStore

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FLOWS = REPO_ROOT / "flows"


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _track(user: str, event: str, at: datetime, n: int, **props) -> tuple[str, dict]:
    return WEB, {"type": "track", "userId": user, "event": event, "timestamp": _iso(at),
                 "messageId": f"m{n}", "properties": props}  # fmt: skip


def _identify(user: str, email: str, at: datetime, n: int, **traits) -> tuple[str, dict]:
    return WEB, {"type": "identify", "userId": user, "timestamp": _iso(at), "messageId": f"m{n}",
                 "traits": {"email": email, **traits}}  # fmt: skip


def _snapshot(path: Path, profiles: list[dict], users: dict[str, str],
              segments: tuple = (), products: tuple = ()) -> None:  # fmt: skip
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("insert into segments values (?, ?, ?)", segments)
    conn.executemany("insert into products values (?, ?)", products)
    for p in profiles:
        conn.execute("insert into profiles values (?, ?, ?)",
                     (p["customer_id"], email_hash(p["email"]), json.dumps(p)))  # fmt: skip
        conn.execute(
            "insert into identifiers values (?, 'email', ?)", (p["customer_id"], p["email"])
        )
    for user, cid in users.items():
        conn.execute("insert into identifiers values (?, 'web_user', ?)", (cid, user))
    conn.executemany("insert into meta values (?, ?)", [
        ("profile_as_of", "2026-11-26 00:00:00"), ("facts_cutoff", "2026-11-23 00:00:00.000000"),
        ("api_fields", json.dumps(["customer_id", "first_name"])), ("run_date", "2026-11-25")])  # fmt: skip
    conn.commit()
    conn.close()


class World:
    """A fresh store, a snapshot with two built customers, a flow store and an export folder."""

    def __init__(self, tmp: Path, flows_dir: Path = FLOWS, milestones: bool = False) -> None:
        self.tmp = tmp
        self.fresh_path = tmp / "facts.sqlite"
        self.fresh = FreshStore(self.fresh_path)
        history = {"orders_count": 2, "first_order_at": "2024-11-26 09:30:00",
                   "last_order_at": "2026-08-01 10:00:00"} if milestones else {"orders_count": 3}  # fmt: skip
        segments = [("C1", "win_back", "2026-11-25"), ("C1", "inactive_60_days", "2026-11-25"),
                    ("C2", "win_back", "2026-10-01")] if milestones else []  # fmt: skip
        _snapshot(tmp / "profiles.sqlite", [
            {"customer_id": "C1", "email": "ann@example.com", "first_name": "Ann",
             "is_emailable": True, "cart_items": None, "cart_items_count": 0,
             "last_cart_added_at": None, "time_zone": "Europe/Berlin",
             "recommended_products": "Mug, Map", **history},
            {"customer_id": "C2", "email": "bob@example.com", "first_name": "Bob",
             "is_emailable": False, "cart_items": None, "cart_items_count": 0,
             "orders_count": 0, "time_zone": "America/New_York"},
        ], {"u-ann": "C1", "u-bob": "C2"}, segments, [("Fuel Canister", 30.0)])  # fmt: skip
        self.exports = tmp / "exports"
        self.flows = load_flows(flows_dir)
        self.n = 0

    def post(self, *records: tuple[str, dict]) -> None:
        apply_facts(self.fresh, list(records))

    def next_id(self) -> int:
        self.n += 1
        return self.n

    def advance(self, at: datetime, target=None, sources=None):
        store = FlowStore(self.tmp / "flows.sqlite")
        reader = ProfileReader(self.tmp / "profiles.sqlite", self.fresh_path)
        fresh = FreshStore.open_for_reading(self.fresh_path)
        try:
            engine = FlowEngine(self.flows, store, reader, fresh,
                                target or ObjectStore(self.exports.as_uri()),
                                (Tokens(("test-key",), 3600), "https://mail.test"),
                                sources)  # fmt: skip
            return engine.advance(at)
        finally:
            store.close()
            fresh.close()

    def messages(self) -> list[dict]:
        out = []
        for f in sorted(self.exports.rglob("batch-*.jsonl.gz")):
            for line in gzip.decompress(f.read_bytes()).decode().splitlines():
                rec = json.loads(line)
                out += _flatten(rec, f.parts[-3])
        return out

    def sends(self) -> list[tuple]:
        conn = sqlite3.connect(self.tmp / "flows.sqlite")
        try:
            return conn.execute(
                "select flow_id, step_id, subject from flow_sends order by 1, 2, 3"
            ).fetchall()
        finally:
            conn.close()

    def state(self, flow_id: str, subject: str) -> tuple:
        conn = sqlite3.connect(self.tmp / "flows.sqlite")
        try:
            return conn.execute("select status, exit_reason, step_index from flow_state "
                                "where flow_id = ? and subject = ?", (flow_id, subject)).fetchone()  # fmt: skip
        finally:
            conn.close()


def _deferred(tmp: Path, flow_id: str) -> tuple[str, str]:
    """(next_due_at, why) of a flow's deferred step."""
    conn = sqlite3.connect(tmp / "flows.sqlite")
    try:
        return conn.execute(
            "select s.next_due_at, h.detail from flow_state s join flow_history h "
            "on h.flow_id = s.flow_id and h.subject = s.subject and h.transition = 'deferred' "
            "where s.flow_id = ?", (flow_id,)).fetchone()  # fmt: skip
    finally:
        conn.close()


def _flatten(rec: dict, flow_id: str) -> list[dict]:
    """One dict per message whatever the format, read back as an ESP would."""
    from profilecast.export.formats import FORMATS

    fmt = (
        "ses" if "BulkEmailEntries" in rec else "sendgrid" if "personalizations" in rec else "jsonl"
    )
    return [{**m, "campaign_id": flow_id} for m in FORMATS[fmt].read(rec)]


def test_the_built_in_flows_load_and_errors_name_file_line_and_field(tmp_path):
    flows = {f.flow_id: f for f in load_flows(FLOWS)}
    assert {"cart_abandonment", "welcome_series", "browse_abandonment"} <= set(flows)
    cart = flows["cart_abandonment"]
    assert cart.entry_events == ("cart_add",) and cart.exit_on == ["purchase"]
    assert [s.delay.after for s in cart.steps] == [timedelta(minutes=30), timedelta(hours=24)]
    assert flows["welcome_series"].steps[0].delay.after == timedelta(0)

    bad = tmp_path / "oops.yml"
    bad.write_text("kind: marketing\ntopic: promotions\nentry:\n  event: cart_add\n"
                   "steps:\n  - id: a\n    delay: {weeks: 2}\n    message: cart_abandonment_1\n")  # fmt: skip
    with pytest.raises(FlowError, match=r"oops\.yml:7: steps\[0\]\.delay: unknown unit"):
        load_flow(bad, FLOWS / "messages")
    bad.write_text("topic: promotions\nentry:\n  event: clicked\nsteps: []\n")
    with pytest.raises(FlowError, match=r"oops\.yml:3: entry\.event: \['clicked'\]"):
        load_flow(bad, FLOWS / "messages")
    bad.write_text("topic: promotions\nentry: {event: view}\nsteps:\n  - message: nope\n")
    with pytest.raises(
        FlowError, match=r"oops\.yml:4: steps\[0\]\.message: no message folder 'nope'"
    ):
        load_flow(bad, FLOWS / "messages")
    bad.write_text("entry: {event: view}\nsteps:\n  - message: welcome_1\n")
    with pytest.raises(FlowError, match=r"oops\.yml:1: topic: every flow names its consent topic"):
        load_flow(bad, FLOWS / "messages")
    bad.write_text("topic: promotions\nentry: {event: view}\nsteps:\n  - message: welcome_1\n"
                   "    when: {field: x, op: bigger, value: 1}\n")  # fmt: skip
    with pytest.raises(FlowError, match=r"oops\.yml:5: steps\[0\]\.when: op 'bigger'"):
        load_flow(bad, FLOWS / "messages")


def test_cart_flow_sends_at_30_minutes_once_and_an_order_ends_it(tmp_path):
    w = World(tmp_path)
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Trail Tent"),
           _track("u-new", "Product Added", T0, w.next_id(), name="Stove"),
           _identify("u-new", "neo@example.com", T0, w.next_id(), firstName="Neo"))  # fmt: skip
    first = w.advance(T0 + timedelta(minutes=1))
    assert first.entered == 3  # two carts, one welcome (neo's address is new)
    assert w.sends() == [("welcome_series", "hello", "web_user:u-new")]
    assert not [m for m in w.messages() if m["campaign_id"] == "cart_abandonment"]

    w.advance(T0 + timedelta(minutes=31))
    carts = [m for m in w.messages() if m["campaign_id"] == "cart_abandonment"]
    assert sorted(m["to"] for m in carts) == ["ann@example.com", "neo@example.com"]
    ann = next(m for m in carts if m["to"] == "ann@example.com")
    assert "Trail Tent" in ann["html"] and "Ann" in ann["subject"]
    again = w.advance(T0 + timedelta(minutes=32))  # nothing new is due: nothing twice
    assert again.sent == {} and len(w.sends()) == 3

    w.post(_track("u-new", "Order Completed", T0 + timedelta(hours=2), w.next_id(),
                  products=[{"name": "Stove"}]))  # fmt: skip
    out = w.advance(T0 + timedelta(hours=25))
    assert out.exited == {"purchase": 1}
    assert w.state("cart_abandonment", "web_user:u-new")[:2] == ("exited", "purchase")
    assert ("cart_abandonment", "last_call", "C1") in w.sends()
    assert ("cart_abandonment", "last_call", "web_user:u-new") not in w.sends()
    manifests = [json.loads(p.read_text())
                 for p in sorted(w.exports.rglob("cart_abandonment/*/manifest.json"))]  # fmt: skip
    assert [(m["day"], m["total_rows"]) for m in manifests] == [
        ("2026-11-26", 2),
        ("2026-11-27", 1),
    ]


def test_unsubscribe_mid_flow_stops_it_and_not_emailable_never_sends(tmp_path):
    w = World(tmp_path)
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Tent"),
           _track("u-bob", "Product Added", T0, w.next_id(), name="Lamp"))  # fmt: skip
    w.advance(T0 + timedelta(minutes=31))
    assert w.sends() == [("cart_abandonment", "reminder", "C1")]
    assert w.state("cart_abandonment", "C2")[:2] == ("exited", "not emailable")
    # A signed SendGrid unsubscribe (an ESP event by email) between the two steps.
    w.post((ESP, {"event": "unsubscribe", "email": "ann@example.com", "sg_event_id": "e1",
                  "timestamp": int((T0 + timedelta(hours=1)).timestamp())}))  # fmt: skip
    out = w.advance(T0 + timedelta(hours=30))
    assert out.exited == {"unsubscribe": 1} and out.sent == {}
    assert w.state("cart_abandonment", "C1")[:2] == ("exited", "unsubscribe")


def test_welcome_series_three_steps_at_their_delays_known_email_not_welcomed(tmp_path):
    w = World(tmp_path)
    w.post(_identify("u-zoe", "zoe@example.com", T0, w.next_id(), first_name="Zoe"),
           _identify("u-ann", "ANN@example.com", T0, w.next_id()))  # fmt: skip
    w.advance(T0)
    assert w.sends() == [("welcome_series", "hello", "web_user:u-zoe")]
    hello = w.messages()[0]
    assert hello["to"] == "zoe@example.com" and "Zoe" in hello["subject"]
    w.advance(T0 + timedelta(days=1, hours=23))
    assert len(w.sends()) == 1
    w.advance(T0 + timedelta(days=2, minutes=1))
    assert [s[1] for s in w.sends()] == ["best_sellers", "hello"]
    w.advance(T0 + timedelta(days=5, minutes=2))
    assert sorted(s[1] for s in w.sends()) == ["best_sellers", "first_order_offer", "hello"]
    assert w.state("welcome_series", "web_user:u-zoe")[0] == "completed"
    # A second identify with the same address does not start it again.
    w.post(_identify("u-zoe", "zoe@example.com", T0 + timedelta(days=6), w.next_id()))
    assert w.advance(T0 + timedelta(days=6, minutes=1)).entered == 0


def test_a_cart_emptied_before_the_second_step_skips_it(tmp_path):
    w = World(tmp_path)
    w.post(_track("u-x", "Product Added", T0, w.next_id(), name="Tent"),
           _identify("u-x", "x@example.com", T0, w.next_id()))  # fmt: skip
    w.advance(T0 + timedelta(minutes=31))
    w.post(_track("u-x", "Product Removed", T0 + timedelta(hours=1), w.next_id(), name="Tent"))
    out = w.advance(T0 + timedelta(hours=25))
    assert out.skipped == 1 and out.sent == {}
    assert w.state("cart_abandonment", "web_user:u-x")[0] == "completed"


def test_quiet_hours_defer_to_the_customers_morning(tmp_path):
    ny = zone("America/New_York")
    three_am = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 03:00 in New York
    window = load_flows(FLOWS)[0].quiet_hours  # cart: 22:00-07:00
    assert quiet_until(three_am, window, ny) == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 26, 15, 0, tzinfo=UTC), window, ny) is None
    assert quiet_until(datetime(2026, 11, 27, 3, 30, tzinfo=UTC), window, ny) == datetime(
        2026, 11, 27, 12, 0, tzinfo=UTC
    )  # 22:30 the evening before


def test_a_crash_between_claim_and_write_rewrites_the_same_batch_once(tmp_path):
    w = World(tmp_path)
    w.post(_identify("u-q", "q@example.com", T0, w.next_id()))

    class Failing(ObjectStore):
        def write(self, rel, data, content_type, overwrite=False):
            if "batch-" in rel:
                raise OSError("disk gone")
            super().write(rel, data, content_type, overwrite)

    with pytest.raises(OSError):
        w.advance(T0 + timedelta(seconds=5), target=Failing(w.exports.as_uri()))
    assert w.sends() == [("welcome_series", "hello", "web_user:u-q")]  # claimed
    assert not list(w.exports.rglob("batch-*"))
    out = w.advance(T0 + timedelta(seconds=10))
    assert out.recovered == 1 and out.sent == {}
    assert [m["to"] for m in w.messages()] == ["q@example.com"]


def test_flow_state_reads_no_warehouse(tmp_path):
    """The engine works from the snapshot alone: no warehouse file exists in this world."""
    w = World(tmp_path)
    w.post(_track("u-ann", "Product Viewed", T0, w.next_id(), name="Lamp"))
    w.advance(T0 + timedelta(hours=2, minutes=1))
    assert w.sends() == [("browse_abandonment", "nudge", "C1")]
    assert "Lamp" in w.messages()[0]["subject"]
    assert not list(tmp_path.rglob("*.duckdb"))
    shutil.rmtree(w.exports)


def test_a_flow_step_defers_to_a_daily_campaign_that_outranks_it_the_same_day(tmp_path):
    w = World(tmp_path)
    store = FlowStore(tmp_path / "flows.sqlite")
    store.record_campaign_contacts(
        [
            ("k1", "C1", "2026-11-26", "vip_thank_you", "marketing", 95),
            ("k2", "C1", "2026-11-27", "newsletter", "marketing", 10),
        ]
    )
    store.close()
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Tent"))
    out = w.advance(T0 + timedelta(minutes=31))
    assert out.deferred == 1 and out.sent == {}
    # Past midnight UTC it is 01:01 in Berlin: quiet hours hold it until 07:00 local.
    out = w.advance(T0 + timedelta(hours=12, minutes=1))
    assert out.deferred == 1 and out.sent == {}
    # At 07:00 Berlin; that day only a lower-priority campaign emailed them: the flow goes.
    out = w.advance(T0 + timedelta(hours=18, minutes=1))
    assert out.sent == {"cart_abandonment": 1}


def _sent(w: World) -> set[tuple[str, str]]:
    return {(f, step) for f, step, _ in w.sends()}


def test_segment_entries_anniversaries_and_nth_order_milestones(tmp_path):
    w = World(tmp_path, milestones=True)
    out = w.advance(T0)  # 12:00 UTC is 13:00 in Berlin
    # A new win_back stay and a new inactive_60_days stay enter (C2's win_back stay is old);
    # the first order was on 26 November 2024: the anniversary flow enters too, and its
    # 09:00 (Berlin) has passed: it goes now; the others wait for their local hour.
    assert out.entered == 3 and out.sent == {"first_order_anniversary": 1}
    assert w.advance(T0 + timedelta(minutes=5)).entered == 0  # same build, same day
    w.advance(T0 + timedelta(hours=21))  # the next day, 10:00 in Berlin
    assert _sent(w) == {
        ("first_order_anniversary", "anniversary"),
        ("re_engagement", "we_miss_you"),
    }
    w.advance(T0 + timedelta(hours=22, minutes=1))  # 11:00 in Berlin
    assert ("win_back", "offer") in _sent(w)
    anniversary = next(m for m in w.messages() if m["campaign_id"] == "first_order_anniversary")
    assert anniversary["subject"] == "2 years on the trail together"

    # The third order (two in the build, one now): a thank-you two hours later; a purchase
    # ends win-back; replenishment waits the canister's 30 days less 3, at 10:00 local.
    w.post(_track("u-ann", "Order Completed", T0 + timedelta(days=2), w.next_id(),
                  products=[{"name": "Fuel Canister"}]))  # fmt: skip
    out = w.advance(T0 + timedelta(days=2, minutes=1))
    assert out.exited == {"purchase": 2}  # win_back, and re_engagement (exit on purchase)
    w.advance(T0 + timedelta(days=2, hours=2, minutes=2))
    assert ("third_order", "thank_you") in _sent(w)
    assert ("replenishment", "running_low") not in _sent(w)
    conn = sqlite3.connect(tmp_path / "flows.sqlite")
    due = conn.execute(
        "select next_due_at from flow_state where flow_id = 'replenishment'"
    ).fetchone()[0]
    conn.close()
    # 28 Nov 12:00 UTC + 27 days is 25 Dec 13:00 in Berlin: the next 10:00 there.
    assert due.startswith("2026-12-26 09:00")
    w.advance(T0 + timedelta(days=30, hours=-3, minutes=-1))
    assert ("replenishment", "running_low") not in _sent(w)
    w.advance(T0 + timedelta(days=30, hours=-3))
    assert ("replenishment", "running_low") in _sent(w)
    refill = next(m for m in w.messages() if m["campaign_id"] == "replenishment")
    assert "Fuel Canister" in refill["subject"]


def test_every_built_in_flow_message_renders_with_and_without_data():
    from profilecast.campaigns.templates import CompiledCampaign

    full = {"first_name": "Ann", "cart_items": "Tent, Stove", "cart_items_count": 2,
            "recommended_products": "Mug, Map", "products": "Fuel Canister", "years": 2,
            "top_category": "Camping", "recently_viewed_products": "Lamp"}  # fmt: skip
    rendered = 0
    for flow in load_flows(FLOWS):
        for step in flow.steps:
            compiled = CompiledCampaign(step.message)
            for profile in (full, {}):
                msg = compiled.render(profile, "0" * 32)
                assert msg["subject"].strip() and msg["text"].strip(), (flow.flow_id, step.step_id)
                assert "None" not in msg["subject"] + msg["text"], (flow.flow_id, step.step_id)
            out = compiled.render(full, "0" * 32)
            if "first_name" in compiled.fields:
                assert "Ann" in out["subject"] + out["html"], (flow.flow_id, step.step_id)
            rendered += 1
    assert rendered == 14


def test_the_frequency_cap_defers_a_browse_nudge_after_two_cart_emails(tmp_path):
    w = World(tmp_path)
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Tent"))
    w.advance(T0 + timedelta(minutes=31))
    w.advance(T0 + timedelta(hours=24, minutes=31))
    assert _sent(w) == {("cart_abandonment", "reminder"), ("cart_abandonment", "last_call")}
    w.post(_track("u-ann", "Product Viewed", T0 + timedelta(hours=25), w.next_id(), name="Lamp"))
    out = w.advance(T0 + timedelta(hours=27, minutes=1))
    assert out.deferred == 1 and out.sent == {}
    due, detail = _deferred(tmp_path, "browse_abandonment")
    assert due.startswith("2026-11-29 12:31") and detail.startswith("frequency cap: 2")
    assert w.advance(T0 + timedelta(days=3, minutes=32)).sent == {"browse_abandonment": 1}


def test_the_due_timer_wakes_the_flows_once_a_step_is_due_and_not_in_a_loop(tmp_path):
    import time as _time

    from profilecast.collector.wake import DueTimer

    w = World(tmp_path)
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Tent"))
    w.advance(T0 + timedelta(minutes=1))  # entered; the reminder is due at 12:30

    class Waker:
        due = 0

        def notify_due(self):
            self.due += 1

    def until(cond, seconds=10.0):
        deadline = _time.monotonic() + seconds
        while not cond() and _time.monotonic() < deadline:
            _time.sleep(0.01)
        return cond()

    clock = {"now": T0 + timedelta(minutes=29)}
    waker = Waker()
    timer = DueTimer(
        tmp_path / "flows.sqlite", waker, lambda: clock["now"], period=0.02, repeat=1.5
    )
    try:
        _time.sleep(0.3)
        assert waker.due == 0  # not due yet
        clock["now"] = T0 + timedelta(minutes=30, seconds=1)
        assert until(lambda: waker.due >= 1)
        _time.sleep(0.5)
        assert waker.due == 1  # one wake for the due step, not one per tick
        assert until(lambda: waker.due >= 2)  # still due after `repeat` (a slow run): again
        w.advance(clock["now"])  # sent: the next due is a day away
        before = waker.due
        _time.sleep(0.6)
        assert waker.due == before
    finally:
        timer.close()


def test_the_builds_consent_verdict_and_the_country_regime_stop_a_flow(tmp_path):
    """A built customer the build says may not get promotions (no opt-in in an opt-in
    country) never gets the cart reminder; someone the build does not know yet, who says
    they live in Germany (opt_in in consent/topics.yml), is not welcomed until an opt-in
    is recorded; one in the US (opt_out) is."""
    w = World(tmp_path)
    conn = sqlite3.connect(tmp_path / "profiles.sqlite")
    body = json.loads(
        conn.execute("select body from profiles where customer_id = 'C1'").fetchone()[0]
    )
    body["consent_blocked"] = {"promotions": "has no opt-in for promotions (DE is opt_in)"}
    conn.execute("update profiles set body = ? where customer_id = 'C1'", (json.dumps(body),))
    conn.commit()
    conn.close()
    w.post(_track("u-ann", "Product Added", T0, w.next_id(), name="Tent"),
           _identify("u-uwe", "uwe@example.de", T0, w.next_id(), first_name="Uwe", country="DE"),
           _identify("u-amy", "amy@example.com", T0, w.next_id(), first_name="Amy", country="US"))  # fmt: skip
    w.advance(T0 + timedelta(minutes=31))
    assert w.sends() == [("welcome_series", "hello", "web_user:u-amy")]
    assert w.state("cart_abandonment", "C1")[:2] == (
        "exited", "has no opt-in for promotions (DE is opt_in)")  # fmt: skip
    assert w.state("welcome_series", "web_user:u-uwe")[:2] == (
        "exited", "has no opt-in for newsletter yet (DE is opt_in)")  # fmt: skip
    assert all(m["to"] != "uwe@example.de" for m in w.messages())


def test_a_weekly_preference_holds_the_next_marketing_email_for_a_week(tmp_path):
    """Ann chose "at most one email a week" in the preference centre (a fresh preference
    fact, newer than the build): after the cart reminder, the second cart email waits
    until a week after the first."""
    w = World(tmp_path)
    w.post((ESP, {"event": "preference", "email": "ann@example.com", "frequency": "weekly",
                  "sg_event_id": "pref-1", "timestamp": int(T0.timestamp())}),
           _track("u-ann", "Product Added", T0, w.next_id(), name="Tent"))  # fmt: skip
    w.advance(T0 + timedelta(minutes=31))
    assert w.sends() == [("cart_abandonment", "reminder", "C1")]
    out = w.advance(T0 + timedelta(hours=24, minutes=31))
    assert out.deferred == 1 and out.sent == {}
    due, detail = _deferred(tmp_path, "cart_abandonment")
    assert due.startswith("2026-12-03 12:31") and "at most one email weekly" in detail
    assert w.advance(T0 + timedelta(days=7, minutes=32)).sent == {"cart_abandonment": 1}

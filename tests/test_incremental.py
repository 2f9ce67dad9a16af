"""Incremental builds give what a full rebuild gives.

Several days of the changing world (new contacts, late web sessions, daily ESP sends,
merges, email changes) are loaded and built one interval after another, incrementally,
with a rerun of a finished interval in between. The same warehouse is then rebuilt with
``--full-refresh`` and every compared table must hold the same rows. A backfill (an
earlier interval after a later one) must also match its full rebuild.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from profilecast import pipeline
from profilecast.sources.catalog import SOURCE_NAMES

FIRST = date(2026, 11, 1)
DAYS = 3
#: Bookkeeping columns of the incremental layers: when and from what a row was computed.
BOOKKEEPING = ("_identity_fingerprint", "_ingested_at", "_first_ingested_at", "_as_of",
               "_compared_at", "_staged_at", "_labelled_at")  # fmt: skip
COMPARED = (
    "stg_web__events",
    "stg_esp__events",
    "stg_sends__messages",
    "stg_web__order_items",
    "int_web_events_identified",
    "int_esp_events_identified",
    "int_customers_engagement_aggregated",
    "int_customers_behaviour_aggregated",
    "int_customers_identity_survived",
    "int_event_identities_aggregated",
    "int_identity_records_unioned",
    "int_identity_clusters_deterministic",
    "int_identity_pairs_compared",
    "int_identity_sample_pairs_compared",
    "int_identity_u_probabilities",
    "customer_identity_edges",
    "customer_identity_map",
    "customer_profiles",
    "customer_segments",
    "customer_send_times",
    "int_customers_recommendations_derived",
    "int_products_co_purchased",
    "product_reorder_intervals",
    "campaign_results",
)


def _interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _run(day: date, settings) -> dict:
    start, end = _interval(day)
    manifests = [pipeline.extract(s, start, end, settings) for s in SOURCE_NAMES]
    pipeline.load(manifests, end, settings)
    return pipeline.transform(start, end, settings)


ANON = "anon-incremental-test"
#: An order delivered on day 1, delivered again on day 2 as another event.
ORDER = "ajs-inc-order-then-not"


#: A visitor identified as one user on day 1 and as another on day 2: the anonymous id
#: moves between two customers who both stay (its user is the smallest it was seen with).
MOVER = "anon-incremental-mover"


def _web_event(
    kind: str, at: str, user_id: str | None = None, anonymous: str = ANON, **extra
) -> str:
    import json

    event = {"type": kind, "messageId": f"ajs-inc-{kind}-{at}", "anonymousId": anonymous,
             "userId": user_id, "timestamp": at, "receivedAt": at, **extra}  # fmt: skip
    return json.dumps(event) + "\n"


def _users(sources) -> list[str]:
    """Two user ids of the generated web events, smallest first."""
    import json

    found: set[str] = set()
    for line in (sources / "web" / "events.jsonl").open():
        if line.startswith("{") and (user := json.loads(line).get("userId")):
            found.add(user)
            if len(found) == 2:
                return sorted(found)
    raise AssertionError("the generated web events name fewer than two users")


def _anonymous_browsing_then_login(sources, day: int) -> None:
    """Day 1: someone browses anonymously and adds to the cart. Day 2: they log in, and an
    identify call links the anonymous id to a known user: the day-1 events (already staged
    and linked to nobody) now belong to that customer, without being ingested again."""
    import json

    folder = sources / "web" / "events"
    order = {"type": "track", "messageId": ORDER, "anonymousId": ANON + "-order", "event": "Order Completed",
             "timestamp": "2026-11-01T10:05:00Z", "receivedAt": "2026-11-01T10:05:00Z",
             "properties": {"order_id": "o-inc-1", "products": [
                 {"product_id": "prd_001", "name": "Trail Tent", "category": "Tents", "price": 199},
                 {"product_id": "prd_002", "name": "Camp Stove", "category": "Cooking", "price": 49}]}}  # fmt: skip
    if day == 2:  # the same message again, now another event: its order lines must go
        order.update(event="Order Reviewed", receivedAt="2026-11-02T08:00:00Z")
    (folder / f"zz-order-{day}.jsonl").write_text(json.dumps(order) + "\n")
    low, high = _users(sources)
    mover = f"2026-11-0{day}T11:00:00Z"  # day 1: browses as the larger id; day 2: the smaller
    (folder / f"zz-mover-{day}.jsonl").write_text(
        _web_event("page", mover, anonymous=MOVER, name="Stoves")
        + _web_event(
            "identify", mover.replace("11:00", "11:01"), high if day == 1 else low, anonymous=MOVER
        )  # fmt: skip
    )
    if day == 1:
        (folder / "zz-anonymous.jsonl").write_text(
            _web_event("page", "2026-11-01T10:00:00Z", name="Tents")
            + _web_event(
                "track",
                "2026-11-01T10:01:00Z",
                event="Product Added",
                properties={"product_id": "prd_001", "name": "Trail Tent"},
            )  # fmt: skip
        )
        return
    user = next(
        e["userId"] for line in (sources / "web" / "events.jsonl").open()
        if line.startswith("{") and (e := json.loads(line)).get("userId")
    )  # fmt: skip
    (folder / "zz-login.jsonl").write_text(_web_event("identify", "2026-11-02T09:00:00Z", user))


def _columns(con, table: str) -> list[str]:
    cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    return [c for c in cols if c not in BOOKKEEPING and c != "_ingested_at"]


def _differences(incremental, full, table: str) -> tuple[int, int, int]:
    """(rows, rows only in the incremental build, rows only in the full one)."""
    con = duckdb.connect()
    con.execute(f"attach '{incremental}' as inc (read_only)")
    con.execute(f"attach '{full}' as fr (read_only)")
    cols = ", ".join(f'"{c}"' for c in _columns(con, f"fr.{table}"))
    rows = con.execute(f"select count(*) from fr.{table}").fetchone()[0]
    only_inc = con.execute(
        f"select count(*) from (select {cols} from inc.{table} except all "
        f"select {cols} from fr.{table})"
    ).fetchone()[0]
    only_full = con.execute(
        f"select count(*) from (select {cols} from fr.{table} except all "
        f"select {cols} from inc.{table})"
    ).fetchone()[0]
    con.close()
    return rows, only_inc, only_full


def _full_rebuild_of(settings, day: date, tmp_path, name: str):
    """A copy of the warehouse, rebuilt from history for ``day`` with --full-refresh."""
    from dataclasses import replace

    home = tmp_path / name
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("dbt"))
    full = replace(settings, home=home)
    start, end = _interval(day)
    pipeline.transform(start, end, full, full_refresh=True)
    return full.warehouse_path


def _assert_same(settings, full_path, label: str) -> None:
    report = {t: _differences(settings.warehouse_path, full_path, t) for t in COMPARED}
    changed = {t: d for t, d in report.items() if d[1] or d[2]}
    assert not changed, f"{label}: incremental differs from full refresh: {changed}"
    assert report["customer_profiles"][0] > 0 and report["stg_web__events"][0] > 0


@pytest.mark.timeout(1500)
def test_incremental_days_match_a_full_rebuild(tmp_path, monkeypatch):
    from profilecast.config import load_settings
    from profilecast_dev.generate import generate
    from profilecast_dev.simulate import feed_increment, seed_sources

    data, sources = tmp_path / "generated", tmp_path / "sources"
    generate(data, contacts=400, seed=11, end_date=FIRST - timedelta(days=1),
             days_of_change=DAYS)  # fmt: skip
    seed_sources(data, sources)
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(sources))
    monkeypatch.setenv("PROFILECAST_DBT_TARGET", "duckdb")
    monkeypatch.delenv("PROFILECAST_EXPORT_URL", raising=False)
    settings = load_settings()

    con_figures = []
    for k in range(DAYS):
        day = FIRST + timedelta(days=k)
        feed_increment(data, sources, day.isoformat())
        if k < 2:
            _anonymous_browsing_then_login(sources, k + 1)
        built = _run(day, settings)
        assert built["full_refresh"] is False
        if k == 1:  # a rerun of the interval just built: same keys merged again
            _run(day, settings)
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            lines = con.execute(
                "select count(*) from stg_web__order_items where event_id = ?", [ORDER]
            ).fetchone()[0]
            assert lines == (2 if k == 0 else 0), (day, lines)
            con_figures.append(con.execute(
                "select count(*), max(_as_of) from int_customers_engagement_aggregated "
                "where _as_of = (select max(_as_of) from int_customers_engagement_aggregated)"
            ).fetchone())  # fmt: skip
    last = FIRST + timedelta(days=DAYS - 1)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        customers = con.execute("select count(*) from int_customers_fingerprinted").fetchone()[0]
        linked = con.execute(
            "select count(*), count(customer_id), count(distinct customer_id) "
            "from int_web_events_identified where anonymous_id = ?",
            [ANON],
        ).fetchone()
        movers = con.execute(
            "select count(*), count(distinct events.customer_id), min(events.customer_id), "
            "min(users.customer_id) from int_web_events_identified as events "
            "cross join (select customer_id from customer_identity_map "
            "  where source = 'web_user' and source_record_id = ?) as users "
            "where events.anonymous_id = ? and events.user_id is null",
            [_users(tmp_path / "sources")[0], MOVER],
        ).fetchone()
    assert linked == (3, 3, 1)  # the day-1 browsing belongs to the logged-in customer
    # The mover's anonymous page views (day 1's too) went with it to the smaller user's
    # customer (an event with a user id belongs to that user's).
    assert movers[:2] == (2, 1) and movers[2] == movers[3], movers
    # The later days recomputed only some customers: the build really was incremental.
    recomputed = con_figures[-1][0]
    assert 0 < recomputed < customers, (recomputed, customers)

    _assert_same(settings, _full_rebuild_of(settings, last, tmp_path, "full"), f"day {last}")

    # A backfill of the first interval: everyone is recomputed as of that earlier day.
    _run(FIRST, settings)
    _assert_same(settings, _full_rebuild_of(settings, FIRST, tmp_path, "full-backfill"),
                 f"backfill {FIRST}")  # fmt: skip

"""HTTP API extractors: a Stripe-compatible list API (billing) and a HubSpot-style CRM API.

Endpoints and keys come from Airflow Connections (``billing_api``, ``crm_api``): the
connection's host (with scheme) is the base URL and its password is the API key, sent as a
bearer token. Outside a task (tests, the CLI) the same connection is read from
``AIRFLOW_CONN_<ID>`` (JSON or URI form), exactly as Airflow itself resolves it.

Both clients page to the end, retry 429 and 5xx responses (and connection errors) with
exponential backoff that honours ``Retry-After``, and raise :class:`ApiError` naming the URL,
the last status and the number of attempts once the retry budget is spent.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from profilecast.config import airflow_connection_uri

if TYPE_CHECKING:
    from collections.abc import Iterable

    from profilecast.sources.catalog import EntitySpec
    from profilecast.sources.readers import RawRecord
    from profilecast.sources.window import Window

RETRYABLE = {429, 500, 502, 503, 504}

STRIPE_ENTITIES = {
    "customers": "/v1/customers",
    "subscriptions": "/v1/subscriptions",
    "invoices": "/v1/invoices",
    "charges": "/v1/charges",
    "refunds": "/v1/refunds",
}
#: Stripe event types that carry each entity's object, and the object's ``object`` value.
STRIPE_EVENT_TYPES = {
    "customers": (["customer.created", "customer.updated", "customer.deleted"], "customer"),
    "subscriptions": (["customer.subscription.*"], "subscription"),
    "invoices": (["invoice.*"], "invoice"),
    "charges": (["charge.*"], "charge"),
    "refunds": (["refund.*", "charge.refund.updated"], "refund"),
}
#: Stripe keeps events for 30 days: an older window start lists every object instead.
STRIPE_EVENT_RETENTION_DAYS = 30
HUBSPOT_ENTITIES = {"contacts": "/crm/v3/objects/contacts"}
#: HubSpot's search endpoint answers at most 10,000 results per query.
HUBSPOT_SEARCH_CAP = 10_000
HUBSPOT_PROPERTIES = (
    "email,firstname,lastname,phone,company,jobtitle,industry,address,city,zip,state,country,"
    "date_of_birth,lifecyclestage,createdate,lastmodifieddate"
)


class ApiError(RuntimeError):
    """An API call failed for good (retry budget spent, or a non-retryable status)."""


@dataclass
class ApiConnection:
    base_url: str
    api_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def page_size(self) -> int:
        return int(self.extra.get("page_size", 100))

    @property
    def max_retries(self) -> int:
        return int(self.extra.get("max_retries", 5))

    @property
    def backoff_seconds(self) -> float:
        return float(self.extra.get("backoff_seconds", 0.5))


def _from_parts(conn_type: str | None, host: str, port: Any, schema: str | None, password: str | None, extra: Any) -> ApiConnection:  # fmt: skip
    if isinstance(extra, str):
        extra = json.loads(extra) if extra else {}
    if "://" not in host:
        scheme = "https" if conn_type in (None, "", "https") else "http"
        host = f"{scheme}://{host}"
    base = host.rstrip("/")
    if port:
        parsed = urlparse(base)
        if not parsed.port:
            base = f"{parsed.scheme}://{parsed.hostname}:{port}{parsed.path}"
    if schema:
        base = f"{base}/{schema.strip('/')}"
    return ApiConnection(base_url=base, api_key=password or None, extra=extra or {})


def get_connection(conn_id: str) -> ApiConnection:
    """Resolve an Airflow Connection (inside a task) or its AIRFLOW_CONN_ variable."""
    env = airflow_connection_uri(conn_id)
    if env:
        if env.lstrip().startswith("{"):
            d = json.loads(env)
            return _from_parts(d.get("conn_type"), d.get("host", ""), d.get("port"),
                               d.get("schema"), d.get("password"), d.get("extra"))  # fmt: skip
        u = urlparse(env)
        from urllib.parse import parse_qsl

        return _from_parts(
            u.scheme, u.hostname or "", u.port, u.path.lstrip("/") or None,
            unquote(u.password) if u.password else None, dict(parse_qsl(u.query)),
        )  # fmt: skip
    try:
        from airflow.sdk import BaseHook

        c = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - re-raised with what to do about it
        raise ApiError(
            f"Airflow connection '{conn_id}' is not defined: add it in the UI or set "
            f"AIRFLOW_CONN_{conn_id.upper()} ({exc})"
        ) from exc
    return _from_parts(c.conn_type, c.host or "", c.port, c.schema, c.password, c.extra_dejson)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def request_json(
    conn: ApiConnection,
    path: str,
    params: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GET (or POST ``body`` as JSON) with retries; returns the decoded JSON body."""
    import requests

    url = f"{conn.base_url}{path}"
    headers = {"Accept": "application/json"}
    if conn.api_key:
        headers["Authorization"] = f"Bearer {conn.api_key}"
    last = "no response"
    method = "POST" if body is not None else "GET"
    for attempt in range(conn.max_retries + 1):
        try:
            resp = requests.request(
                method, url, params=params, json=body, headers=headers, timeout=30
            )
        except requests.RequestException as exc:
            last = f"connection error: {exc}"
            wait = None
        else:
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError as exc:
                    raise ApiError(f"{method} {url}: response is not JSON ({exc})") from exc
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code not in RETRYABLE:
                raise ApiError(f"{method} {url} failed with {last}")
            wait = _retry_after(resp.headers.get("Retry-After"))
        if attempt == conn.max_retries:
            break
        if wait is None:
            wait = conn.backoff_seconds * (2**attempt) * (1 + random.random() * 0.25)
        sleep(min(wait, 60.0))
    raise ApiError(f"{method} {url} failed after {conn.max_retries + 1} attempts; last: {last}")


def stripe_list(
    conn: ApiConnection,
    entity: str,
    created_gte: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every object of a Stripe list endpoint (``has_more`` / ``starting_after``)."""
    path = STRIPE_ENTITIES[entity]
    params: dict[str, Any] = {"limit": conn.page_size}
    if entity == "subscriptions":
        params["status"] = "all"
    if created_gte is not None:
        params["created[gte]"] = int(created_gte.timestamp())
    while True:
        page = request_json(conn, path, params, sleep)
        if page.get("object") != "list" or not isinstance(page.get("data"), list):
            raise ApiError(f"{path}: not a Stripe list response (keys: {sorted(page)[:8]})")
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        params["starting_after"] = page["data"][-1]["id"]


def hubspot_list(
    conn: ApiConnection, entity: str, sleep: Callable[[float], None] = time.sleep
) -> Iterator[dict[str, Any]]:
    """Every object of a HubSpot CRM v3 list endpoint (``paging.next.after`` cursor)."""
    path = HUBSPOT_ENTITIES[entity]
    params: dict[str, Any] = {"limit": conn.page_size, "properties": HUBSPOT_PROPERTIES}
    while True:
        page = request_json(conn, path, params, sleep)
        results = page.get("results")
        if not isinstance(results, list):
            raise ApiError(f"{path}: not a HubSpot list response (keys: {sorted(page)[:8]})")
        yield from results
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return
        params["after"] = after


def stripe_changed(
    conn: ApiConnection,
    entity: str,
    since: datetime,
    until: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every object of ``entity`` created or changed in ``[since, until)``, from Stripe's
    events feed (``/v1/events``): each event carries the object's state after the change, so
    a cancellation, a plan change or an email change to an old object arrives on the day it
    happens. The object gets ``updated`` = the event's time. Past Stripe's 30-day event
    retention the full list is read instead (nothing is missed, only more is read).
    """
    import datetime as dt

    if dt.datetime.now(dt.UTC) - since > dt.timedelta(days=STRIPE_EVENT_RETENTION_DAYS):
        yield from stripe_list(conn, entity, sleep=sleep)
        return
    types, object_name = STRIPE_EVENT_TYPES[entity]
    params: dict[str, Any] = {
        "limit": conn.page_size,
        "types[]": types,
        "created[gte]": int(since.timestamp()),
        "created[lt]": int(until.timestamp()),
    }
    while True:
        page = request_json(conn, "/v1/events", params, sleep)
        if page.get("object") != "list" or not isinstance(page.get("data"), list):
            raise ApiError(f"/v1/events: not a Stripe list response (keys: {sorted(page)[:8]})")
        for event in page["data"]:
            obj = ((event.get("data") or {}).get("object")) or {}
            if obj.get("object") != object_name:
                continue
            out = dict(obj)
            out["updated"] = event.get("created")
            if str(event.get("type", "")).endswith(".deleted"):
                out["deleted"] = True
            yield out
        if not page.get("has_more") or not page["data"]:
            return
        params["starting_after"] = page["data"][-1]["id"]


def hubspot_modified(
    conn: ApiConnection,
    entity: str,
    since: datetime,
    until: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every object modified in ``[since, until)``, from HubSpot's CRM search
    (``lastmodifieddate``, ascending). Past the search's 10,000-result cap the query restarts
    from the last modification time seen (records on that boundary may come twice; staging
    keeps one version)."""
    path = HUBSPOT_ENTITIES[entity] + "/search"
    lower = int(since.timestamp() * 1000)
    upper = int(until.timestamp() * 1000)
    after: str | None = None
    seen_in_query = 0
    while True:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(lower)},
                {"propertyName": "lastmodifieddate", "operator": "LT", "value": str(upper)},
            ]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": HUBSPOT_PROPERTIES.split(","),
            "limit": min(conn.page_size, 100),
        }  # fmt: skip
        if after:
            body["after"] = after
        page = request_json(conn, path, {}, sleep, body=body)
        results = page.get("results")
        if not isinstance(results, list):
            raise ApiError(f"{path}: not a HubSpot search response (keys: {sorted(page)[:8]})")
        yield from results
        seen_in_query += len(results)
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after or not results:
            return
        if seen_in_query + body["limit"] > HUBSPOT_SEARCH_CAP:
            last = (results[-1].get("properties") or {}).get("lastmodifieddate")
            stamp = _epoch_ms(last)
            if stamp is None or stamp <= lower:
                raise ApiError(
                    f"{path}: more than {HUBSPOT_SEARCH_CAP} contacts share one modification "
                    "time; narrow the interval"
                )
            lower, after, seen_in_query = stamp, None, 0


def _epoch_ms(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        from datetime import datetime as _dt

        return int(_dt.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def api_records_fn(spec: EntitySpec) -> Callable[[Window], Iterable[RawRecord]] | None:
    """A record source for entities that have an API extractor (else None: files).

    Extraction is incremental by update time: the first load lists every object; later
    ones read Stripe's events feed (every change to an old object arrives as an event with
    the object's new state) and HubSpot's search by ``lastmodifieddate``.
    """
    from profilecast.sources.readers import RawRecord

    if spec.api is None:
        return None
    conn_id, lister = f"{spec.source}_api", spec.api

    def records(window: Window) -> Iterator[RawRecord]:
        conn = get_connection(conn_id)
        if lister == "stripe":
            if window.start is None:
                items = stripe_list(conn, spec.entity)
                path = STRIPE_ENTITIES[spec.entity]
            else:
                items = stripe_changed(conn, spec.entity, window.start, window.end)
                path = "/v1/events"
        elif window.start is None:
            items = hubspot_list(conn, spec.entity)
            path = HUBSPOT_ENTITIES[spec.entity]
        else:
            items = hubspot_modified(conn, spec.entity, window.start, window.end)
            path = HUBSPOT_ENTITIES[spec.entity] + "/search"
        for n, item in enumerate(items, start=1):
            yield RawRecord(f"api:{conn.base_url}{path}", n, record=item)

    return records

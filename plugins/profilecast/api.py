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
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlparse

RETRYABLE = {429, 500, 502, 503, 504}

STRIPE_ENTITIES = {
    "customers": "/v1/customers",
    "subscriptions": "/v1/subscriptions",
    "invoices": "/v1/invoices",
    "charges": "/v1/charges",
    "refunds": "/v1/refunds",
}
HUBSPOT_ENTITIES = {"contacts": "/crm/v3/objects/contacts"}
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
    env = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
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
) -> dict[str, Any]:
    """GET with retries; returns the decoded JSON body."""
    import requests

    url = f"{conn.base_url}{path}"
    headers = {"Accept": "application/json"}
    if conn.api_key:
        headers["Authorization"] = f"Bearer {conn.api_key}"
    last = "no response"
    for attempt in range(conn.max_retries + 1):
        try:
            resp = requests.get(url, params=params, headers=headers, timeout=30)
        except requests.RequestException as exc:
            last = f"connection error: {exc}"
            wait = None
        else:
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError as exc:
                    raise ApiError(f"GET {url}: response is not JSON ({exc})") from exc
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code not in RETRYABLE:
                raise ApiError(f"GET {url} failed with {last}")
            wait = _retry_after(resp.headers.get("Retry-After"))
        if attempt == conn.max_retries:
            break
        if wait is None:
            wait = conn.backoff_seconds * (2**attempt) * (1 + random.random() * 0.25)
        sleep(min(wait, 60.0))
    raise ApiError(f"GET {url} failed after {conn.max_retries + 1} attempts; last: {last}")


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

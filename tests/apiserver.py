"""A real HTTP server on loopback that speaks the Stripe list and HubSpot CRM v3 APIs.

It pages, checks the bearer key, and injects failures on demand: ``server.faults`` is a list
of (status, retry_after) answered in order before real pages are served.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "sk_test_profilecast"


class FakeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stripe: dict[str, list[dict[str, Any]]] = {}
        self.hubspot: dict[str, list[dict[str, Any]]] = {}
        #: Stripe events (newest first, as Stripe lists them)
        self.stripe_events: list[dict[str, Any]] = []
        self.faults: list[tuple[int, str | None]] = []
        self.requests: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeApi:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        url = urlparse(self.path)
        multi = parse_qs(url.query)
        q = {k: v[-1] for k, v in multi.items()}
        with self.server.lock:
            self.server.requests.append(self.path)
            fault = self.server.faults.pop(0) if self.server.faults else None
        if fault:
            status, retry_after = fault
            self._send(status, {"error": {"message": "injected"}},
                       {"Retry-After": retry_after} if retry_after else None)  # fmt: skip
            return
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(401, {"error": {"message": "Invalid API Key provided"}})
            return
        limit = int(q.get("limit", 10))
        if url.path == "/v1/events":
            objects = [
                e for e in self.server.stripe_events
                if int(q.get("created[gte]", 0)) <= e["created"] < int(q.get("created[lt]", 2**62))
                and _type_matches(e["type"], multi.get("types[]", [e["type"]]))
            ]  # fmt: skip
        elif url.path.startswith("/v1/"):
            objects = self.server.stripe.get(url.path[4:], [])
        if url.path.startswith("/v1/"):
            if "created[gte]" in q:
                objects = [o for o in objects if (o.get("created") or 0) >= int(q["created[gte]"])]
            start = 0
            if "starting_after" in q:
                ids = [o["id"] for o in objects]
                start = ids.index(q["starting_after"]) + 1
            page = objects[start : start + limit]
            self._send(200, {"object": "list", "url": url.path, "data": page,
                             "has_more": start + limit < len(objects)})  # fmt: skip
            return
        if url.path.startswith("/crm/v3/objects/"):
            objects = self.server.hubspot.get(url.path.rsplit("/", 1)[1], [])
            start = int(q.get("after", 0))
            page = objects[start : start + limit]
            body: dict[str, Any] = {"results": page}
            if start + limit < len(objects):
                body["paging"] = {"next": {"after": str(start + limit), "link": "..."}}
            self._send(200, body)
            return
        self._send(404, {"error": {"message": f"no route {url.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.requests.append(self.path)
            self.server.bodies.append(body)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(401, {"error": {"message": "Invalid API Key provided"}})
            return
        if url.path.startswith("/crm/v3/objects/") and url.path.endswith("/search"):
            entity = url.path.split("/")[-2]
            bounds = {f["operator"]: int(f["value"]) for f in body["filterGroups"][0]["filters"]}
            objects = sorted(
                (o for o in self.server.hubspot.get(entity, [])
                 if bounds.get("GTE", 0) <= _ms(o) < bounds.get("LT", 2**62)),
                key=_ms,
            )  # fmt: skip
            start = int(body.get("after") or 0)
            limit = int(body.get("limit", 10))
            page: dict[str, Any] = {
                "total": len(objects),
                "results": objects[start : start + limit],
            }
            if start + limit < len(objects):
                page["paging"] = {"next": {"after": str(start + limit)}}
            self._send(200, page)
            return
        self._send(404, {"error": {"message": f"no route {url.path}"}})


def _type_matches(event_type: str, patterns: list[str]) -> bool:
    return any(
        event_type == p or (p.endswith(".*") and event_type.startswith(p[:-1])) for p in patterns
    )


def _ms(obj: dict[str, Any]) -> int:
    from datetime import datetime

    value = (obj.get("properties") or {}).get("lastmodifieddate") or obj.get("updatedAt")
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)

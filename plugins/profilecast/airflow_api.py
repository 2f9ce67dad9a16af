"""Airflow's public REST API (``/api/v2``), as the harness, the runner and the tests call it.

On the embedded default, Airflow's metadata is one SQLite file that the scheduler, the DAG
processor, the triggerer and the API server all write. A request that meets another
component's write lock for longer than SQLite's busy timeout (5 s) fails: the backfill
endpoints answer HTTP 503 ("Database is locked"), the others HTTP 500 ("Database error").
Neither leaves a change behind (the request's transaction is rolled back), so :class:`AirflowApi` retries
them with backoff. A DAG run is created under a run id chosen here, so a retry whose earlier
attempt did land is recognised by its HTTP 409 and the run is not made twice.
"""

from __future__ import annotations

import json
from typing import Any

#: HTTP statuses that a busy metadata database (or a restarting server) answers with
RETRIED = frozenset({500, 502, 503, 504})


class AirflowError(RuntimeError):
    """A component did not start, or a DAG run did not end well."""


class ApiError(AirflowError):
    """Airflow answered a request with an HTTP error."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class AirflowApi:
    """A client of one API server; ``base`` ends in ``/api/v2``.

    ``patience``: seconds a request keeps being retried while Airflow answers 5xx."""

    def __init__(self, base: str, patience: float = 90, timeout: float = 60) -> None:
        self.base = base.rstrip("/")
        self.patience = patience
        self.timeout = timeout

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, exc.read().decode(errors="replace")) from exc
        return json.loads(text) if text else None

    def _attempts(self):  # noqa: ANN202 - tenacity's iterator
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_delay,
            wait_exponential,
        )

        busy = retry_if_exception(lambda e: isinstance(e, ApiError) and e.status in RETRIED)
        return Retrying(retry=busy, wait=wait_exponential(multiplier=0.5, max=10),
                        stop=stop_after_delay(self.patience), reraise=True)  # fmt: skip

    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; its decoded JSON answer (None for an empty one)."""
        for attempt in self._attempts():
            with attempt:
                return self._once(method, path, body)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _create(self, path: str, body: dict[str, Any], landed: Any) -> None:
        """POST ``body`` to ``path``, retried like any request. A retry whose earlier
        attempt did land (Airflow committed, then answered 5xx) meets HTTP 409: that is not
        an error when ``landed()`` finds this call's own object. A 409 on the first attempt
        is an error (the object was there before this call)."""
        for attempt in self._attempts():
            with attempt:
                try:
                    self._once("POST", path, body)
                except ApiError as exc:
                    if exc.status != 409 or attempt.retry_state.attempt_number == 1:
                        raise
                    if not landed():
                        raise

    def create_run(self, dag_id: str, run_id: str, body: dict[str, Any]) -> str:
        """Create a DAG run under ``run_id`` (``body`` holds the rest: logical date, data
        interval, conf); returns ``run_id``. A run id that was already taken before this
        call is an error, one taken by this call's own earlier attempt is not."""
        path = f"/dags/{dag_id}/dagRuns"
        # the run is there (a 404 would raise)
        self._create(path, {**body, "dag_run_id": run_id},
                     lambda: self._once("GET", f"{path}/{run_id}", None) is not None)  # fmt: skip
        return run_id

    def create_backfill(self, body: dict[str, Any]) -> None:
        """Create a backfill (``body``: dag_id, from_date, to_date and the rest). A retry's
        409, "already a running backfill", is this call's own backfill when an unfinished
        one of the DAG starts on the same date; otherwise it is an error. When no unfinished
        backfill is left by the time it is looked for, the POST is tried again: Airflow
        deletes a backfill it could not finish creating on a locked database (seen under
        the scheduler: 503, 500, then a 409 for a backfill that was gone a moment later)."""

        def landed() -> bool:
            listed = self._once("GET", f"/backfills?dag_id={body['dag_id']}&limit=100", None)
            active = [
                b for b in (listed or {}).get("backfills", []) if b.get("completed_at") is None
            ]
            if not active:
                raise ApiError("POST", "/backfills", 503, "the conflicting backfill is gone")
            return any(_instant(b.get("from_date")) == _instant(body["from_date"]) for b in active)

        self._create("/backfills", body, landed)


def _instant(text: Any) -> Any:
    """An ISO timestamp as an aware datetime (``Z`` or an offset), None when absent."""
    from datetime import UTC, datetime

    if not text:
        return None
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""The Airflow REST client against a real HTTP server that answers like Airflow's dagRuns
endpoints, with the failures a locked SQLite metadata database causes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from profilecast.airflow_api import AirflowApi, ApiError


class _Airflow(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.runs: dict[str, dict] = {}
        #: statuses answered, in order, before requests are served
        self.faults: list[int] = []
        #: the next POST stores its run, then answers 500 (the response was lost)
        self.lose_next_answer = False
        self.requests: list[str] = []
        self.backfills: list[dict] = []
        #: the next backfill POST answers 409 for a backfill that is then deleted (Airflow's
        #: clean-up of a backfill it could not finish creating on a locked database)
        self.vanishing_conflict = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v2"


class _Handler(BaseHTTPRequestHandler):
    server: _Airflow

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        s = self.server
        s.requests.append(f"GET {self.path}")
        if s.faults:
            return self._send(s.faults.pop(0), {"detail": "Internal Server Error"})
        if self.path.startswith("/api/v2/backfills?"):
            return self._send(200, {"backfills": s.backfills, "total_entries": len(s.backfills)})
        run_id = self.path.rsplit("/", 1)[-1]
        if run_id in s.runs:
            return self._send(200, s.runs[run_id])
        return self._send(404, {"detail": f"DagRun {run_id} not found"})

    def do_POST(self) -> None:
        s = self.server
        s.requests.append(f"POST {self.path}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if s.faults:
            return self._send(s.faults.pop(0), {"detail": "Internal Server Error"})
        if self.path == "/api/v2/backfills" and s.vanishing_conflict:
            s.vanishing_conflict = False
            return self._send(409, {"detail": "There is already a running backfill for dag"})
        if self.path == "/api/v2/backfills":  # Airflow's rule: one unfinished per DAG
            if any(b["completed_at"] is None for b in s.backfills):
                return self._send(409, {"detail": "There is already a running backfill for dag"})
            # Airflow answers with Z where the request had an offset
            start = body["from_date"].replace("+00:00", "Z")
            s.backfills.append({**body, "from_date": start, "completed_at": None})
            if s.lose_next_answer:
                s.lose_next_answer = False
                return self._send(503, {"detail": "Database is locked"})
            return self._send(200, s.backfills[-1])
        run_id = body["dag_run_id"]
        if run_id in s.runs:
            return self._send(409, {"detail": f"DAG run {run_id} already exists"})
        s.runs[run_id] = {**body, "state": "queued"}
        if s.lose_next_answer:
            s.lose_next_answer = False
            return self._send(500, {"detail": "Internal Server Error"})
        return self._send(200, s.runs[run_id])


@pytest.fixture
def airflow():
    server = _Airflow()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_locked_database_is_waited_out(airflow):
    api = AirflowApi(airflow.base, patience=30)
    airflow.faults = [500, 503, 500]
    assert api.create_run("d", "r1", {"conf": {}}) == "r1"
    assert airflow.requests == ["POST /api/v2/dags/d/dagRuns"] * 4
    airflow.faults = [500]
    assert api("GET", "/dags/d/dagRuns/r1")["state"] == "queued"
    assert len(airflow.requests) == 6


def test_a_run_whose_answer_was_lost_is_not_created_twice(airflow):
    api = AirflowApi(airflow.base, patience=30)
    airflow.lose_next_answer = True
    assert api.create_run("d", "r1", {"conf": {"x": 1}}) == "r1"
    assert list(airflow.runs) == ["r1"]
    assert airflow.requests == [
        "POST /api/v2/dags/d/dagRuns",  # stored, answered 500
        "POST /api/v2/dags/d/dagRuns",  # 409: this call's own run
        "GET /api/v2/dags/d/dagRuns/r1",
    ]


def test_a_run_id_taken_before_the_call_is_an_error(airflow):
    api = AirflowApi(airflow.base, patience=30)
    api.create_run("d", "r1", {})
    with pytest.raises(ApiError, match="HTTP 409") as err:
        api.create_run("d", "r1", {})
    assert err.value.status == 409
    assert len(airflow.requests) == 2


def test_client_errors_are_not_retried_and_patience_ends(airflow):
    api = AirflowApi(airflow.base, patience=30)
    with pytest.raises(ApiError, match="HTTP 404"):
        api("GET", "/dags/d/dagRuns/missing")
    assert len(airflow.requests) == 1
    airflow.faults = [500] * 100
    with pytest.raises(ApiError, match="HTTP 500"):
        AirflowApi(airflow.base, patience=1)("GET", "/dags/d/dagRuns/r1")
    assert 2 <= len(airflow.requests) - 1 < 10


def test_a_backfill_whose_answer_was_lost_is_not_an_error(airflow):
    """Airflow committed the backfill and answered 503: the retry's 409 ("already a running
    backfill") is this call's own backfill, found by its DAG and start date."""
    api = AirflowApi(airflow.base, patience=30)
    body = {"dag_id": "d", "from_date": "2026-11-01T00:00:00+00:00",
            "to_date": "2026-11-01T00:00:00+00:00"}  # fmt: skip
    airflow.lose_next_answer = True
    api.create_backfill(body)
    assert len(airflow.backfills) == 1
    assert airflow.requests == [
        "POST /api/v2/backfills",  # stored, answered 503
        "POST /api/v2/backfills",  # 409: this call's own backfill
        "GET /api/v2/backfills?dag_id=d&limit=100",
    ]


def test_another_running_backfill_is_an_error(airflow):
    api = AirflowApi(airflow.base, patience=30)
    other = {"dag_id": "d", "from_date": "2026-10-01T00:00:00+00:00",
             "to_date": "2026-10-01T00:00:00+00:00"}  # fmt: skip
    api.create_backfill(other)
    with pytest.raises(ApiError, match="HTTP 409"):  # at once: the first attempt's 409
        api.create_backfill({**other, "from_date": "2026-11-01T00:00:00+00:00"})
    # A lost answer, then a 409 from a backfill of another date: still an error.
    airflow.backfills.clear()
    airflow.backfills.append({**other, "completed_at": None})
    airflow.faults = [503]
    with pytest.raises(ApiError, match="HTTP 409"):
        api.create_backfill({**other, "from_date": "2026-11-01T00:00:00+00:00"})


def test_a_conflicting_backfill_that_is_gone_is_retried(airflow):
    """A lost answer, then a 409 for a backfill Airflow deleted meanwhile (no unfinished one
    is listed): the POST is tried again and creates the backfill, once."""
    api = AirflowApi(airflow.base, patience=30)
    body = {"dag_id": "d", "from_date": "2026-11-01T00:00:00+00:00",
            "to_date": "2026-11-01T00:00:00+00:00"}  # fmt: skip
    airflow.faults = [503]
    airflow.vanishing_conflict = True
    api.create_backfill(body)
    assert [b["from_date"] for b in airflow.backfills] == ["2026-11-01T00:00:00Z"]
    assert airflow.requests == [
        "POST /api/v2/backfills",  # 503
        "POST /api/v2/backfills",  # 409, and the conflicting backfill is deleted
        "GET /api/v2/backfills?dag_id=d&limit=100",  # nothing unfinished: try again
        "POST /api/v2/backfills",
    ]

"""`profilecast up`: the collector and a real Airflow (scheduler, DAG processor, triggerer,
API server); an event posted to the collector wakes the events DAG through Redis and the
triggerer's AssetWatcher; triggered flows run under the scheduler with an injectable clock;
Ctrl-C stops everything."""

from __future__ import annotations

import gzip
import json
import signal
import sqlite3
import subprocess
import time
import urllib.request
import uuid

import psutil
import pytest

from tests.collector_harness import WRITE_KEY, free_port
from tests.conftest import clean_env, venv_bin


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _get(url: str) -> dict:
    """A GET of the collector's or Airflow's API, retried while Airflow's SQLite is locked."""
    from profilecast.airflow_api import AirflowApi

    return AirflowApi(url)("GET", "")


T0 = "2026-11-26T12:00:00Z"


def _post(port: int, path: str, body: dict) -> None:
    import base64

    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": auth},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.read()


def _at(minutes: float) -> str:
    from datetime import datetime, timedelta

    t = datetime.fromisoformat(T0.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return t.isoformat().replace("+00:00", "Z")


def _flow_run(af_port: int) -> str:
    """A manual run of customer_flows through the API (the scheduler runs it); its state.

    Through the project's client: on SQLite metadata, a request that meets the scheduler's
    write lock fails with HTTP 500 and is retried."""
    from profilecast.airflow_api import AirflowApi

    api = AirflowApi(f"http://127.0.0.1:{af_port}/api/v2")
    run_id = api.create_run("customer_flows", f"manual__test_{uuid.uuid4().hex[:8]}",
                            {"logical_date": None})  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = api("GET", f"/dags/customer_flows/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    return "timeout"


def _exported(home) -> list[tuple[str, str, str]]:
    """(flow, message_key, to) of every exported flow message, read back as an ESP would."""
    from profilecast.export.formats import FORMATS

    out = []
    for f in sorted((home / "exports" / "flows").rglob("batch-*.jsonl.gz")):
        for line in gzip.decompress(f.read_bytes()).decode().splitlines():
            rec = json.loads(line)
            fmt = "ses" if "BulkEmailEntries" in rec else (
                "sendgrid" if "personalizations" in rec else "jsonl")  # fmt: skip
            out += [(f.parts[-3], m["message_key"], m["to"]) for m in FORMATS[fmt].read(rec)]
    return out


def _sends(home) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(home / "flows" / "state.sqlite")
    try:
        return conn.execute(
            "select flow_id, step_id, subject from flow_sends order by 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()


def _run_flows(home, clock, port: int, af_port: int) -> None:
    """Cart, order exit, unsubscribe exit and the welcome series under the real scheduler."""
    events = []
    for user in ("a", "b", "u"):
        events += [
            {"type": "identify", "userId": f"u-{user}", "timestamp": T0,
             "traits": {"email": f"{user}@example.com", "firstName": user.upper()}},
            {"type": "track", "userId": f"u-{user}", "event": "Product Added", "timestamp": T0,
             "properties": {"name": f"Tent {user}"}},
        ]  # fmt: skip
    events.append({"type": "identify", "userId": "u-w", "timestamp": T0,
                   "traits": {"email": "w@example.com"}})  # fmt: skip
    _post(port, "/v1/batch", {"batch": events})
    # The post wakes customer_flows: the four welcome emails go out with no delay.
    welcome = {f"{u}@example.com" for u in "abuw"}
    deadline = time.monotonic() + 180
    while {to for f, _, to in _exported(home) if f == "welcome_series"} != welcome:
        assert time.monotonic() < deadline, f"no woken welcome run: {_exported(home)}"
        time.sleep(1)
    assert not [e for e in _exported(home) if e[0] == "cart_abandonment"]  # not due yet

    clock.write_text(_at(31))
    assert _flow_run(af_port) == "success"
    carts = sorted(to for f, _, to in _exported(home) if f == "cart_abandonment")
    assert carts == ["a@example.com", "b@example.com", "u@example.com"]

    _post(port, "/v1/track", {"userId": "u-b", "event": "Order Completed", "timestamp": _at(40),
                              "properties": {"products": [{"name": "Tent b"}]}})  # fmt: skip
    _post(port, "/v1/track", {"userId": "u-u", "event": "Unsubscribed", "timestamp": _at(45)})
    clock.write_text(_at(25 * 60))
    assert _flow_run(af_port) == "success"
    carts = sorted(to for f, _, to in _exported(home) if f == "cart_abandonment")
    assert carts == ["a@example.com", "a@example.com", "b@example.com", "u@example.com"]

    for minutes in (2 * 24 * 60 + 1, 5 * 24 * 60 + 2):  # welcome steps 2 and 3
        clock.write_text(_at(minutes))
        assert _flow_run(af_port) == "success"
    sends = _sends(home)
    welcome_steps = sorted((step, subject) for f, step, subject in sends if f == "welcome_series")
    assert welcome_steps == sorted(
        [("hello", f"web_user:u-{u}") for u in "abuw"]
        + [("best_sellers", f"web_user:u-{u}") for u in "abw"]  # u unsubscribed
        + [("first_order_offer", f"web_user:u-{u}") for u in "aw"]  # b has ordered
    )
    exported = _exported(home)
    keys = [k for _, k, _ in exported]
    assert len(keys) == len(set(keys)) == len(sends)  # every send exported exactly once


def test_up_wakes_the_events_dag_and_stops_on_ctrl_c(tmp_path, sample_dir):
    if not _redis_up():
        pytest.fail("the machine's Redis on 127.0.0.1:6379 is not answering")
    port, af_port = free_port(), free_port()
    env = clean_env(
        PROFILECAST_HOME=str(tmp_path / "home"), PROFILECAST_SOURCES=str(tmp_path / "drops"),
        PROFILECAST_WRITE_KEYS=WRITE_KEY,
        PROFILECAST_WAKE_URL="redis://127.0.0.1:6379/0",
        PROFILECAST_WAKE_CHANNEL=f"profilecast.test.{uuid.uuid4().hex[:8]}",
        # No fallback run during the test: a run must come from the wake-up.
        PROFILECAST_EVENTS_FALLBACK_CRON="0 0 1 1 *",
        PROFILECAST_FLOWS_FALLBACK_CRON="0 0 1 1 *",
        PROFILECAST_CLOCK_FILE=str(tmp_path / "clock"),
    )  # fmt: skip
    (tmp_path / "clock").write_text(T0)
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [venv_bin("profilecast"), "up", "--port", str(port), "--airflow-port", str(af_port),
         "--unpause", "collector_events,customer_flows"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "unpaused" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "profilecast up did not become ready"
            time.sleep(1)
        text = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{port}" in text and f"http://127.0.0.1:{af_port}" in text

        api = f"http://127.0.0.1:{af_port}/api/v2/dags/collector_events/dagRuns"
        import base64

        auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        woken = []
        deadline = time.monotonic() + 180
        while not woken and time.monotonic() < deadline:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/track", method="POST",
                data=json.dumps({"userId": "u1", "event": "Product Viewed",
                                 "properties": {"name": "Tent"}}).encode(),
                headers={"Content-Type": "application/json", "Authorization": auth},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200
            time.sleep(3)
            runs = _get(api)["dag_runs"]
            woken = [r for r in runs if r["run_type"] == "asset_triggered"]
        assert woken, f"no asset-triggered run of collector_events: {runs}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = _get(f"{api}/{woken[0]['dag_run_id']}")["state"]
            if state in ("success", "failed"):
                break
            time.sleep(2)
        assert state == "success"
        _run_flows(tmp_path / "home", tmp_path / "clock", port, af_port)
        health = _get(f"http://127.0.0.1:{port}/healthz")
        assert health["wake"]["sent"] >= 1 and health["wake"]["failed"] == 0
        # Moving the clock past a due step made the collector's due timer wake the flows.
        assert health["wake"]["flows_due"] >= 1
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # collector + four Airflow components (and their workers)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert "stopped" in (tmp_path / "up.log").read_text()
    time.sleep(2)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

"""`profilecast up`: the collector and a real Airflow (scheduler, DAG processor, triggerer,
API server); an event posted to the collector wakes the events DAG through Redis and the
triggerer's AssetWatcher; Ctrl-C stops everything."""

from __future__ import annotations

import json
import signal
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
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


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
    )  # fmt: skip
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [venv_bin("profilecast"), "up", "--port", str(port), "--airflow-port", str(af_port),
         "--unpause", "collector_events"],
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
        health = _get(f"http://127.0.0.1:{port}/healthz")
        assert health["wake"]["sent"] >= 1 and health["wake"]["failed"] == 0
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # collector + four Airflow components (and their workers)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert "stopped" in (tmp_path / "up.log").read_text()
    time.sleep(2)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

"""Wake-ups to Airflow: a Redis publish when events were committed, at most one a second.

Airflow's triggerer listens on the channel (an AssetWatcher with the Redis provider's
message-queue trigger) and queues the events DAG. Redis pub/sub keeps nothing: a wake-up
sent while no triggerer listens is lost, which only delays the work until the DAG's
fallback schedule. Publishing happens on its own thread and never holds up an answer.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime


class Waker:
    def __init__(self, url: str, channel: str, min_interval: float = 1.0) -> None:
        self.url, self.channel, self.min_interval = url, channel, min_interval
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-publisher", daemon=True)
        self._thread.start()

    def notify(self, events: int) -> None:
        """Called after a commit (on the journal thread): note it, never block."""
        with self._lock:
            self._pending += events
        self._event.set()

    def _run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        while not self._stop.is_set():
            if not self._event.wait(timeout=1.0):
                continue
            self._event.clear()
            with self._lock:
                events, self._pending = self._pending, 0
            if not events:
                continue
            message = {"events": events, "at": datetime.now(UTC).isoformat()}
            try:
                client.publish(self.channel, json.dumps(message))
                self.sent += 1
            except redis.RedisError as exc:
                self.failed += 1
                self.last_error = str(exc)
            time.sleep(self.min_interval)

    def close(self) -> None:
        self._stop.set()
        self._event.set()
        self._thread.join(timeout=5)

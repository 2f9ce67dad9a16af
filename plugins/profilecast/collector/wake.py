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
from typing import Any


class Waker:
    def __init__(self, url: str, channel: str, min_interval: float = 1.0) -> None:
        self.url, self.channel, self.min_interval = url, channel, min_interval
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None
        self._pending = 0
        self._due = 0
        self.due_sent = 0
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

    def notify_due(self) -> None:
        """A flow step has come due (the due timer): wake the flows even without events."""
        with self._lock:
            self._due += 1
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
                due, self._due = self._due, 0
            if not events and not due:
                continue
            message = {"events": events, "due": due, "at": datetime.now(UTC).isoformat()}
            try:
                if events:  # the events DAG and the flows
                    client.publish(self.channel, json.dumps(message))
                if due:  # the flows alone
                    client.publish(self.channel + ".due", json.dumps(message))
                self.sent += 1
                self.due_sent += 1 if due else 0
            except redis.RedisError as exc:
                self.failed += 1
                self.last_error = str(exc)
            time.sleep(self.min_interval)

    def close(self) -> None:
        self._stop.set()
        self._event.set()
        self._thread.join(timeout=5)


class DueTimer:
    """Wakes the flows when a step comes due between events (30 minutes after a cart).

    Every ``period`` seconds it reads the earliest due time in the flows' state (SQLite, read
    only) and, once that moment has passed, asks the waker for a wake-up: so a due step waits
    seconds, not the flows DAG's fallback schedule. The same due time wakes again only after
    ``repeat`` seconds (a run that is still working on it, or failing, is not flooded)."""

    def __init__(self, flows_path: Any, waker: Waker, now: Any, period: float = 1.0,
                 repeat: float = 30.0) -> None:  # fmt: skip
        from pathlib import Path

        self.path, self.waker, self.now = Path(flows_path), waker, now
        self.period, self.repeat = period, repeat
        self.wakes = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flows-due-timer", daemon=True)
        self._thread.start()

    def earliest_due(self) -> str | None:
        import sqlite3

        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(
                "select min(next_due_at) from flow_state where status = 'active'"
            ).fetchone()[0]
        except sqlite3.Error as exc:  # a store being created, or locked for a moment
            self.last_error = str(exc)
            return None
        finally:
            conn.close()

    def _run(self) -> None:
        from profilecast.sources.validation import format_timestamp

        last: tuple[str | None, float] = (None, 0.0)
        while not self._stop.wait(self.period):
            due = self.earliest_due()
            if due is None or due > format_timestamp(self.now()):
                continue
            if due == last[0] and time.monotonic() - last[1] < self.repeat:
                continue
            self.waker.notify_due()
            self.wakes += 1
            last = (due, time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

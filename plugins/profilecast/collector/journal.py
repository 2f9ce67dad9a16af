"""The collector's durable journal: append-only JSON-lines segments, fsynced before any ack.

Each stream (``web/events``, ``esp/events``, ``_collector/quarantine``) has one open segment
per process, ``<root>/<stream>/collector/<day>/<stamp>-<pid>-<seq>.jsonl.open``. The daily
extract lists only names ending in a known format, so it never reads a segment being
written. A segment is *sealed* (renamed to ``.jsonl``, after which it never changes) when it
is older than the rotation period, when the collector stops, or, after a crash, when the
next collector starts: recovery cuts a torn last line (a write that was never acknowledged)
and seals what is left.

Writes go through one thread that commits in groups: every request waiting at that moment
is written, each touched segment is fsynced once, and only then are the requests answered.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OPEN_SUFFIX = ".jsonl.open"


def encode_line(record: dict[str, Any]) -> bytes:
    """One record as one JSON line (newlines inside strings are escaped by JSON)."""
    return (
        json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    ).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Segment:
    path: Path
    fh: Any
    opened: float
    lines: int = 0


def seal(path: Path) -> Path | None:
    """Cut a torn last line off an open segment and rename it to ``.jsonl``.

    Returns the sealed path, or None when the segment held nothing and was removed.
    """
    data = path.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(len(keep))
            fh.flush()
            os.fsync(fh.fileno())
    if not keep:
        path.unlink()
        return None
    sealed = path.with_name(path.name[: -len(".open")])
    os.replace(path, sealed)
    _fsync_dir(path.parent)
    return sealed


@dataclass
class Journal:
    """Open segments per stream under ``root``; not thread-safe (one writer thread uses it)."""

    root: Path
    rotate_seconds: float = 60.0
    on_seal: Callable[[Path], None] | None = None
    _open: dict[str, _Segment] = field(default_factory=dict)
    _seq: int = 0

    def _segment(self, stream: str) -> _Segment:
        seg = self._open.get(stream)
        if seg is not None:
            return seg
        now = datetime.now(UTC)
        folder = self.root / stream / "collector" / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = folder / f"{now.strftime('%H%M%S%f')}-{os.getpid()}-{self._seq:06d}{OPEN_SUFFIX}"
        fh = open(path, "ab")  # noqa: SIM115 - kept open until the segment is sealed
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # recovery skips live segments
        _fsync_dir(folder)
        seg = _Segment(path, fh, time.monotonic())
        self._open[stream] = seg
        return seg

    def append(self, lines_by_stream: dict[str, list[bytes]]) -> None:
        """Append the lines and fsync every touched segment: on return they are durable."""
        touched = []
        for stream, lines in lines_by_stream.items():
            if not lines:
                continue
            seg = self._segment(stream)
            seg.fh.write(b"".join(lines))
            seg.lines += len(lines)
            touched.append(seg)
        for seg in touched:
            seg.fh.flush()
            os.fsync(seg.fh.fileno())

    def rotate(self, force: bool = False) -> list[Path]:
        """Seal the segments older than the rotation period (all of them when ``force``)."""
        sealed = []
        now = time.monotonic()
        for stream, seg in list(self._open.items()):
            if force or now - seg.opened >= self.rotate_seconds:
                seg.fh.close()  # releases the lock
                del self._open[stream]
                done = seal(seg.path)
                if done is not None:
                    sealed.append(done)
                    if self.on_seal:
                        self.on_seal(done)
        return sealed

    def recover(self) -> list[Path]:
        """Seal the segments a crashed collector left open (live ones are locked: skipped)."""
        sealed = []
        for path in sorted(self.root.glob(f"*/*/collector/*/*{OPEN_SUFFIX}")) + sorted(
            self.root.glob(f"_collector/*/collector/*/*{OPEN_SUFFIX}")
        ):
            with open(path, "rb") as probe:
                try:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another collector is writing it
                done = seal(path)
            if done is not None:
                sealed.append(done)
                if self.on_seal:
                    self.on_seal(done)
        return sealed


@dataclass
class _Pending:
    lines: dict[str, list[bytes]]
    records: list[tuple[str, dict[str, Any]]]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class GroupCommitter:
    """One writer thread: journal appends in groups, then ``apply`` (the fresh-facts store),
    then the waiting requests are answered."""

    def __init__(
        self,
        journal: Journal,
        apply: Callable[[list[tuple[str, dict[str, Any]]]], None] | None = None,
        after: Callable[[int], None] | None = None,
    ) -> None:
        self.journal = journal
        self.apply = apply
        self.after = after
        self.committed = 0
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    async def commit(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Make ``(stream, record)`` pairs durable; returns once they are fsynced."""
        loop = asyncio.get_running_loop()
        lines: dict[str, list[bytes]] = {}
        for stream, record in records:
            lines.setdefault(stream, []).append(encode_line(record))
        future = loop.create_future()
        self._queue.put(_Pending(lines, records, future, loop))
        await future

    def _drain(self, first: _Pending) -> list[_Pending]:
        group = [first]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return group
            if item is None:
                self._queue.put(None)
                return group
            group.append(item)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.journal.rotate()
                continue
            if item is None:
                self.journal.rotate(force=True)
                return
            group = self._drain(item)
            merged: dict[str, list[bytes]] = {}
            for p in group:
                for stream, lines in p.lines.items():
                    merged.setdefault(stream, []).extend(lines)
            error: BaseException | None = None
            try:
                self.journal.append(merged)
                if self.apply:
                    self.apply([r for p in group for r in p.records])
            except BaseException as exc:  # answered to every waiting request, not lost
                error = exc
            for p in group:
                p.loop.call_soon_threadsafe(_settle, p.future, error)
            if error is None:
                self.committed += sum(len(v) for v in merged.values())
                # Wake-ups are for source events; refused payloads (``_collector/...``) wake nobody.
                events = sum(len(v) for k, v in merged.items() if not k.startswith("_"))
                if self.after and events:
                    self.after(events)
            self.journal.rotate()

    def close(self) -> None:
        """Write what is queued, seal every open segment and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

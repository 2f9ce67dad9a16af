"""Which records of which files a batch reads: the interval's window, file history, reruns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from profilecast.interval import Interval
from profilecast.sources.catalog import EntitySpec
from profilecast.sources.validation import parse_timestamp
from profilecast.storage import fingerprint


@dataclass
class Window:
    start: datetime | None  # None: no lower bound
    end: datetime

    def contains(self, ts: datetime | None) -> bool:
        if ts is None:
            return True  # undated records (snapshots) belong to every batch
        return (self.start is None or ts >= self.start) and ts < self.end

    def is_late(self, ts: datetime | None) -> bool:
        """A record dated at or after the window's end belongs to a later interval."""
        return ts is not None and ts >= self.end


@dataclass
class FileRead:
    """What one batch did with one drop file (the ``load_files`` ledger)."""

    path: str
    fingerprint: str
    mode: str  # "full", "rest", "lookback" or "skipped": see plan_file
    read_from: str | None = None  # the lower bound the records were read from (None: none)
    rows_read: int = 0
    rows_later: int = 0  # records dated after the window: the file is not done with
    #: the lines a later "rest" read of the unchanged file must read again (records dated
    #: after the window, undated ones), comma-separated; None: unknown, read every line
    reread_lines: str | None = None
    #: where each of those lines starts in the file, in bytes and in the same order, so the
    #: later read seeks to them instead of reading the whole file; None: not known (a gzip
    #: or remote file, a line break other than \n, or a reader that does not count bytes)
    reread_offsets: str | None = None
    _reread: list[int] = field(default_factory=list, repr=False)
    _offsets: dict[int, int] | None = field(default_factory=dict, repr=False)

    def reread(self, line: int) -> None:
        self._reread.append(line)

    def locate(self, line: int, offset: int) -> None:
        """Where ``line`` starts in the file (bytes), for a later read to seek to."""
        if self._offsets is not None:
            self._offsets[line] = offset

    def offsets_unknown(self) -> None:
        """Byte offsets cannot be trusted for this file: a later read scans it."""
        self._offsets = None

    def reread_count(self) -> int:
        return len(self._reread)

    def rereads_since(self, start: int) -> list[int]:
        """The lines marked for rereading since the ``start``-th mark."""
        return self._reread[start:]

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        if len(self._reread) <= MAX_REREAD_LINES:
            lines = sorted(set(self._reread))
            out["reread_lines"] = ",".join(str(n) for n in lines)
            known = self._offsets
            if known is not None and all(n in known for n in lines):
                out["reread_offsets"] = ",".join(str(known[n]) for n in lines)
        return out


#: Beyond this many, a file's reread lines are not kept (a later read reads every line).
MAX_REREAD_LINES = 100_000
FILE_READ_COLUMNS = (
    "path", "fingerprint", "mode", "read_from", "rows_read", "rows_later", "reread_lines",
    "reread_offsets",
)  # fmt: skip


@dataclass
class History:
    """What earlier batches of one entity did: the input to an incremental extraction.

    ``batches`` are load_batches rows by batch id, ``files`` the load_files rows and
    ``quarantined`` the fingerprints of quarantined records with the batch that holds them.
    """

    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)

    def for_entity(self, spec: EntitySpec) -> History:
        return History(
            {k: b for k, b in self.batches.items()
             if b["source"] == spec.source and b["entity"] == spec.entity},
            [f for f in self.files if f["source"] == spec.source and f["entity"] == spec.entity],
            self.quarantined,
        )  # fmt: skip


def batch_id_for(spec: EntitySpec, interval: Interval) -> str:
    return f"{spec.source}__{spec.entity}__{interval.stamp}"


def choose_window(
    history: History, batch_id: str, interval: Interval, lookback_days: int
) -> Window:
    """The first load takes all history; later ones their interval plus a lookback.

    A rerun of an interval that was already loaded reuses that batch's window, so rerunning
    the very first interval still reloads all history.
    """
    previous = history.batches.get(batch_id)
    if previous is not None:
        start = previous.get("window_start")
        return Window(parse_timestamp(start) if start else None, interval.end)
    if not any(b != batch_id for b in history.batches):
        return Window(None, interval.end)
    return Window(interval.lookback(lookback_days), interval.end)


def file_fingerprint(path: str) -> str:
    """Changes when a file does (see :func:`profilecast.storage.fingerprint`)."""
    return fingerprint(path)


def rest_lines(
    path: str, fingerprint: str, history: History, batch_id: str, since: datetime | None
) -> dict[int, int | None] | None:
    """For a "rest" read from ``since``: the lines worth parsing again, those that the
    earlier read of the same unchanged file whose window ended at ``since`` kept for later
    (dated after its window, or undated), each with its byte offset when that read knew it
    (None otherwise). Every other record is dated before ``since``, so outside this read's
    window. None: not known (a ledger row from before they were kept, or too many to keep):
    every line is read."""
    if since is None:
        return None
    for f in history.files:
        if (f["path"], f["fingerprint"]) != (path, fingerprint) or f["batch_id"] == batch_id:
            continue
        end = history.batches.get(f["batch_id"], {}).get("window_end")
        kept = f.get("reread_lines")
        if f["mode"] == "skipped" or not end or parse_timestamp(end) != since:
            continue
        if kept is None or kept != kept:  # None, or NaN from a DataFrame
            return None
        lines = [int(n) for n in str(kept).split(",") if n]
        at = f.get("reread_offsets")
        offsets = [int(n) for n in str(at).split(",") if n] if at and at == at else []
        if len(offsets) != len(lines):
            return dict.fromkeys(lines)
        return dict(zip(lines, offsets, strict=True))
    return None


def plan_file(
    path: str, fingerprint: str, history: History, batch_id: str, window: Window
) -> tuple[str, Window | None]:
    """How to read a drop file, from the batches that read it before (this one excluded).

    ``skipped``: another batch read this very file (same fingerprint) to its end, so all its
    records are in raw already. ``rest``: the same file was read before, but only up to an
    earlier interval's end (it held records dated later): only those later records are new.
    ``lookback``: the file has changed since it was read (a snapshot rewritten in place):
    the window's records are taken. ``full``: a file never read: every record up to the
    window's end, however old (late drops are not lost to the lookback).
    """
    own = [f for f in history.files if f["path"] == path and f["batch_id"] == batch_id]
    if own:
        # A rerun replaces this batch's rows, so it must hold again what it held: the same
        # file read from the same lower bound (a changed file: the window's records).
        before = own[0]
        if before["mode"] == "skipped":
            return "skipped", None
        if before["fingerprint"] != fingerprint:
            return "lookback", window
        start = parse_timestamp(before.get("read_from")) if before.get("read_from") else None
        return str(before["mode"]), Window(start, window.end)
    earlier = [
        f for f in history.files
        if f["path"] == path and f["batch_id"] != batch_id and f["mode"] != "skipped"
    ]  # fmt: skip
    same = [f for f in earlier if f["fingerprint"] == fingerprint]
    if any(int(f["rows_later"] or 0) == 0 for f in same):
        return "skipped", None
    if same:
        ends = [history.batches.get(f["batch_id"], {}).get("window_end") for f in same]
        ends = [parse_timestamp(e) for e in ends if e]
        if ends:
            return "rest", Window(max(e for e in ends if e is not None), window.end)
        return "full", Window(None, window.end)
    if earlier:
        return "lookback", window
    return "full", Window(None, window.end)


def load_history(wh: Any, source: str | None = None) -> History:
    """What earlier batches did (empty when nothing has been loaded yet)."""
    history = History()
    if wh.table_exists("load_batches"):
        frame = wh.df("select * from load_batches")
        history.batches = {r["batch_id"]: r for r in frame.to_dict("records")}
    if wh.table_exists("load_files"):
        where, params = ("where source = %s", (source,)) if source else ("", ())
        history.files = wh.df(f"select * from load_files {where}", params).to_dict("records")
    if wh.table_exists("quarantine") and "fingerprint" in wh.columns("quarantine"):
        where, params = ("and source = %s", (source,)) if source else ("", ())
        history.quarantined = {
            fp: bid
            for fp, bid in wh.query(
                f"select fingerprint, min(batch_id) from quarantine "
                f"where fingerprint is not null {where} group by fingerprint",
                params,
            )
        }
    return history

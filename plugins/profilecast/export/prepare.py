"""A campaign export's messages made into compressed batch files, part by part, in processes.

The rendered files are cut into parts of about ``PART_BYTES`` each. A part becomes its own
batch files: its messages, ordered by send time then message key, each batch one send time
and at most the format's messages per file. Everything a message costs happens in the part's
job: reading the rendered line, its sealed unsubscribe token, its headers and footer, its
entry in the ESP's format, its message-log line, and the gzip of the batch. A job hands back
compressed bytes and keys, so shipping a part's result between processes costs little (as
encoded entries, a 50,000-message file made 75 MB to move, and moving it cost more than the
second process saved).

The cut depends only on the rendered files, never on how many processes run the jobs: one
process or four write the same batches. The campaign export (``batches.py``) numbers the
batches, writes them in order and commits the ledger; only it writes.

The workers are forked: they inherit the contexts (the keys the send ledger holds, which
grow with every day, and the token keys) without pickling them. One pool serves every
campaign of an export (``prepare_campaigns``): the campaigns' parts queue in campaign order,
and while the export commits one campaign the workers go on with the next.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profilecast.experiments.definition import HOLDOUT

#: uncompressed rendered bytes per part: a part is one job, and its last batch of each send
#: time may be short. At a million contacts 8 MiB parts cut the SendGrid campaign's 231,867
#: messages (24 send hours) into 961 files; 64 MiB parts into 329, in the same time.
PART_BYTES = 64 * 2**20


@dataclass
class Context:
    """What every message of one campaign export shares."""

    fmt: str
    topic: str | None
    run_date: str
    sent_at: str
    attribution_days: int
    gzip_level: int
    #: message keys the send ledger holds for the campaign: never prepared again
    exported: set[str] = field(default_factory=set)


@dataclass
class Batch:
    """One batch file's content, compressed, and what the ledger records of it."""

    send_at: str | None
    message_keys: list[str]
    customer_ids: list[str]
    lines: int
    data: bytes  # gzip
    sha256: str
    log: bytes  # the message-log lines (uncompressed)


@dataclass
class Part:
    batches: list[Batch]
    holdouts: list[dict[str, Any]]


#: the contexts of the campaigns being prepared, by campaign (a job names its campaign)
_CONTEXTS: dict[str, Context] = {}


def _set_contexts(contexts: dict[str, Context]) -> None:
    global _CONTEXTS
    _CONTEXTS = contexts


_LAST_READ: tuple[tuple[str, int, int], list[bytes]] | None = None


def read_lines(path: Path) -> list[bytes]:
    """A rendered file's non-blank lines (empty for a missing file). The last file read is
    kept: a process given several parts of one file decompresses it once."""
    global _LAST_READ
    if not path.exists():
        return []
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if _LAST_READ is None or _LAST_READ[0] != key:
        _LAST_READ = None  # let the previous file go before the next is read
        lines = [line for line in gzip.decompress(path.read_bytes()).split(b"\n") if line.strip()]
        _LAST_READ = (key, lines)
    return _LAST_READ[1]


def _decorate(ctx: Context, tokens: Any, base_url: str) -> Callable[[dict[str, Any]], None]:
    """A function that gives one message its unsubscribe headers and footer, and its schema
    version. The imports are done here, once per batch: done per message they cost 1.5 us
    each, about 3% of the message's export."""
    from profilecast.consent.links import add_footer, message_token, unsubscribe_headers
    from profilecast.export.batches import SCHEMA_VERSION

    topic, day = ctx.topic, ctx.run_date

    def decorate(msg: dict[str, Any]) -> None:
        # One token when the message's topic is all marketing: the footer's.
        everything = message_token(msg, None, tokens, day)
        token = everything if topic is None else None
        msg["headers"] = unsubscribe_headers(msg, topic, tokens, base_url, day, token)
        add_footer(msg, tokens, base_url, day, everything)
        msg["schema_version"] = SCHEMA_VERSION

    return decorate


#: (campaign, rendered file, part k, of parts)
Job = tuple[str, Path, int, int]


def prepare_part(job: Job) -> Part:
    """Part ``k`` of ``parts`` of one rendered file (contiguous lines) as batches (in a
    worker, or in-process). The cyclic garbage collector is off meanwhile: the part's
    messages are acyclic dicts it would only walk again and again (a twentieth of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _prepare_part(job)
    finally:
        if enabled:
            gc.enable()


def _prepare_part(job: Job) -> Part:
    import msgspec

    from profilecast.consent.links import link_settings
    from profilecast.export.formats import MESSAGES_PER_FILE, spec

    key, path, k, parts = job
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        raise RuntimeError("prepare_part runs inside prepare_campaigns")
    lines = read_lines(path)
    lines = lines[k * len(lines) // parts : (k + 1) * len(lines) // parts]
    messages = msgspec.json.Decoder().decode_lines(b"\n".join(lines)) if lines else []
    holdouts = [m for m in messages if m.get("variant") == HOLDOUT]
    twice = sorted(k for k, n in Counter(m["message_key"] for m in messages).items() if n > 1)
    if twice:
        raise ValueError(f"message {twice[0]!r} was rendered twice in {path}")
    pending = [m for m in messages  # none the ledger holds
               if m.get("variant") != HOLDOUT and m["message_key"] not in ctx.exported]  # fmt: skip
    pending.sort(key=lambda m: (m.get("send_at") or "", m["message_key"]))
    tokens, base_url = link_settings()
    fmt = spec(ctx.fmt)
    size = fmt.messages_per_file or MESSAGES_PER_FILE
    batches: list[Batch] = []
    start = 0
    while start < len(pending):
        send_at = pending[start].get("send_at")
        stop = start + 1
        while (
            stop < len(pending) and stop - start < size and pending[stop].get("send_at") == send_at
        ):
            stop += 1
        batches.append(_batch(pending[start:stop], ctx, fmt, tokens, base_url))
        start = stop
    return Part(batches, holdouts)


def _batch(chunk: list[dict[str, Any]], ctx: Context, fmt: Any, tokens: Any,
           base_url: str) -> Batch:  # fmt: skip
    from profilecast.export.formats import batch_data, encode_entry, envelope_head
    from profilecast.export.message_log import message_line

    decorate = _decorate(ctx, tokens, base_url)
    heads, entries, logs = [], [], []
    for i, msg in enumerate(chunk):
        decorate(msg)
        heads.append(envelope_head(fmt, msg) if i % fmt.per_line == 0 else b"")
        entries.append(encode_entry(fmt, msg))
        logs.append(message_line(msg, ctx.run_date, msg.get("send_at") or ctx.sent_at,
                                 ctx.attribution_days))  # fmt: skip
    data, lines = batch_data(fmt, heads, entries)
    packed = gzip.compress(data, ctx.gzip_level, mtime=0)
    return Batch(chunk[0].get("send_at"), [m["message_key"] for m in chunk],
                 [str(m["customer_id"]) for m in chunk], lines, packed,
                 hashlib.sha256(packed).hexdigest(), b"\n".join(logs) + b"\n")  # fmt: skip


def _uncompressed_size(path: Path) -> int:
    """A gzip file's uncompressed size from its trailer (modulo 4 GiB: only the balance
    of the parts depends on it), 0 for a missing file."""
    if not path.exists() or path.stat().st_size < 18:
        return 0
    with path.open("rb") as fh:
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little")


def rendered_bytes(paths: list[Path]) -> int:
    """The rendered files' uncompressed size in all (as their gzip trailers give it)."""
    return sum(_uncompressed_size(p) for p in paths)


def jobs_for(paths: list[Path], key: str = "") -> list[Job]:
    """(campaign, file, part, parts) for every part of every rendered file, in file and
    line order."""
    jobs = []
    for path in paths:
        parts = max(1, -(-_uncompressed_size(path) // PART_BYTES))
        jobs += [(key, path, k, parts) for k in range(parts)]
    return jobs


def _forget_lines() -> None:
    global _LAST_READ
    _LAST_READ = None


def prepare_files(paths: list[Path], context: Context, workers: int) -> list[Part]:
    """Every part of one campaign's rendered files as batches, in file and line order;
    ``workers`` > 1 runs the parts in that many forked processes (the same batches as one
    process)."""
    return next(prepare_campaigns([("", paths, context)], workers))[1]


def prepare_campaigns(
    campaigns: list[tuple[str, list[Path], Context]], workers: int
) -> Iterator[tuple[str, list[Part]]]:
    """(campaign, its parts in file and line order) for each (campaign, rendered files,
    context), in the order given, each as soon as its parts are ready. ``workers`` > 1: one
    pool of that many forked processes prepares every campaign's parts, queued in campaign
    order, so the caller's work on one campaign overlaps the workers' on the next."""
    contexts = {key: context for key, _, context in campaigns}
    jobs = {key: jobs_for(paths, key) for key, paths, _ in campaigns}
    total = sum(len(j) for j in jobs.values())
    if workers <= 1 or total <= 1:
        _set_contexts(contexts)
        try:
            for key, _, _ in campaigns:
                yield key, [prepare_part(j) for j in jobs[key]]
                _forget_lines()
        finally:
            _set_contexts({})
            _forget_lines()
        return
    # fork: the workers inherit the contexts and the loaded modules; the caller's warehouse
    # connection is not used in them.
    pool = ProcessPoolExecutor(max_workers=min(workers, total),
                               mp_context=multiprocessing.get_context("fork"),
                               initializer=_set_contexts, initargs=(contexts,))  # fmt: skip
    with pool:
        futures = {key: [pool.submit(prepare_part, j) for j in jobs[key]] for key in jobs}
        try:
            for key, _, _ in campaigns:
                yield key, [f.result() for f in futures[key]]
                del futures[key]  # its batches are the caller's now
        finally:
            for pending in futures.values():
                for f in pending:
                    f.cancel()

"""One entity's drop files read in parallel processes.

Extraction parses, validates and re-encodes every record in Python, one core per process
(a py-spy profile at a million contacts spreads the time over JSON decoding, timestamp
formatting, the control-character check and building Parquet columns: no single hot spot).
The files of an entity are independent, so each goes to its own process. A worker writes
its records as Parquet parts named after the file (``part-<file>-<n>.parquet``) and returns
its counts, its quarantined records and its file ledger row; the batch adds them up in file
order, so the manifest, the quarantine and ``load_files`` are what one process writes.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from profilecast.sources.landing import _BatchWriter
    from profilecast.sources.window import FileRead, Window


def total_bytes(files: list[str]) -> int:
    """The local files' size in bytes (S3 objects count 0: they are read in one process)."""
    return sum(os.path.getsize(f) for f in files if not f.startswith("s3://"))


@dataclass
class _Job:
    writer: _BatchWriter
    index: int
    read: FileRead
    file_window: Window | None
    lines: dict[int, int | None] | None


def _read_one(job: _Job) -> tuple[FileRead, list[dict[str, Any]], dict[str, int]]:
    from profilecast.sources import vectorised
    from profilecast.sources.landing import FILE_COUNTERS, BatchResult, _BatchWriter, read_file

    vectorised.THREADS = 1  # one core per worker process
    parent = job.writer
    result = BatchResult(
        parent.result.batch_id, parent.result.source, parent.result.entity,
        parent.result.landing_dir,
    )  # fmt: skip
    writer = _BatchWriter(parent.spec, parent.history, result, parent.out, parent.forgotten,
                          prefix=f"part-{job.index:05d}-")  # fmt: skip
    read_file(writer, job.read, job.file_window, job.lines)
    writer.flush()
    return job.read, writer.quarantined, {name: getattr(result, name) for name in FILE_COUNTERS}


def read_files_in_parallel(
    writer: _BatchWriter,
    plans: list[tuple[FileRead, Window | None, dict[int, int | None] | None]],
    workers: int,
) -> list[tuple[FileRead, list[dict[str, Any]], dict[str, int]]]:
    """Each planned file read by a worker process; the results in file order."""
    # The writer travels without its buffered rows: the workers write their own parts.
    shell = _without_rows(writer)
    jobs = [_Job(shell, k, read, window, lines) for k, (read, window, lines) in enumerate(plans)]
    # fork: the workers inherit the loaded modules (spawn would import them again and run
    # the caller's __main__); the calling process holds no warehouse connection here.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_read_one, jobs))


def _without_rows(writer: _BatchWriter) -> _BatchWriter:
    """A copy of ``writer`` without rows or quarantined records (what a worker needs)."""
    import copy

    shell = copy.copy(writer)
    shell.rows, shell.quarantined, shell.pending, shell.pending_rows = [], [], [], 0
    shell.result = replace(writer.result, files=[], file_reads=[])
    return shell

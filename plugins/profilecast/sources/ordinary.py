"""What the vectorised readers share: one chunk of records, some of them checked and converted
by DuckDB in bulk (the *ordinary* ones: vectorised.py for JSON lines, vectorised_csv.py for
CSV), the others by the Python path one at a time, landed together in file order with the
counts, quarantine and file ledger the Python path alone would give."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from profilecast.sources.landing import _BatchWriter
    from profilecast.sources.readers import RawRecord
    from profilecast.sources.window import FileRead, Window


def take_chunk(
    writer: _BatchWriter,
    read: FileRead,
    window: Window,
    fast: pa.Table,
    numbers: pa.Array,
    records_at: Callable[[int], Iterable[RawRecord]],
) -> None:
    """Land one chunk: ``fast`` holds what the SQL converted (by line ``n``, see
    vectorised._query), ``numbers`` every line number of the chunk, and ``records_at(k)``
    the records of its ``k``-th line for the Python path (the lines ``fast`` leaves out, and
    those naming an erased person)."""
    import pyarrow.compute as pc

    fast = _in_file_order(fast)
    if writer.forgotten:
        fast = _without_forgotten(writer, fast)
    taken = _count(writer, read, fast)
    rows: list[dict[str, Any]] = []
    rest = pc.indices_nonzero(pc.invert(pc.is_in(numbers, fast.column("n"))))
    for k in rest.to_pylist():
        for raw in records_at(k):
            row = writer.check(raw, window, read)
            if row is not None:
                rows.append(row)
    writer.add_table(_merge(writer, taken, rows, read.path))


def _in_file_order(fast: pa.Table) -> pa.Table:
    """The rows by line number: DuckDB keeps the scan's order without ORDER BY (its default
    preserve_insertion_order), so this checks, cheaper than the query sorting; and sorts."""
    import pyarrow.compute as pc

    n = fast.column("n")
    if len(n) < 2 or pc.all(pc.greater(n.slice(1), n.slice(0, len(n) - 1))).as_py():
        return fast
    return fast.sort_by("n")


def _without_forgotten(writer: _BatchWriter, fast: pa.Table) -> pa.Table:
    """``fast`` without the lines naming an erased person (the Python path counts them).
    Each distinct value is tested against the digests once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    gone = writer.forgotten
    assert gone is not None
    seen: dict[str, bool] = {}

    def erased(text: str) -> bool:
        if text not in seen:
            seen[text] = gone.has(text)
        return seen[text]

    keep = pa.array([True] * len(fast))
    extra: list[str] = []
    for k, _ in enumerate(writer.spec.person_fields):
        extra += [f"pt{k}", f"px{k}"]
        kinds, texts = fast.column(f"pt{k}").to_pylist(), fast.column(f"px{k}").to_pylist()
        parents = None
        if f"pp{k}" in fast.column_names:
            extra.append(f"pp{k}")
            parents = fast.column(f"pp{k}").to_pylist()
        hits = []
        for i, (kind, text) in enumerate(zip(kinds, texts, strict=True)):
            if parents is not None and parents[i] not in (None, "NULL", "OBJECT"):
                hits.append(True)  # a JSON string to parse: Python decides
            elif kind == "BOOLEAN":
                hits.append(erased("True" if text == "true" else "False"))
            else:
                hits.append(kind in ("VARCHAR", "BIGINT", "UBIGINT") and erased(text))
        keep = pc.and_(keep, pc.invert(pa.array(hits, pa.bool_())))
    return fast.filter(keep).drop_columns(extra)


def _count(writer: _BatchWriter, read: FileRead, fast: pa.Table) -> pa.Table:
    """Count the ordinary lines as loaded or outside the window; the loaded ones."""
    import pyarrow.compute as pc

    inside = fast.filter(fast.column("in_window"))
    outside = fast.filter(pc.invert(fast.column("in_window")))
    late = outside.filter(outside.column("late"))
    result = writer.result
    result.rows_loaded += len(inside)
    result.rows_read += len(inside)
    read.rows_read += len(inside)
    result.rows_outside_window += len(outside)
    read.rows_later += len(late)
    for n in fast.filter(fast.column("reread")).column("n").to_pylist():
        read.reread(n)
    return inside


def _merge(
    writer: _BatchWriter, taken: pa.Table, rows: list[dict[str, Any]], path: str
) -> pa.Table:
    """The chunk's loaded rows, ordinary and Python-checked, in file order."""
    import pyarrow as pa

    from profilecast.sources.landing import _rows_table

    n = len(taken)
    cols = {c: taken.column(c).cast(pa.string()) for c in writer.spec.columns}
    cols["_extra"] = taken.column("_extra").cast(pa.string())
    cols["_flags"] = pa.nulls(n, pa.string())
    cols["_record_ts"] = taken.column("_record_ts").cast(pa.string())
    cols["_source_file"] = pa.array([path] * n, pa.string())
    cols["_line"] = taken.column("n").cast(pa.string())
    fast = pa.table({c: cols[c] for c in writer.columns})
    if not rows:
        return fast
    slow = _rows_table(rows, writer.columns)
    order = pa.concat_arrays([taken.column("n").combine_chunks(),
                              pa.array([int(r["_line"]) for r in rows], pa.int64())])  # fmt: skip
    both = pa.concat_tables([fast, slow]).append_column("_n", order)
    return both.sort_by("_n").drop_columns(["_n"])

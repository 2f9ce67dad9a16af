"""Ordinary CSV records checked and converted by DuckDB, a chunk of rows at a time.

A py-spy profile of the CRM extraction at a million contacts (two 124 MB CSV files) put
nearly all of its time in per-record Python after the CSV module had split the rows:
timestamp parsing and formatting, the control-character walk, the email pattern, building
each row. Python's csv module still splits the file here (its quoting rules are the ones
the Python path follows); the rows of a chunk then go to DuckDB as string columns, and the
same query as for JSON lines (vectorised._query, over CTEs that give every value the JSON
type VARCHAR) decides which are ordinary and converts them.

A file takes this path when its header is ordinary: unique names without control
characters, that the entity's dialect leaves as they are (a Salesforce or HubSpot export is
mapped by the Python path). A row is left to Python when a value holds a control character,
when a value of a column that is not the entity's (it lands in ``_extra``) would need JSON
escaping, when its field count is not the header's, and wherever the query leaves it
(an invalid email, timestamp or date, no id, ...). ``test_vectorised.py`` holds both paths
to the same output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from profilecast.sources.catalog import EntitySpec

if TYPE_CHECKING:
    from profilecast.sources.landing import _BatchWriter
    from profilecast.sources.readers import RawRecord
    from profilecast.sources.window import FileRead, Window

#: Rows per chunk handed to DuckDB.
CHUNK_ROWS = 50_000
#: A value json.dumps writes as it is between quotes (ensure_ascii=False).
_PLAIN = r'[^"\\\x{00}-\x{1f}]*'


def applies(spec: EntitySpec, path: str, lines: object | None) -> bool:
    """Whether the records of ``path`` may take this path: a local CSV file read in full,
    of an entity whose person fields are plain columns."""
    from profilecast.config import extract_vectorised
    from profilecast.sources.readers import _fmt

    return (
        extract_vectorised()
        and lines is None
        and not path.startswith("s3://")
        and _fmt(path) == ".csv"
        and not any("." in p for p in spec.person_fields)
        and set(spec.watermark) <= set(spec.timestamps)
    )


def ordinary_header(spec: EntitySpec, header: list[str]) -> bool:
    """Unique names without control characters, which the dialect leaves alone."""
    from profilecast.sources.connectors.dialects import normalize
    from profilecast.sources.validation import control_character

    named = {h: h for h in header}
    return (
        len(named) == len(header)
        and control_character(header) is None
        and normalize(spec.dialect, dict(named)) == named
    )


def typed_ctes(spec: EntitySpec, header: list[str], person: bool) -> str:
    """The CTEs ending in ``typed`` (vectorised._query) of a chunk ``rows(n, c0, c1, ...)``,
    ``c<j>`` being the header's ``j``-th column."""
    from profilecast.sources.vectorised import CONTROL_CHARS, _q

    at = {h: f"c{j}" for j, h in enumerate(header)}
    values = ", ".join(at.values())
    cols = []
    for i, c in enumerate(spec.columns):
        cols.append(f"'VARCHAR' as t{i}, {at[c]} as x{i}" if c in at
                    else f"null::varchar as t{i}, null::varchar as x{i}")  # fmt: skip
    persons = "".join(
        f", 'VARCHAR' as pt{k}, {at[p]} as px{k}" if p in at
        else f", null::varchar as pt{k}, null::varchar as px{k}"
        for k, p in enumerate(spec.person_fields)
    ) if person else ""  # fmt: skip
    extras = [h for h in header if h not in spec.columns]
    plain = " and ".join(f"regexp_full_match({at[h]}, {_q(_PLAIN)})" for h in extras) or "true"
    # json.dumps of {name: value, ...} in header order, ", " and ": " between
    text = " || ', ' || ".join(
        f"{_q(json.dumps(h, ensure_ascii=False) + ': ')} || '\"' || {at[h]} || '\"'" for h in extras
    )
    extra = f"'{{' || {text} || '}}'" if extras else "null::varchar"
    return f"""typed as materialized (
            select n, (not regexp_matches(concat_ws(' ', {values}), {_q(CONTROL_CHARS)})
                and {plain}) as keys_ok, true as types_ok, {extra} as _extra,
                {", ".join(cols)}{persons}
            from rows
        )"""


def read_file(writer: _BatchWriter, read: FileRead, window: Window) -> None:
    """Every record of one local CSV file through ``writer``: ordinary rows by DuckDB, the
    rest by the Python path; the batch's parts hold them in file order."""
    import csv

    import duckdb

    from profilecast.sources import ordinary, vectorised
    from profilecast.sources.readers import _open_text, csv_header, csv_records

    spec, path = writer.spec, read.path
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = csv_header(reader, path, spec)
        if header is None:
            return
        if not ordinary_header(spec, header):
            for raw in csv_records(reader, path, header):
                writer.take(raw, window, read)
            return
        con = duckdb.connect()
        if vectorised.THREADS:
            con.execute(f"set threads = {int(vectorised.THREADS)}")
        typed = typed_ctes(spec, header, bool(writer.forgotten))
        sql = vectorised._query(spec, window, bool(writer.forgotten), typed)
        try:
            for numbers, rows in _chunks(reader):
                table = _rows_table(numbers, rows, len(header))
                con.register("rows", table)
                fast = con.sql(sql).to_arrow_table()
                con.unregister("rows")
                records_at = partial(_row_records, path, header, numbers, rows)
                ordinary.take_chunk(writer, read, window, fast, table.column("n"), records_at)
        finally:
            con.close()


def _chunks(reader: Iterator[list[str]]) -> Iterator[tuple[list[int], list[list[str]]]]:
    """The file's non-blank rows in chunks, with their line numbers (where each ends)."""
    from profilecast.sources.readers import blank_row

    numbers: list[int] = []
    rows: list[list[str]] = []
    for values in reader:
        if blank_row(values):
            continue
        numbers.append(reader.line_num)  # type: ignore[attr-defined]
        rows.append(values)
        if len(rows) >= CHUNK_ROWS:
            yield numbers, rows
            numbers, rows = [], []
    if rows:
        yield numbers, rows


def _rows_table(numbers: list[int], rows: list[list[str]], width: int):  # noqa: ANN202
    """The chunk as ``rows(n, c0, ...)``; a row of another width is all nulls (no identifier:
    the query leaves it to the Python path, which quarantines it)."""
    import numpy as np
    import pyarrow as pa

    fitting = [r if len(r) == width else [None] * width for r in rows]
    # one conversion of the whole chunk, then a column is every width-th value: five times
    # faster than converting column by column
    values = pa.array(fitting, pa.list_(pa.string(), width)).flatten()
    starts = np.arange(len(rows), dtype=np.int64) * width
    columns = {"n": pa.array(numbers, pa.int64())}
    for j in range(width):
        columns[f"c{j}"] = values.take(pa.array(starts + j))
    return pa.table(columns)


def _row_records(path: str, header: list[str], numbers: list[int], rows: list[list[str]],
                 k: int) -> Iterator[RawRecord]:  # fmt: skip
    """The record of a chunk's ``k``-th row, as the Python path reads it."""
    from profilecast.sources.readers import csv_record

    raw = csv_record(path, header, rows[k], numbers[k])
    return iter(() if raw is None else (raw,))

"""Ordinary JSON-lines records checked and converted by DuckDB, whole chunks at a time.

A py-spy profile of extraction at a million contacts spread its time over per-record
Python: JSON decoding and re-encoding, timestamp parsing and formatting, the
control-character check, the validation rules and building Parquet columns. Nearly every
record of a large event file is *ordinary*: a JSON object whose keys are the entity's
columns, with no control character, valid emails, well-formed timestamps, an id, and
nothing that would earn a flag or a quarantine. For those, one DuckDB query per chunk of
lines does what :func:`validate_record` does, column by column.

Every other line (broken JSON, a batch envelope, another dialect, an extra key, a float
whose text Python and DuckDB would write differently, an invalid email, a missing id, a
person who was erased, ...) goes through the Python path, one record at a time, so
quarantine reasons, flags and derived ids stay exactly what they were. The rule is
one-sided: a line is ordinary only when the SQL can prove the Python path would load it
unchanged; when in doubt, Python decides. ``test_vectorised.py`` holds both paths to the
same output on files built to hit every rule.

Known difference, kept: a nested object's duplicated key stays twice in its text here
(Python keeps the last); every JSON reader downstream reads the first."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from profilecast.sources.catalog import EntitySpec
from profilecast.sources.validation import SEGMENT_REQUIRED, format_timestamp

if TYPE_CHECKING:
    import pyarrow as pa

    from profilecast.sources.landing import _BatchWriter
    from profilecast.sources.readers import RawRecord
    from profilecast.sources.window import FileRead, Window

#: DuckDB threads for the checks (a parallel extraction worker sets 1: one core each).
THREADS: int | None = None

# RE2 versions of validation's patterns (RE2 has no lookaround; \x{..} is a code point).
#: A control character as validation's _CONTROL has it (a CSV value is checked for these).
CONTROL_CHARS = r"[\x{00}-\x{08}\x{0b}\x{0c}\x{0e}-\x{1f}\x{7f}-\x{9f}]"
_CONTROL = r"\\u00[01789][0-9a-fA-F]|\\[bf]|" + CONTROL_CHARS
_EMAIL = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
#: A trailing comma (DuckDB's reader accepts one, Python's does not); may match in strings.
_TRAILING_COMMA = r",\s*[}\]]"
#: A number in the line that Python and DuckDB may write differently (a value nested in an
#: object or array is written again; a top-level DOUBLE is never ordinary). Both write the
#: shortest round-trip digits, but Python switches to an exponent below 1e-4 and from 1e16
#: (1e+16), DuckDB at other bounds (100000000000000000000.0, 1e-7); NaN, Infinity and
#: negative zero differ too. Checked on 60,000 random doubles: the others agree. Read in the
#: raw line (JSON allows whitespace around a value), so it may match inside strings as well
#: (such lines go to Python).
_NUMBERS = (
    r"[:,\[]\s*-?[0-9]+(\.[0-9]+)?[eE]|[:,\[]\s*-?[0-9]{16,}|[:,\[]\s*-?0\.0000"
    r"|[:,\[]\s*-0(\.0+)?\s*[,}\]]|NaN|Infinity"
)
_ISO = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(\.[0-9]{1,6})?(Z|z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))?"
)
#: An _ISO text in UTC without an offset or with Z, which DuckDB casts as Python reads it (a
#: date that does not exist casts to NULL: Python decides).
_ISO_UTC = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z?"
)
_INTEGER = r"0|-?[1-9][0-9]*"
#: The JSON types a column's value may have on the vectorised path (DOUBLE never: a float's
#: text is Python's to write; a missing key is NULL).
_TYPES = "['NULL', 'VARCHAR', 'BOOLEAN', 'BIGINT', 'UBIGINT', 'OBJECT', 'ARRAY']"
#: Keys that change what a record is (a batch envelope, Segment's legacy name for type, a
#: Snowplow event): the Python path reads such a line.
_MEANINGFUL_KEYS = ("batch", "action", "event_id")
_INTS = "('BIGINT', 'UBIGINT')"


def applies(spec: EntitySpec, path: str, lines: object | None) -> bool:
    """Whether the records of ``path`` may take this path: a local JSON-lines file read in
    full, of an entity without date columns, whose dialect (if any) leaves records made of
    its own columns alone (Snowplow events carry ``event_id``, not a column)."""
    from profilecast.config import extract_vectorised
    from profilecast.sources.connectors.dialects import normalize_web_event
    from profilecast.sources.readers import _fmt

    return (
        extract_vectorised()
        and lines is None
        and not path.startswith("s3://")
        and _fmt(path) in (".jsonl", ".ndjson")
        and not spec.dates
        and spec.dialect in (None, normalize_web_event)
        and set(spec.watermark) <= set(spec.timestamps)
    )


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _present(t: str, x: str) -> str:
    """SQL: the value is certainly non-empty for ``str(value or "").strip()``."""
    return (
        f"(({t} = 'VARCHAR' and regexp_matches({x}, '[!-~]')) or ({t} in {_INTS} and {x} <> '0'))"
    )


def _stamp_parts(t: str, x: str) -> str:
    """SQL columns ``d_<t>`` (the value as Unix digits), ``u_<t>`` (a UTC text's timestamp:
    the common case, cast at a third of the cost of the parts) and ``g_<t>`` (the parts of
    another ISO text), for :func:`_timestamp`."""
    digits = f"({t} in {_INTS} or {t} = 'VARCHAR') and regexp_full_match({x}, '[0-9]{{1,13}}')"
    names = "['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'z', 'sign', 'oh', 'om']"
    utc = f"{t} = 'VARCHAR' and regexp_full_match({x}, {_q(_ISO_UTC)})"
    return (
        f"case when {digits} then try_cast({x} as bigint) end as d_{t}, "
        f"case when {utc} then try_cast(rtrim({x}, 'Z') as timestamp) end as u_{t}, "
        f"case when {t} = 'VARCHAR' and not ({utc}) then"
        f" regexp_extract({x}, {_q('^' + _ISO + '$')}, {names}) end as g_{t}"
    )


def _timestamp(t: str) -> str:
    """SQL: the value as a timestamp, exactly as parse_timestamp reads it, or NULL where this
    path cannot be sure (Python then decides). Unix seconds up to 1e11, milliseconds above
    it up to 4e12 (where a float division still rounds to the exact millisecond)."""
    d, g = f"d_{t}", f"g_{t}"
    offset = (
        f"(case when {g}.sign = '' then 0 else (case when {g}.sign = '-' then -1 else 1 end)"
        f" * (try_cast({g}.oh as bigint) * 60 + try_cast({g}.om as bigint)) * 60000000 end)"
    )
    frac = f"(case when {g}.f = '' then 0 else try_cast(rpad({g}.f[2:], 6, '0') as bigint) end)"
    civil = (
        f"try(make_timestamp(try_cast({g}.y as bigint), try_cast({g}.mo as bigint), try_cast({g}.d as bigint),"
        f" try_cast({g}.h as bigint), try_cast({g}.mi as bigint), try_cast({g}.s as double)))"
    )
    return (
        f"case when {d} <= 100000000000 then make_timestamp({d} * 1000000)"
        f" when {d} < 4000000000000 then make_timestamp({d} * 1000)"
        f" when u_{t} is not null then u_{t} when {g}.y <> '' then make_timestamp(epoch_us({civil}) + {frac} - {offset}) end"
    )


def _query(spec: EntitySpec, window: Window, person: bool, typed: str | None = None) -> str:
    """One query over a chunk ``lines(n, line)``: the ordinary lines, with the converted
    columns, the record time and where it falls. ``typed``: the CTEs ending in ``typed``
    (per record: n, keys_ok, types_ok, _extra, then per column its JSON type t<i> and text
    x<i>, and pt<k>/px<k>/pp<k> for the person fields), by default :func:`_json_typed`'s."""
    cols = list(spec.columns)
    t = {c: f"t{i}" for i, c in enumerate(cols)}
    x = {c: f"x{i}" for i, c in enumerate(cols)}
    checks = ["keys_ok", "types_ok"]
    out = []
    for c in cols:
        tc, xc = t[c], x[c]
        empty = f"({tc} is null or {tc} = 'NULL' or ({tc} = 'VARCHAR' and {xc} = ''))"
        if c in spec.timestamps:
            checks.append(f"({empty} or year(ts_{tc}) between 1000 and 9999)")
            out.append(
                f"case when {empty} then null else strftime(ts_{tc}, '%Y-%m-%d %H:%M:%S.%f') end"
                f" as {_qi(c)}"
            )
            continue
        if c in spec.dates:  # what parse_date keeps as it is: YYYY-MM-DD, a real date
            checks.append(f"({empty} or ({tc} = 'VARCHAR' and regexp_full_match({xc},"
                          f" '[1-9][0-9]{{3}}-[0-9]{{2}}-[0-9]{{2}}') and try_cast({xc} as date)"
                          " is not null))")  # fmt: skip
        if c in spec.email_fields:
            checks.append(
                f"({empty} or ({tc} = 'VARCHAR' and strlen({xc}) <= 254"
                f" and regexp_full_match({xc}, {_q(_EMAIL)})))"
            )
        out.append(f"nullif({xc}, '') as {_qi(c)}")
    checks.append("(" + " or ".join(_present(t[i], x[i]) for i in spec.identifiers) + ")")
    if spec.record_id:
        checks.append(f"coalesce({x[spec.record_id]}, '') <> ''")
    if spec.rules == "segment":
        checks.append(_segment(cols, t, x))
    stamps = [f"ts_{t[c]}" for c in spec.watermark]
    record_ts = f"greatest({', '.join(stamps)})" if stamps else "null::timestamp"
    if stamps:
        checks.append(f"{record_ts} is not null")
    parts = "".join(f", {_stamp_parts(t[c], x[c])}" for c in spec.timestamps)
    ts_cols = "".join(f", {_timestamp(t[c])} as ts_{t[c]}" for c in spec.timestamps)
    start = f"r >= {_q(format_timestamp(window.start))}::timestamp" if window.start else "true"
    end = _q(format_timestamp(window.end))
    persons = "".join(f", pt{k}, px{k}" + (f", pp{k}" if "." in p else "")
                      for k, p in enumerate(spec.person_fields)) if person else ""  # fmt: skip
    return f"""
        with {typed or _json_typed(spec, person)},
        parted as (select *{parts} from typed),
        stamped as materialized (select *{ts_cols} from parted),
        checked as (
            select *, {record_ts} as r from stamped where {" and ".join(checks)}
        )
        select n, {", ".join(out)}, _extra, strftime(r, '%Y-%m-%d %H:%M:%S.%f') as _record_ts,
            ({start} and r < {end}::timestamp) or r is null as in_window,
            coalesce(r >= {end}::timestamp, false) as late,
            r is null or r >= {end}::timestamp as reread{persons}
        from checked
    """


def _json_typed(spec: EntitySpec, person: bool) -> str:
    """The CTEs ending in ``typed`` (see :func:`_query`) of JSON lines ``lines(n, line)``."""
    cols = list(spec.columns)
    names = ", ".join(_q(c) for c in cols)
    paths = ", ".join(_q(f'$."{c}"') for c in cols)
    typed = ", ".join(f"ty[{i + 1}] as t{i}, xs[{i + 1}] as x{i}" for i in range(len(cols)))
    persons = "".join(
        f", json_type(line, {_q(_json_path(p))}) as pt{k}, line ->> {_q(_json_path(p))} as px{k}"
        + (f", json_type(line, {_q(_json_path(p.rsplit('.', 1)[0]))}) as pp{k}" if "." in p else "")
        for k, p in enumerate(spec.person_fields)
    ) if person else ""  # fmt: skip
    return f"""shaped as (
            select n, line, json_type(line, [{paths}]) as ty,
                json_extract_string(line, [{paths}]) as xs, json_keys(line) as k
            from lines
            where starts_with(line, '{{') and ends_with(line, '}}') and json_valid(line)
              and not regexp_matches(line, {_q(_TRAILING_COMMA + "|" + _CONTROL + "|" + _NUMBERS)})
        ),
        extra as (
            select *, case when len(k) = list_aggregate(ty, 'count') then []::varchar[]
                else list_filter(k, lambda e: not list_contains([{names}], e)) end as extras
            from shaped
        ),
        typed as materialized (
            select n, {_keys_ok("extras")} as keys_ok, list_has_all({_TYPES}, ty) as types_ok,
                {_extra_text("extras")} as _extra, {typed}{persons}
            from extra
        )"""


def _at(fn: str) -> str:
    return f"{fn}(line, '$.\"' || e || '\"')"


def _keys_ok(extras: str) -> str:
    """SQL: every key appears once, and the keys that are not columns (they land in
    ``_extra``) have plain names and scalar values, and none changes what the record means.
    (A repeated key counts twice in json_keys and once among the columns found.)"""
    scalar = (
        f"regexp_full_match(e, '[A-Za-z0-9_]+')"
        f" and not list_contains([{', '.join(_q(k) for k in _MEANINGFUL_KEYS)}], e)"
        f" and ({_at('json_type')} in ('VARCHAR', 'BOOLEAN', 'NULL') or ({_at('json_type')} in"
        f" {_INTS} and regexp_full_match({_at('json_extract_string')}, {_q(_INTEGER)})))"
    )
    # (CASE, not OR: DuckDB works out only the branch a row takes; most rows have no extras)
    return (
        f"case when len({extras}) = 0 then len(k) = list_aggregate(ty, 'count')"
        f" else len(k) = list_aggregate(ty, 'count') + len({extras})"
        f" and len({extras}) = len(list_distinct({extras}))"
        f" and list_bool_and(list_transform({extras}, lambda e: {scalar})) end"
    )


def _extra_text(extras: str) -> str:
    """SQL: ``_extra`` as json.dumps writes it (", " and ": ", key order kept)."""
    pair = f"to_json(e) || ': ' || {_at('json_extract')}::varchar"
    return (
        f"case when len({extras}) > 0 then '{{' || array_to_string("
        f"list_transform({extras}, lambda e: {pair}), ', ') || '}}' end"
    )


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_path(dotted: str) -> str:
    return "$." + ".".join(f'"{p}"' for p in dotted.split("."))


def _segment(cols: list[str], t: dict[str, str], x: dict[str, str]) -> str:
    """SQL: the Segment call is a known type whose required fields are certainly there (a
    type needing a field that is not a column never qualifies: the field would be extra)."""
    kinds = [k for k, need in SEGMENT_REQUIRED.items() if all(f in cols for f in need)]
    rule = " ".join(
        f"when {_q(k)} then " + (" and ".join(_present(t[f], x[f]) for f in need) or "true")
        for k, need in SEGMENT_REQUIRED.items()
        if k in kinds
    )
    return f"({t['type']} = 'VARCHAR' and (case {x['type']} {rule} else false end))"


def read_file(writer: _BatchWriter, read: FileRead, window: Window) -> None:
    """Every record of one local JSON-lines file through ``writer``: ordinary lines by DuckDB,
    the rest by the Python path; the batch's parts hold them in file order."""
    import duckdb
    import pyarrow as pa

    from profilecast.sources import ordinary, readers
    from profilecast.sources.readers import line_chunks, split_lines

    con = duckdb.connect()
    if THREADS:
        con.execute(f"set threads = {int(THREADS)}")
    person = bool(writer.forgotten)
    sql = _query(writer.spec, window, person)
    next_line = 1
    if read.path.endswith(".gz"):
        read.offsets_unknown()  # a later read cannot seek in the compressed bytes
        position = 0
    else:
        with open(read.path, "rb") as fh:
            position = len(readers.BOM) if fh.read(3) == readers.BOM else 0
    try:
        for chunk in line_chunks(read.path):
            marked = read.reread_count()
            lines, broken = split_lines(chunk, read.path, next_line)
            numbers = pa.array(range(next_line, next_line + len(lines)), pa.int64())
            con.register("lines", pa.table({"n": numbers, "line": lines}))
            fast = con.sql(sql).to_arrow_table()
            con.unregister("lines")
            records_at = partial(_line_records, read.path, lines, broken, next_line)
            ordinary.take_chunk(writer, read, window, fast, numbers, records_at)
            for n, at in readers.line_starts(read.rereads_since(marked), chunk, lines, next_line):
                if at is None:
                    read.offsets_unknown()
                else:
                    read.locate(n, position + at)
            next_line += len(lines)
            position += len(chunk)
    finally:
        con.close()


def _line_records(path: str, lines: pa.Array, broken: list[bool], first: int, k: int
                  ) -> Iterator[RawRecord]:  # fmt: skip
    """The records of a chunk's ``k``-th line (its first being line ``first``)."""
    from profilecast.sources.readers import parse_line

    return parse_line(path, first + k, lines[k].as_py() + "\n" * broken[k])

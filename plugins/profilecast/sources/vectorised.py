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

from typing import TYPE_CHECKING, Any

from profilecast.sources.catalog import EntitySpec
from profilecast.sources.validation import SEGMENT_REQUIRED, format_timestamp

if TYPE_CHECKING:
    import pyarrow as pa

    from profilecast.sources.landing import _BatchWriter
    from profilecast.sources.window import FileRead, Window

#: DuckDB threads for the checks (a parallel extraction worker sets 1: one core each).
THREADS: int | None = None

# RE2 versions of validation's patterns (RE2 has no lookaround; \x{..} is a code point).
_CONTROL = r"\\u00[01789][0-9a-fA-F]|\\[bf]|[\x{00}-\x{08}\x{0b}\x{0c}\x{0e}-\x{1f}\x{7f}-\x{9f}]"
_EMAIL = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
#: A trailing comma (DuckDB's reader accepts one, Python's does not); may match in strings.
_TRAILING_COMMA = r",\s*[}\]]"
#: A number in DuckDB's text of a nested value that Python may write differently. Both
#: write the shortest round-trip digits, but Python switches to an exponent below 1e-4 and
#: from 1e16 (1e+16), DuckDB at other bounds (100000000000000000000.0, 1e-7); NaN, Infinity
#: and negative zero differ too. Checked on 60,000 random doubles: the others agree. It may
#: match inside strings as well (such lines go to Python).
_NESTED_NUMBER = (
    r"[:,\[]-?[0-9]+(\.[0-9]+)?[eE]|[:,\[]-?[0-9]{16,}\.|[:,\[]-?0\.0000"
    r"|[:,\[]-0(\.0+)?[,}\]]|NaN|Infinity"
)
_ISO = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(\.[0-9]{1,6})?(Z|z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))?"
)
_INTEGER = r"0|-?[1-9][0-9]*"
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
    """SQL columns ``d_<t>`` (the value as Unix digits) and ``g_<t>`` (the parts of an ISO
    text), for :func:`_timestamp`."""
    digits = f"({t} in {_INTS} or {t} = 'VARCHAR') and regexp_full_match({x}, '[0-9]{{1,13}}')"
    names = "['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'z', 'sign', 'oh', 'om']"
    return (
        f"case when {digits} then try_cast({x} as bigint) end as d_{t}, "
        f"case when {t} = 'VARCHAR' then regexp_extract({x}, {_q('^' + _ISO + '$')}, {names}) end"
        f" as g_{t}"
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
        f" when {g}.y <> '' then make_timestamp(epoch_us({civil}) + {frac} - {offset}) end"
    )


def _query(spec: EntitySpec, window: Window, person: bool) -> str:
    """One query over a chunk ``lines(n, line)``: every line with ``ordinary``, and for the
    ordinary ones the converted columns, the record time and where it falls."""
    cols = list(spec.columns)
    names = ", ".join(_q(c) for c in cols)
    paths = ", ".join(_q(f'$."{c}"') for c in cols)
    t = {c: f"t{i}" for i, c in enumerate(cols)}
    x = {c: f"x{i}" for i, c in enumerate(cols)}
    typed = ", ".join(f"ty[{i + 1}] as t{i}, xs[{i + 1}] as x{i}" for i in range(len(cols)))
    checks = ["keys_ok"]
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
        checks.append(
            f"({tc} is null or {tc} in ('NULL', 'VARCHAR', 'BOOLEAN')"
            f" or ({tc} in {_INTS} and regexp_full_match({xc}, {_q(_INTEGER)}))"
            f" or ({tc} in ('OBJECT', 'ARRAY') and not regexp_matches({xc}, {_q(_NESTED_NUMBER)})))"
        )
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
    persons = "".join(
        f", json_type(line, {_q(_json_path(p))}) as pt{k}, line ->> {_q(_json_path(p))} as px{k}"
        + (f", json_type(line, {_q(_json_path(p.rsplit('.', 1)[0]))}) as pp{k}" if "." in p else "")
        for k, p in enumerate(spec.person_fields)
    ) if person else ""  # fmt: skip
    return f"""
        with shaped as (
            select n, line, json_type(line, [{paths}]) as ty,
                json_extract_string(line, [{paths}]) as xs, json_keys(line) as k
            from lines
            where starts_with(line, '{{') and ends_with(line, '}}') and json_valid(line)
              and not regexp_matches(line, {_q(_TRAILING_COMMA + "|" + _CONTROL)})
        ),
        extra as (
            select *, list_filter(k, lambda e: not list_contains([{names}], e)) as extras
            from shaped
        ),
        typed as materialized (
            select n, {"line, " if person else ""}{_keys_ok("extras")} as keys_ok,
                {_extra_text("extras")} as _extra, {typed}
            from extra
        ),
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
    return (
        f"(len(k) = list_aggregate(ty, 'count') + len({extras})"
        f" and (len({extras}) = 0 or (len({extras}) = len(list_distinct({extras}))"
        f" and list_bool_and(list_transform({extras}, lambda e: {scalar})))))"
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
    import pyarrow.compute as pc

    from profilecast.sources import readers
    from profilecast.sources.readers import line_chunks, parse_line, split_lines

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
            fast = _in_file_order(con.sql(sql).to_arrow_table())
            con.unregister("lines")
            if person:
                fast = _without_forgotten(writer, fast)
            taken = _count(writer, read, fast)
            rows: list[dict[str, Any]] = []
            rest = pc.indices_nonzero(pc.invert(pc.is_in(numbers, fast.column("n"))))
            for k in rest.to_pylist():
                n = next_line + k
                text = lines[k].as_py() + ("\n" if broken[k] else "")
                for raw in parse_line(read.path, n, text):
                    row = writer.check(raw, window, read)
                    if row is not None:
                        rows.append(row)
            writer.add_table(_merge(writer, taken, rows, read.path))
            for n, at in readers.line_starts(read.rereads_since(marked), chunk, lines, next_line):
                if at is None:
                    read.offsets_unknown()
                else:
                    read.locate(n, position + at)
            next_line += len(lines)
            position += len(chunk)
    finally:
        con.close()


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

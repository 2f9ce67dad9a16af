"""Reading drop files (CSV, JSON lines, JSON, Parquet; gzip; local or S3) into raw records."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

from profilecast.sources.catalog import EntitySpec, SourceError
from profilecast.sources.connectors.dialects import normalize
from profilecast.storage import list_keys, read_bytes, split_s3_url

FORMATS = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")


@dataclass
class RawRecord:
    source_file: str
    line: int
    record: Any = None
    error: str | None = None
    payload: str | None = None


def _fmt(name: str) -> str | None:
    base = name[:-3] if name.endswith(".gz") else name
    for ext in FORMATS:
        if base.endswith(ext):
            return ext
    return None


def list_drop_files(root: str, source: str, entity: str) -> list[str]:
    """Files for ``<source>/<entity>.<ext>`` or the parts under ``<source>/<entity>/``."""
    if root.startswith("s3://"):
        return _s3_list(root, source, entity)
    base = Path(root) / source
    found: list[Path] = []
    if base.is_dir():
        found += [p for p in base.iterdir() if p.is_file() and p.name.split(".")[0] == entity]
        folder = base / entity
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.is_file()]
    return sorted(str(p) for p in found if _fmt(p.name))


def _s3_list(root: str, source: str, entity: str) -> list[str]:
    bucket, prefix = split_s3_url(root.rstrip("/") + f"/{source}/")
    keys: list[str] = []
    for key in list_keys(f"s3://{bucket}/{prefix}"):
        rel = key[len(prefix) :]
        name = rel.split("/")[0]
        if (name.split(".")[0] == entity or rel.startswith(f"{entity}/")) and _fmt(rel):
            keys.append(f"s3://{bucket}/{key}")
    return sorted(keys)


def _open_bytes(path: str) -> bytes:
    data = read_bytes(path)
    return gzip.decompress(data) if path.endswith(".gz") else data


def _open_text(path: str) -> io.TextIOBase:
    if not path.startswith("s3://") and not path.endswith(".gz"):
        return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    if not path.startswith("s3://"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(io.BytesIO(_open_bytes(path)), encoding="utf-8-sig", newline="")


def read_records(
    path: str, spec: EntitySpec, lines: Container[int] | None = None
) -> Iterator[RawRecord]:
    """Yield every record of one file, with a parse error instead of a record when broken.
    ``lines``: only the records on these lines (line numbers as reported), the others are
    not parsed."""
    if lines is not None:
        yield from (r for r in _read_records(path, spec, lines) if r.line in lines)
    else:
        yield from _read_records(path, spec, None)


def _read_records(path: str, spec: EntitySpec, lines: Container[int] | None) -> Iterator[RawRecord]:
    fmt = _fmt(path)
    if fmt == ".csv":
        yield from _read_csv(path, spec)
    elif fmt in (".jsonl", ".ndjson"):
        with _open_text(path) as fh:
            for n, line in enumerate(fh, start=1):
                if lines is None or n in lines:
                    yield from parse_line(path, n, line)
    elif fmt == ".json":
        try:
            obj = json.loads(_open_bytes(path).decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(obj, dict):
            for key in ("data", "records", "results"):  # API list / sObject tree / HubSpot
                if isinstance(obj.get(key), list):
                    obj = obj[key]
                    break
        items = obj if isinstance(obj, list) else [obj]
        for n, item in enumerate(items, start=1):
            yield from _explode(path, n, item, None)
    elif fmt == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(_open_bytes(path)))
        for n, item in enumerate(table.to_pylist(), start=1):
            yield RawRecord(path, n, record=item)


#: The UTF-8 byte-order mark, which the readers drop from a file's start.
BOM = b"\xef\xbb\xbf"


def seekable(path: str, lines: Mapping[int, int | None]) -> bool:
    """Whether ``lines`` (line number -> byte offset) can be read by seeking: a local,
    uncompressed JSON-lines file whose every line's offset is known."""
    return (
        not path.startswith("s3://")
        and _fmt(path) in (".jsonl", ".ndjson")
        and not path.endswith(".gz")
        and all(at is not None for at in lines.values())
    )


def read_lines_at(path: str, offsets: Mapping[int, int]) -> Iterator[RawRecord]:
    """The records on some lines of a local JSON-lines file (line number -> where the line
    starts, in bytes), in line order; each line is read at its offset, nothing else is.
    The offsets come from a read of the same unchanged file that split it at ``\\n`` only."""
    with open(path, "rb") as fh:
        for n in sorted(offsets):
            fh.seek(offsets[n])
            data = fh.readline()
            if offsets[n] == 0:
                data = data.removeprefix(BOM)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SourceError(f"{path}: not UTF-8 text at line {n}") from exc
            yield from parse_line(path, n, text)


def parse_line(path: str, n: int, line: str) -> Iterator[RawRecord]:
    """The records of one JSON line (none when blank; a parse error when broken)."""
    if not line.strip():
        return
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        yield RawRecord(path, n, error=f"invalid JSON: {exc.msg}", payload=line[:10000])
        return
    yield from _explode(path, n, obj, line)


def _explode(path: str, n: int, obj: Any, line: str | None) -> Iterator[RawRecord]:
    """A Segment batch envelope ``{"batch": [...]}`` holds several events."""
    if isinstance(obj, dict) and isinstance(obj.get("batch"), list) and "type" not in obj:
        shared = {k: v for k, v in obj.items() if k != "batch"}
        for item in obj["batch"]:
            if isinstance(item, dict):
                merged = {**{k: v for k, v in shared.items() if k in ("context",)}, **item}
                yield RawRecord(path, n, record=merged)
            else:
                yield RawRecord(path, n, record=item)
        return
    yield RawRecord(path, n, record=obj, payload=line)


def _read_csv(path: str, spec: EntitySpec) -> Iterator[RawRecord]:
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = csv_header(reader, path, spec)
        if header is not None:
            yield from csv_records(reader, path, header)


def csv_records(reader: Any, path: str, header: list[str]) -> Iterator[RawRecord]:
    """The records of the rows ``reader`` has left (after the header)."""
    for values in reader:
        raw = csv_record(path, header, values, reader.line_num)
        if raw is not None:
            yield raw


def blank_row(values: list[str]) -> bool:
    """A row of nothing but blanks: no record."""
    return not (values and (values[0].strip() or any(v.strip() for v in values)))


def csv_header(reader: Any, path: str, spec: EntitySpec) -> list[str] | None:
    """The CSV file's header, its names stripped (None: an empty file); SourceError when a
    required column is missing."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return None
    mapped = normalize(spec.dialect, {h: h for h in header})
    missing = [c for c in spec.required_columns if c not in header and c not in mapped]
    if missing:
        raise SourceError(
            f"{path}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header)})"
        )
    return header


def csv_record(path: str, header: list[str], values: list[str], line: int) -> RawRecord | None:
    """One CSV row as a record (None: a blank row; a parse error when its field count is
    not the header's)."""
    if blank_row(values):
        return None
    if len(values) != len(header):
        return RawRecord(
            path,
            line,
            error=f"row has {len(values)} fields, header has {len(header)}",
            payload=json.dumps(values, ensure_ascii=False),
        )
    return RawRecord(path, line, record=dict(zip(header, values, strict=True)))


#: Bytes line_chunks reads at once; a chunk ends at a line break.
CHUNK_BYTES = 32 * 2**20


def line_chunks(path: str) -> Iterator[bytes]:
    """The file's bytes in pieces that each end at a line break (the last one may not);
    the UTF-8 byte-order mark is dropped, as the Python reader's utf-8-sig does."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        carry, first = b"", True
        while True:
            data = fh.read(CHUNK_BYTES)
            if first:
                data, first = data.removeprefix(BOM), False
            if not data:
                if carry:
                    yield carry
                return
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            yield data[: cut + 1]


def split_lines(chunk: bytes, path: str, first_line: int) -> tuple[pa.Array, list[bool]]:
    """The chunk's lines (without their breaks) as a string array, and whether each had a
    break. Lines break as Python's universal newlines do: at \\r\\n, \\r and \\n."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pa.array([chunk], pa.binary())
    if b"\r" in chunk:
        parts = pc.split_pattern_regex(whole.cast(pa.large_binary()), r"\r\n|\r|\n").flatten()
    else:
        parts = pc.split_pattern(whole, b"\n").flatten()
    ends = chunk.endswith((b"\n", b"\r"))
    if ends:  # the empty piece after the last break
        parts = parts.slice(0, len(parts) - 1)
    try:
        lines = parts.cast(pa.large_string())
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{path}: not UTF-8 text at or after line {first_line}") from exc
    broken = [True] * len(lines)
    if not ends and broken:
        broken[-1] = False
    return lines, broken


def line_starts(
    wanted: list[int], chunk: bytes, lines: pa.Array, first: int
) -> list[tuple[int, int | None]]:
    """Where each wanted line of a chunk (split by :func:`split_lines`, its first line being
    line ``first``) starts, in bytes from the chunk's start. None for every line of a chunk
    with a ``\\r`` break: a read that seeks splits lines at ``\\n`` only."""
    import numpy as np
    import pyarrow.compute as pc

    if not wanted or b"\r" in chunk:
        return [(n, None) for n in wanted]
    ends = np.cumsum(pc.binary_length(lines).to_numpy(zero_copy_only=False) + 1)
    return [(n, int(ends[n - first - 1]) if n > first else 0) for n in wanted]

"""The vectorised extraction path (sources/vectorised.py) lands exactly what the Python path
lands: the same rows in the same order, the same quarantine, counts and file ledger, on files
built to hit every rule it must leave to Python."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from profilecast.sources import History
from profilecast.sources.catalog import spec_for
from profilecast.sources.landing import BatchResult, _BatchWriter, read_file
from profilecast.sources.window import FileRead, Window, file_fingerprint

WEB = spec_for("web", "events")
ESP = spec_for("esp", "events")
WINDOW = Window(datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC))
ERASED = "gone.person@example.com"


def _web(k: int, **over) -> dict:
    rec = {
        "type": "page", "messageId": f"ajs-{k}", "anonymousId": f"anon-{k % 7}",
        "userId": str(1000 + k % 5), "timestamp": "2026-10-30T13:19:43.918Z",
        "receivedAt": "2026-10-30T13:19:44.071Z",
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.7"},
        "properties": {"path": "/c/shoes", "url": "https://shop.example.com/c/shoes",
                       "price": 89.0, "tags": ["a", "b"]},
    }  # fmt: skip
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not ...}


#: Lines the SQL must leave to Python, or convert exactly; each is a case of its own.
WEB_CASES = [
    json.dumps(_web(1)),
    json.dumps(_web(2, type="track", event="Order Completed",
                    properties={"revenue": 129.99, "products": [{"price": 1e20, "q": 1}]})),  # fmt: skip
    json.dumps(_web(3, properties={"tiny": 1e-7, "neg": -0.0, "big": 12345678901234567890})),
    json.dumps(_web(4, properties={"x": float("nan")})),
    json.dumps(_web(5, timestamp="2026-10-30T13:19:43+05:30", receivedAt="2026-10-30 23:59:59")),
    json.dumps(_web(6, timestamp="2026-10-30T13:19:43.9z", receivedAt=...)),
    json.dumps(_web(7, timestamp="2026-10-30T13:19:43.1234567Z")),
    json.dumps(_web(8, timestamp="2026-10-30", receivedAt=...)),
    json.dumps(_web(9, timestamp="2026-10-30T24:00:00Z", receivedAt=...)),
    json.dumps(_web(10, timestamp="2026-02-30T10:00:00Z")),
    json.dumps(_web(11, timestamp=1793361600, receivedAt=1793361600123)),
    json.dumps(_web(12, timestamp="1793361600", receivedAt=...)),
    json.dumps(_web(13, timestamp=-5, receivedAt=...)),
    json.dumps(_web(14, timestamp=True, receivedAt=...)),
    json.dumps(_web(15, timestamp=1793361600.5, receivedAt=...)),
    json.dumps(_web(16, timestamp="2026-10-31T00:00:00Z", receivedAt="2026-10-31T00:00:01Z")),
    json.dumps(_web(17, timestamp="2026-10-29T23:59:59.999999Z", receivedAt=...)),
    json.dumps(_web(18, messageId=...)),
    json.dumps(_web(19, messageId="")),
    json.dumps(_web(20, messageId=0)),
    json.dumps(_web(21, userId=0, anonymousId=...)),
    json.dumps(_web(22, userId=False, anonymousId="   ")),
    json.dumps(_web(23, userId=..., anonymousId="\u00a0")),
    json.dumps(_web(24, userId=42)),
    json.dumps(_web(25, type="track")),
    json.dumps(_web(26, type="teleport")),
    json.dumps(_web(27, type=...)),
    json.dumps(_web(28, type=..., action="page")),
    json.dumps(_web(29, type="group", groupId="g1")),
    json.dumps(_web(30, surprise="extra key")),
    json.dumps(_web(50, object="event", livemode=False, seq=-3, gone=None, quote='a "b" \\ é')),
    json.dumps(_web(51, nested_extra={"a": 1})),
    json.dumps(_web(52, **{"odd key": "x", "dup": 1})),
    json.dumps(_web(53, ratio=0.5, zero=-0)),
    json.dumps(_web(54, event_id="sp-2")),
    '{"type":"page","messageId":"ajs-55","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z","x":1,"x":2}',
    '{"type":"page","messageId":"ajs-56","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z","x":-0}',
    json.dumps(_web(31, name="bell \u0007 here")),
    json.dumps(_web(32, name="del \x7f here"), ensure_ascii=False),
    json.dumps(_web(33, name="back\\bslash \b")),
    json.dumps(_web(34, name="caf\u00e9 \U0001f600 line\u2028sep \"quoted\" tab\t"), ensure_ascii=False),
    json.dumps(_web(35, name="caf\u00e9 \U0001f600 \"quoted\" new\nline")),
    json.dumps(_web(36, traits={"email": ERASED})),
    json.dumps(_web(37, traits=json.dumps({"email": ERASED}))),
    json.dumps(_web(38, context={"traits": {"email": ERASED.upper()}})),
    json.dumps(_web(39, anonymousId=ERASED)),
    json.dumps(_web(40, traits={"email": "kept@example.com"}, properties={})),
    json.dumps(_web(41, properties=[], traits=None, name=True)),
    json.dumps({"batch": [_web(42), _web(43)], "context": {"ip": "1"}}),
    json.dumps({"event_id": "sp-1", "collector_tstamp": "2026-10-30 10:00:00", "domain_userid": "d1",
                "event": "page_view", "page_url": "https://x"}),  # fmt: skip
    '{"type":"page","messageId":"ajs-44","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z",}',
    '{"type":"page","messageId":"ajs-45","anonymousId":"a","anonymousId":"b","timestamp":"2026-10-30T01:00:00Z"}',
    '{"type":"page","messageId":"ajs-46","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z"} ',
    '  {"type":"page","messageId":"ajs-47","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z"}',
    '{"type":"page","messageId":"ajs-48","anonymousId":"a","timestamp":"2026-10-30T01:00:00Z","properties":{"n":-0}}',
    '{"type":"page","messageId":"ajs-49","anonymousId":"a","timestamp":"0999-10-30T01:00:00Z"}',
    "{oops",
    "",
    "   ",
    "[1, 2]",
    '"just a string"',
    "null",
]  # fmt: skip

ESP_CASES = [
    {
        "email": "ann@example.com",
        "event": "open",
        "timestamp": 1793361600,
        "sg_event_id": "e1",
        "category": ["newsletter", "promo"],
        "sg_message_id": "m1.filter",
    },  # fmt: skip
    {
        "email": "Ann.B+tag@Example.co.uk",
        "event": "click",
        "timestamp": "1793361601",
        "sg_event_id": "e2",
        "url": "https://x/y?a=1",
    },  # fmt: skip
    {"email": " ann@example.com", "event": "open", "timestamp": 1793361602, "sg_event_id": "e3"},
    {"email": "not an email", "event": "open", "timestamp": 1793361603, "sg_event_id": "e4"},
    {"email": "", "event": "open", "timestamp": 1793361604, "sg_event_id": "e5"},
    {"email": "a" * 250 + "@x.co", "event": "open", "timestamp": 1793361605, "sg_event_id": "e6"},
    {"email": 5, "event": "open", "timestamp": 1793361606, "sg_event_id": "e7"},
    {"email": "b@example.com", "event": "open", "timestamp": 1793361607000, "sg_event_id": "e8"},
    {"email": "c@example.com", "event": "open", "timestamp": 1793361607, "asm_group_id": 0},
    {
        "email": "d@example.com",
        "event": "bounce",
        "timestamp": 1793361608,
        "sg_event_id": "e9",
        "reason": "550 mailbox \\u0000 full",
        "type": "bounce",
        "sg_machine_open": False,
    },  # fmt: skip
    {"email": ERASED, "event": "open", "timestamp": 1793361609, "sg_event_id": "e10"},
    {"email": "e@example.com", "event": "open", "timestamp": 100000000000, "sg_event_id": "e11"},
]


def _random_web(rng: random.Random, k: int) -> str:
    """An ordinary event, or one with a random defect from the cases above."""
    if rng.random() < 0.8:
        day = datetime(2026, 10, 29, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 86400))
        stamp = day.isoformat(timespec=rng.choice(["seconds", "milliseconds", "microseconds"]))
        return json.dumps(_web(100 + k, timestamp=stamp.replace("+00:00", rng.choice(["Z", "+00:00"])),
                               properties={"price": round(rng.uniform(0, 500), rng.randrange(4))}))  # fmt: skip
    return rng.choice(WEB_CASES)


def _land(tmp_path: Path, spec, path: Path, vectorised: str, monkeypatch, gone) -> tuple:
    monkeypatch.setenv("PROFILECAST_EXTRACT_VECTORISED", vectorised)
    out = tmp_path / f"out-{spec.entity}-{vectorised}-{path.name}"
    out.mkdir()
    result = BatchResult("b1", spec.source, spec.entity, str(out))
    writer = _BatchWriter(spec, History(), result, out, gone)
    read = FileRead(str(path), file_fingerprint(str(path)), "full")
    read_file(writer, read, WINDOW, None)
    writer.finish()
    rows = [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    quarantine = pq.read_table(out / "quarantine.parquet").to_pylist()
    return result.as_dict(), read.as_dict(), rows, quarantine


@pytest.fixture
def gone(tmp_path):
    from profilecast.consent.erasure import forgotten, request_erasure

    home = tmp_path / "home"
    request_erasure(ERASED, "test", home)
    return forgotten(home)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_every_rule_lands_the_same_as_the_python_path(tmp_path, monkeypatch, gone, newline):
    rng = random.Random(7)
    web_lines = WEB_CASES + [_random_web(rng, k) for k in range(3000)]
    web = tmp_path / "events.jsonl"
    web.write_bytes(b"\xef\xbb\xbf" + newline.join(web_lines).encode())  # no final break
    esp = tmp_path / "esp.jsonl"
    esp.write_text("".join(json.dumps(r) + newline for r in ESP_CASES * 50))
    for spec, path in ((WEB, web), (ESP, esp)):
        python = _land(tmp_path, spec, path, "false", monkeypatch, gone)
        fast = _land(tmp_path, spec, path, "true", monkeypatch, gone)
        assert fast[0] == {**python[0], "landing_dir": fast[0]["landing_dir"]}
        # The same ledger row, but the fast path also knows where the lines to reread start
        # (not with \r\n breaks: a read that seeks splits at \n only).
        offsets = fast[1].pop("reread_offsets")
        assert python[1].pop("reread_offsets") is None
        assert (offsets is None) == (newline == "\r\n")
        assert fast[1] == python[1]
        assert fast[2] == python[2]
        assert fast[3] == python[3]
        result = python[0]
        assert (
            result["rows_read"]
            == result["rows_loaded"] + result["rows_quarantined"] + result["rows_erased"]
        )
        assert result["rows_loaded"] > 0 and result["rows_quarantined"] > 0
        assert result["rows_erased"] > 0 and result["rows_outside_window"] > 0


def test_a_rest_read_seeks_to_the_lines_kept_for_later(tmp_path, monkeypatch, gone):
    """The first read keeps, for each line dated after its window (or undated, or broken),
    where the line starts in bytes; the next interval's "rest" read seeks to those lines
    and reads nothing else of the file, landing what parsing them from a scan lands."""
    from profilecast.sources import readers
    from profilecast.sources.window import rest_lines

    rng = random.Random(11)
    body = WEB_CASES + [_random_web(rng, k) for k in range(3000)]
    body[5] = json.dumps(_web(9001, name="caf\u00e9 \U0001f600"), ensure_ascii=False)
    body[6] = json.dumps(_web(9002, timestamp="2026-11-01T08:00:00Z", name="\u00e9t\u00e9"),
                         ensure_ascii=False)  # fmt: skip
    web = tmp_path / "events.jsonl"
    web.write_bytes(b"\xef\xbb\xbf" + "\n".join(body).encode() + b"\n")
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64 * 1024)  # several chunks
    first = _land(tmp_path, WEB, web, "true", monkeypatch, gone)[1]
    lines = [int(n) for n in first["reread_lines"].split(",")]
    offsets = [int(n) for n in first["reread_offsets"].split(",")]
    assert len(lines) == len(offsets) > 100
    data = web.read_bytes()
    for n, at in zip(lines, offsets, strict=True):
        expected = body[n - 1].encode()
        assert data[at : at + len(expected)] == expected and data[at - 1 : at] in (b"\n", b"\xbf")

    history = History(
        batches={"b1": {"window_end": "2026-10-31T00:00:00Z"}},
        files=[{**first, "batch_id": "b1"}],
    )
    planned = rest_lines(str(web), first["fingerprint"], history, "b2", WINDOW.end)
    assert planned == dict(zip(lines, offsets, strict=True))
    nan = {**first, "batch_id": "b1", "reread_offsets": float("nan")}
    assert rest_lines(str(web), first["fingerprint"], replace_files(history, nan), "b2",
                      WINDOW.end) == dict.fromkeys(lines)  # fmt: skip

    later = Window(WINDOW.end, WINDOW.end + timedelta(days=2))

    def rest(planned: dict, name: str) -> tuple:
        out = tmp_path / name
        out.mkdir()
        result = BatchResult("b2", WEB.source, WEB.entity, str(out))
        writer = _BatchWriter(WEB, History(), result, out, gone)
        read = FileRead(str(web), first["fingerprint"], "rest")
        read_file(writer, read, later, planned)
        writer.finish()
        rows = [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
        return (
            result.as_dict(),
            read.as_dict(),
            rows,
            pq.read_table(out / "quarantine.parquet").to_pylist(),
        )

    scanned = rest(dict.fromkeys(lines), "scan")

    def no_scan(*args, **kwargs):
        raise AssertionError("the rest read scanned the file")

    monkeypatch.setattr(readers, "_read_records", no_scan)
    sought = rest(planned, "seek")
    assert sought[0] == {**scanned[0], "landing_dir": sought[0]["landing_dir"]}
    assert sought[2] == scanned[2] and sought[3] == scanned[3]
    assert any(r["messageId"] == "ajs-9002" for r in sought[2])
    assert sought[0]["rows_loaded"] > 50 and sought[0]["rows_quarantined"] > 0
    # The lines still undated or later are kept for the next read, with their offsets.
    assert sought[1]["reread_lines"] == scanned[1]["reread_lines"] != ""
    kept = dict(zip(lines, offsets, strict=True))
    again = [int(n) for n in sought[1]["reread_lines"].split(",")]
    assert sought[1]["reread_offsets"] == ",".join(str(kept[n]) for n in again)


def replace_files(history: History, *files: dict) -> History:
    return History(history.batches, list(files), history.quarantined)


def test_most_of_a_generated_file_takes_the_vectorised_path(tmp_path, sample_dir):
    """The generated world's events are ordinary: the SQL takes all but the broken ones."""
    import duckdb
    import pyarrow as pa
    from profilecast.sources import readers, vectorised

    for spec, path in (
        (WEB, sample_dir / "web" / "events.jsonl"),
        (ESP, sample_dir / "esp" / "events.jsonl"),
    ):
        sql = vectorised._query(spec, Window(None, WINDOW.end), person=False)
        con = duckdb.connect()
        total = taken = 0
        for chunk in readers.line_chunks(str(path)):
            lines, _ = readers.split_lines(chunk, str(path), 1)
            con.register(
                "lines", pa.table({"n": pa.array(range(len(lines)), pa.int64()), "line": lines})
            )
            taken += len(con.sql(sql).to_arrow_table())
            total += len(lines)
        assert total > 1000 and taken >= 0.99 * total, (spec.table, taken, total)


def test_nested_values_keep_their_key_order_in_compact_json():
    from profilecast.sources.validation import to_text

    assert to_text({"b": 1, "a": [1.5, "é"]}) == '{"b":1,"a":[1.5,"é"]}'


def test_rows_come_back_in_line_order_even_when_the_query_gives_them_out_of_order():
    import pyarrow as pa
    from profilecast.sources.ordinary import _in_file_order

    kept = pa.table({"n": [1, 2, 5], "x": ["a", "b", "c"]})
    assert _in_file_order(kept) is kept  # already in order: returned as it is
    shuffled = pa.table({"n": [5, 1, 2], "x": ["c", "a", "b"]})
    assert _in_file_order(shuffled).to_pydict() == {"n": [1, 2, 5], "x": ["a", "b", "c"]}
    assert len(_in_file_order(kept.slice(0, 0))) == 0


CONTACTS = spec_for("crm", "contacts")
CSV_HEADER = list(CONTACTS.columns) + ["lead_source"]


def _contact(k: int, **over) -> dict:
    rec = dict.fromkeys(CSV_HEADER, "")
    rec.update(contact_id=str(1000 + k), email=f"person.{k}@example.com", first_name="Ann",
               last_name="Lee", company="Acme", birth_date="1980-02-21", country="US",
               created_at="2026-10-29T07:17:35.422Z", updated_at="2026-10-30T09:00:00Z",
               email_opt_in="true", email_opt_in_at="2026-10-29T07:17:35.422Z",
               lead_source="Web")  # fmt: skip
    rec.update(over)
    return rec


#: Rows the SQL must leave to Python, or convert exactly.
CSV_CASES = [
    _contact(1, email="not-an-email"),  # cleaned: loads without the address, flagged
    _contact(2, contact_id="", email="broken@"),  # nothing else identifies it: quarantined
    _contact(3, contact_id=""),  # the id is derived
    _contact(4, first_name="Bad\x07Bell"),  # control character
    _contact(5, lead_source='say "hi" \\ there'),  # an extra value JSON must escape
    _contact(6, birth_date="1990-02-30"),
    _contact(7, birth_date="19900101"),
    _contact(8, birth_date=" 1990-01-01"),
    _contact(9, birth_date="1990-01-01T00:00"),
    _contact(10, birth_date="0999-01-01"),
    _contact(11, updated_at="2026-13-01T00:00:00Z"),
    _contact(12, updated_at="1761814800", created_at="1761814800000"),
    _contact(13, updated_at="2026-10-30T12:00:00+02:00", created_at="2026-10-29 08:00:00z"),
    _contact(14, email=ERASED),
    _contact(15, updated_at="2026-10-31T00:00:00Z"),  # after the window: read again later
    _contact(16, updated_at="2026-10-01T00:00:00Z", created_at="2026-10-01T00:00:00Z"),
    _contact(17, street="1 Long Rd\nFlat 2", city="Kraków \u00e9"),  # a field over two lines
    _contact(18, updated_at="", created_at=""),  # undated
    _contact(19, updated_at=" 2026-10-30T09:00:00Z"),
    _contact(20, email=" padded@example.com "),
    _contact(21, email_opt_in_at="2026-10-30T09:00:00.1234567Z"),
    _contact(22, contact_id="   ", email=""),  # no identifier
    _contact(23, phone="\u2028sep"),
]


def _contacts_csv(path: Path, header: list[str], rows: list[dict], extra_lines=()) -> None:
    import csv
    import io

    buf = io.StringIO(newline="")
    out = csv.writer(buf)
    out.writerow(header)
    for k, row in enumerate(rows):
        out.writerow([row.get(h, "") for h in header])
        if k == 10:
            for line in extra_lines:
                buf.write(line)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


@pytest.mark.parametrize(
    "header",
    [CSV_HEADER, [h for h in CSV_HEADER if h != "phone"], ["property_email", *CSV_HEADER[2:]],
     [*CSV_HEADER, "lead_source"]],
    ids=["ours", "a-column-missing", "hubspot-export", "a-name-twice"],
)  # fmt: skip
def test_a_csv_file_lands_the_same_as_the_python_path(tmp_path, monkeypatch, gone, header):
    """Every rule above, across several chunks, and headers the SQL must leave to Python."""
    from profilecast.sources import vectorised_csv

    monkeypatch.setattr(vectorised_csv, "CHUNK_ROWS", 40)
    rng = random.Random(3)
    rows = CSV_CASES + [
        _contact(100 + k, updated_at=(datetime(2026, 10, 29, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(3 * 86400))).isoformat(timespec="milliseconds"))
        for k in range(200)
    ]  # fmt: skip
    rng.shuffle(rows)
    path = tmp_path / "contacts.csv"
    _contacts_csv(path, header, rows, extra_lines=["\n", "1,2,3\n", " , ,\n"])
    python = _land(tmp_path, CONTACTS, path, "false", monkeypatch, gone)
    fast = _land(tmp_path, CONTACTS, path, "true", monkeypatch, gone)
    assert fast[0] == {**python[0], "landing_dir": fast[0]["landing_dir"]}
    assert fast[1] == python[1]
    assert fast[2] == python[2]
    assert fast[3] == python[3]
    result = python[0]
    assert result["rows_read"] == (
        result["rows_loaded"] + result["rows_quarantined"] + result["rows_erased"]
    )
    assert result["rows_loaded"] + result["rows_quarantined"] > 50
    if header == CSV_HEADER:
        assert result["rows_loaded"] > 50 and result["rows_quarantined"] > 0
        assert result["rows_erased"] == 1 and result["rows_outside_window"] > 0
        flags = {r["_flags"] for r in python[2]}
        assert {"email:invalid_email", "birth_date:invalid_date"} <= {
            f for fs in flags if fs for f in fs.split(",")
        }


def test_most_of_a_generated_csv_takes_the_vectorised_path(tmp_path, sample_dir):
    """The generated world's contacts are ordinary: the SQL takes all but the broken ones."""
    import csv

    import duckdb
    from profilecast.sources import vectorised, vectorised_csv
    from profilecast.sources.readers import _open_text, csv_header

    path = str(sample_dir / "crm" / "contacts.csv")
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = csv_header(reader, path, CONTACTS)
        assert vectorised_csv.ordinary_header(CONTACTS, header)
        typed = vectorised_csv.typed_ctes(CONTACTS, header, person=False)
        sql = vectorised._query(CONTACTS, Window(None, WINDOW.end), False, typed)
        con = duckdb.connect()
        total = taken = 0
        for numbers, rows in vectorised_csv._chunks(reader):
            con.register("rows", vectorised_csv._rows_table(numbers, rows, len(header)))
            taken += len(con.sql(sql).to_arrow_table())
            total += len(rows)
    assert total > 300 and taken >= 0.97 * total, (taken, total)

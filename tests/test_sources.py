from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profilecast import sources
from profilecast.interval import Interval
from profilecast.sources import (
    ENTITIES,
    History,
    SourceError,
    choose_window,
    validate_record,
)
from profilecast.sources.catalog import SOURCE_NAMES
from profilecast.warehouse import connect

CONTACTS = next(s for s in ENTITIES if s.table == "crm__contacts")
WEB = next(s for s in ENTITIES if s.table == "web__events")
START = datetime(2026, 10, 31, tzinfo=UTC)
END = START + timedelta(days=1)


def test_record_without_any_identifier_is_quarantined():
    v = validate_record(CONTACTS, {"contact_id": "", "email": " ", "first_name": "Ann"})
    assert v.row is None and "no identifier" in v.reason


def test_non_object_is_quarantined():
    assert validate_record(WEB, ["a", "list"]).reason.startswith("not an object")


def test_bad_optional_field_is_nulled_and_flagged_but_record_kept():
    v = validate_record(
        CONTACTS, {"contact_id": "1", "email": "a@b.co", "birth_date": "1985-02-30"}
    )
    assert v.row["birth_date"] is None
    assert "birth_date:invalid_date" in v.row["_flags"]


def test_new_columns_are_kept_in_extra():
    v = validate_record(
        CONTACTS, {"contact_id": "1", "email": "a@b.co", "favourite_colour": "teal"}
    )
    assert json.loads(v.row["_extra"]) == {"favourite_colour": "teal"}


def test_timestamps_normalised_to_utc():
    v = validate_record(
        WEB, {"type": "page", "anonymousId": "x", "timestamp": "2026-10-31T10:00:00+02:00"}
    )
    assert v.row["timestamp"].startswith("2026-10-31 08:00:00")
    v = validate_record(WEB, {"type": "page", "anonymousId": "x", "timestamp": 1793440800})
    assert v.record_ts == datetime.fromtimestamp(1793440800, tz=UTC)


def test_windows():
    iv = Interval(START, END)
    assert choose_window(History(), "b2", iv, 3).start is None  # first load: all history
    earlier = History(batches={"b1": {"window_start": None}})
    w = choose_window(earlier, "b2", iv, 3)
    assert w.start == START - timedelta(days=3) and w.end == END
    # A rerun keeps the window its batch had (so rerunning the first interval reloads history).
    assert choose_window(History(batches={"b2": {"window_start": None}, **earlier.batches}),
                         "b2", iv, 3).start is None  # fmt: skip


def test_csv_as_people_export_it(tmp_path, pc_env):
    drop = tmp_path / "drop" / "crm"
    drop.mkdir(parents=True)
    content = (
        "\ufeffcontact_id,email,first_name,last_name,city,updated_at,shoe_size\r\n"
        '1,zoe@example.com,Zoë,"Smith, Jr.","Line one\nLine two",2026-10-31T08:00:00Z,42\r\n'
        "2,li@example.com,李,小龙,東京,2026-10-31T09:00:00Z,40\r\n"
        "3,emoji@example.com,🙂,Face,Paris,2026-10-31T09:30:00Z\r\n"
    )
    (drop / "contacts.csv").write_text(content, encoding="utf-8", newline="")
    result = sources.extract_entity(
        pc_env, CONTACTS, Interval(START, END), files=[str(drop / "contacts.csv")]
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    import pyarrow.parquet as pq

    rows = pq.read_table(f"{result.landing_dir}/part-00000.parquet").to_pylist()
    assert rows[0]["first_name"] == "Zoë" and rows[0]["last_name"] == "Smith, Jr."
    assert rows[0]["city"] == "Line one\nLine two"
    assert json.loads(rows[0]["_extra"]) == {"shoe_size": "42"}
    assert rows[1]["first_name"] == "李"
    q = pq.read_table(f"{result.landing_dir}/quarantine.parquet").to_pylist()
    assert "fields" in q[0]["reason"] and "emoji" in q[0]["raw_payload"]


def test_missing_required_column_fails_with_file_and_column(tmp_path, pc_env):
    path = tmp_path / "contacts.csv"
    path.write_text("id,first_name\n1,Ann\n")
    with pytest.raises(SourceError) as exc:
        sources.extract_entity(pc_env, CONTACTS, Interval(START, END), files=[str(path)])
    assert str(path) in str(exc.value) and "contact_id" in str(exc.value)


def test_gzip_and_segment_batch_envelope(tmp_path, pc_env):
    import gzip

    path = tmp_path / "events.jsonl.gz"
    batch = {"batch": [{"type": "track", "event": "A", "userId": "u1", "timestamp": "2026-10-31T01:00:00Z"},
                       {"type": "page", "anonymousId": "a1", "timestamp": "2026-10-31T02:00:00Z"},
                       {"type": "track", "event": "no id", "timestamp": "2026-10-31T02:00:00Z"}]}  # fmt: skip
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(batch) + "\n{broken\n")
    r = sources.extract_entity(pc_env, WEB, Interval(START, END), files=[str(path)])
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (4, 2, 2)


def test_load_accounts_for_every_row_and_reruns_replace(pc_env):
    def run_once():
        manifests = []
        for src in SOURCE_NAMES:
            with connect(pc_env, read_only=True) as wh:
                prev = sources.load_history(wh)
            manifests += sources.extract_source(pc_env, src, Interval(START, END), prev)
        with connect(pc_env) as wh:
            sources.ensure_raw_tables(wh)
            sources.load_raw(wh, manifests, END)

    run_once()
    with connect(pc_env, read_only=True) as wh:
        batches = wh.df("select * from load_batches")
        raw_counts = {
            s.table: wh.query(f"select count(*) from raw.{s.table}")[0][0] for s in ENTITIES
        }
        q_total = wh.query("select count(*) from quarantine")[0][0]
    assert len(batches) == len(ENTITIES)
    assert (batches.rows_read == batches.rows_loaded + batches.rows_quarantined).all()
    assert batches.rows_quarantined.sum() == q_total > 0
    for _, b in batches.iterrows():
        assert raw_counts[f"{b.source}__{b.entity}"] == b.rows_loaded
    run_once()  # same interval again: replaced, not duplicated
    with connect(pc_env, read_only=True) as wh:
        again = {s.table: wh.query(f"select count(*) from raw.{s.table}")[0][0] for s in ENTITIES}
        assert wh.query("select count(*) from quarantine")[0][0] == q_total
    assert again == raw_counts


def test_missing_required_source_fails(tmp_path, pc_env, monkeypatch):
    from dataclasses import replace

    empty = replace(pc_env, sources=str(tmp_path / "nothing"))
    assert (
        sources.extract_source(empty, "web", Interval(START, END), History())[0]["rows_read"] == 0
    )
    with pytest.raises(SourceError, match="crm"):
        sources.extract_source(empty, "crm", Interval(START, END), History())


def test_files_read_in_parallel_land_what_one_process_lands(tmp_path, pc_env, sample_dir,
                                                            monkeypatch):  # fmt: skip
    """An entity's drop files go to worker processes when there are several and they are
    large: the counts, the landed rows, the quarantine and the file ledger are the same as
    one process reading them in turn."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    lines = (sample_dir / "web" / "events.jsonl").read_text().splitlines(keepends=True)
    drop = tmp_path / "web-events"
    drop.mkdir()
    third = len(lines) // 3
    files = []
    for k, part in enumerate((lines[:third], lines[third : 2 * third], lines[2 * third :])):
        path = drop / f"part-{k}.jsonl"
        path.write_text("".join(part) + ("{oops\n" if k == 1 else ""))
        files.append(str(path))
    landed = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("PROFILECAST_EXTRACT_WORKERS", workers)
        monkeypatch.setenv("PROFILECAST_EXTRACT_PARALLEL_MIN_MB", "0")
        settings = replace(pc_env, home=tmp_path / f"home-{workers}")
        result = sources.extract_entity(settings, WEB, Interval(START, END), files=files)
        parts = sorted(p for p in Path(result.landing_dir).glob("part-*.parquet"))
        rows = [r for p in parts for r in pq.read_table(p).to_pylist()]
        quarantine = pq.read_table(f"{result.landing_dir}/quarantine.parquet").to_pylist()
        landed[workers] = (result, [p.name for p in parts], rows, quarantine)
    one, two = landed["1"], landed["2"]
    assert one[1] == ["part-00000.parquet"] and two[1] == [
        "part-00000-00000.parquet", "part-00001-00000.parquet", "part-00002-00000.parquet"]  # fmt: skip
    counts = ("rows_read", "rows_loaded", "rows_quarantined", "rows_outside_window", "rows_erased")
    assert [getattr(one[0], c) for c in counts] == [getattr(two[0], c) for c in counts]
    assert one[0].rows_read + one[0].rows_outside_window == len(lines) + 1
    assert "{oops" in {q["raw_payload"] for q in two[3]}
    assert one[0].rows_read == one[0].rows_loaded + one[0].rows_quarantined
    assert one[0].file_reads == two[0].file_reads and len(two[0].file_reads) == 3
    assert one[2] == two[2] and len(two[2]) == one[0].rows_loaded
    assert one[3] == two[3]

"""Day after day: run dates from Airflow's own pendulum values, incremental file reads,
quarantine counted once, hostile input, the manifest on resume, stale data, and a person's
`profilecast run` beside other runs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from profilecast import pipeline
from profilecast.interval import Interval, utc
from profilecast.sources import ENTITIES, validate_record
from profilecast.warehouse import connect

CONTACTS = next(s for s in ENTITIES if s.table == "crm__contacts")
WEB = next(s for s in ENTITIES if s.table == "web__events")
ESP = next(s for s in ENTITIES if s.table == "esp__events")
DAY1 = pendulum.datetime(2026, 11, 1, tz="UTC")


# --- one timezone-aware interval type -----------------------------------------------------
def test_pendulum_arithmetic_is_the_trap_and_interval_avoids_it():
    """pendulum + stdlib UTC minus a timedelta is naive: the crash of every second day."""
    naive = DAY1.astimezone(UTC) - timedelta(days=3)
    assert naive.tzinfo is None  # the trap, as Airflow hands it over
    iv = Interval.of(DAY1, DAY1.add(days=1))
    assert type(iv.start) is datetime and iv.start.tzinfo is UTC
    assert iv.lookback(3) < datetime(2026, 11, 1, tzinfo=UTC)  # compares, no TypeError
    assert (iv.ds, iv.as_of, iv.stamp) == ("2026-11-01", "2026-11-02 00:00:00", "20261101T000000")


def test_interval_from_every_shape_airflow_or_a_person_gives():
    berlin = pendulum.datetime(2026, 11, 1, 1, tz="Europe/Berlin")  # 00:00 UTC
    shapes = [DAY1, berlin, datetime(2026, 11, 1), "2026-11-01T00:00:00+00:00",
              "2026-11-01T00:00:00Z", datetime(2026, 11, 1, tzinfo=UTC)]  # fmt: skip
    assert {Interval.of(s).start for s in shapes} == {datetime(2026, 11, 1, tzinfo=UTC)}
    assert Interval.day("2026-11-01") == Interval.of(DAY1, DAY1.add(days=1))
    assert utc(pendulum.datetime(2026, 3, 29, 3, tz="Europe/London")).hour == 2
    with pytest.raises(ValueError):
        Interval.of(DAY1, DAY1)


def _drop(path, rows, header):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


HEADER = ["contact_id", "email", "first_name", "updated_at"]


def _extract_load(settings, start):
    """Extract and load the CRM for one daily interval with Airflow's pendulum values."""
    end = start.add(days=1)
    manifests = [pipeline.extract("crm", start, end, settings)]
    pipeline.load(manifests, end, settings)
    return {m["entity"]: m for m in manifests[0]}["contacts"]


@pytest.fixture()
def crm_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(tmp_path / "src"))
    from profilecast.config import load_settings

    return load_settings(), tmp_path / "src" / "crm"


def test_consecutive_intervals_read_new_files_and_skip_loaded_ones(crm_home):
    settings, crm = crm_home
    _drop(crm / "contacts.csv", [["1", "a@example.com", "Ann", "2026-10-20T10:00:00Z"],
                                 ["", "", "NoIds", "2026-10-20T10:00:00Z"],
                                 ["", "", "Undated", ""]], HEADER)  # fmt: skip
    first = _extract_load(settings, DAY1)
    assert (first["rows_read"], first["rows_loaded"], first["rows_quarantined"]) == (3, 1, 2)

    # Day 2: the history file is unchanged (skipped); a new daily file holds an update and a
    # record stamped two weeks ago that arrived late: both load, the lookback does not drop it.
    _drop(crm / "contacts" / "2026-11-02.csv", [["1", "a2@example.com", "Ann", "2026-11-02T08:00:00Z"],
                                               ["2", "b@example.com", "Bo", "2026-10-19T08:00:00Z"]],
          HEADER)  # fmt: skip
    second = _extract_load(settings, DAY1.add(days=1))
    modes = {os.path.basename(f["path"]): f["mode"] for f in second["file_reads"]}
    assert modes == {"contacts.csv": "skipped", "2026-11-02.csv": "full"}
    assert (second["rows_read"], second["rows_loaded"], second["rows_quarantined"]) == (2, 2, 0)

    # Day 3: the history file is rewritten in place (a snapshot export): read again with the
    # lookback window; its two bad rows were quarantined on day 1 and are not counted again.
    with (crm / "contacts.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow(["3", "c@example.com", "Cy", "2026-11-03T07:00:00Z"])
    third = _extract_load(settings, DAY1.add(days=2))
    modes = {os.path.basename(f["path"]): f["mode"] for f in third["file_reads"]}
    assert modes == {"contacts.csv": "lookback", "2026-11-02.csv": "skipped"}
    # The undated bad row belongs to no interval: quarantined on day 1, skipped now. The
    # dated one (2026-10-20) lies before the lookback window, like Ann's day-1 row.
    assert third["rows_previously_quarantined"] == 1
    assert third["rows_outside_window"] == 2
    assert (third["rows_read"], third["rows_loaded"], third["rows_quarantined"]) == (1, 1, 0)
    with connect(settings, read_only=True) as wh:
        batches = wh.df("select * from load_batches order by batch_id")
        assert (batches.rows_read == batches.rows_loaded + batches.rows_quarantined).all()
        assert wh.query("select count(*) from quarantine")[0][0] == 2

    # A rerun of day 2 replaces its batch and reads the same files the same way.
    again = _extract_load(settings, DAY1.add(days=1))
    assert (again["rows_read"], again["rows_loaded"]) == (2, 2)
    with connect(settings, read_only=True) as wh:
        assert wh.query("select count(*) from raw.crm__contacts")[0][0] == 4
    # A backfill of day 1, after later days skipped the history file: day 1's batch still
    # holds the history afterwards (it is the only batch that ever held it).
    backfill = _extract_load(settings, DAY1)
    assert {os.path.basename(f["path"]): f["mode"] for f in backfill["file_reads"]} == {
        "contacts.csv": "lookback",  # rewritten since day 1 read it: read again
        "2026-11-02.csv": "skipped",  # day 2's batch holds it
    }
    with connect(settings, read_only=True) as wh:
        ids = sorted(r[0] for r in wh.query("select distinct contact_id from raw.crm__contacts"))
    assert ids == ["1", "2", "3"]


def test_a_rest_read_parses_only_the_lines_kept_for_later(crm_home):
    """A big history file with a few future-dated records is read again on the next days
    ("rest"), but only the lines the earlier read kept for later are parsed: the 500 old
    records are not read again, and the result is what reading everything would give."""
    settings, crm = crm_home
    old = [[str(k), f"p{k}@example.com", "Old", "2026-10-20T10:00:00Z"] for k in range(500)]
    _drop(crm / "contacts.csv", [*old, ["900", "d2@example.com", "Due", "2026-11-02T05:00:00Z"],
                                 ["901", "d4@example.com", "Later", "2026-11-04T05:00:00Z"],
                                 ["902", "u@example.com", "Undated", ""]], HEADER)  # fmt: skip
    first = _extract_load(settings, DAY1)
    read = first["file_reads"][0]
    assert (read["mode"], read["rows_read"], read["rows_later"]) == ("full", 501, 2)
    assert read["reread_lines"] == "502,503,504"  # lines of 900, 901 and 902 (header is 1)
    second = _extract_load(settings, DAY1.add(days=1))
    read = second["file_reads"][0]
    assert read["mode"] == "rest" and read["reread_lines"] == "503,504"
    # 900 is due, 902 is undated (every batch's); 901 is still later; nothing old parsed.
    assert (second["rows_read"], second["rows_loaded"], read["rows_later"]) == (2, 2, 1)
    assert second["rows_outside_window"] == 1  # 901 only: the 500 old lines were skipped
    fourth = _extract_load(settings, DAY1.add(days=3))
    assert (fourth["rows_read"], fourth["rows_loaded"]) == (2, 2)  # 901 and 902
    with connect(settings, read_only=True) as wh:
        ids = {r[0] for r in wh.query("select distinct contact_id from raw.crm__contacts")}
    assert {"900", "901", "902"} <= ids and len(ids) == 503


def test_a_backfill_that_read_a_future_file_partly_leaves_it_for_its_own_day(crm_home):
    settings, crm = crm_home
    _drop(crm / "contacts.csv", [["1", "a@example.com", "Ann", "2026-10-20T10:00:00Z"]], HEADER)
    _extract_load(settings, DAY1)
    _drop(crm / "contacts" / "late.csv", [["5", "e@example.com", "Ed", "2026-11-01T05:00:00Z"],
                                          ["6", "f@example.com", "Fi", "2026-11-04T05:00:00Z"]],
          HEADER)  # fmt: skip
    backfill = _extract_load(settings, DAY1)  # rerun of day 1: record 6 is not due yet
    late = next(f for f in backfill["file_reads"] if f["path"].endswith("late.csv"))
    assert (late["rows_read"], late["rows_later"]) == (1, 1)
    day4 = _extract_load(settings, DAY1.add(days=3))
    late = next(f for f in day4["file_reads"] if f["path"].endswith("late.csv"))
    assert late["mode"] == "rest" and late["rows_read"] == 1  # record 6, not 5 again
    day5 = _extract_load(settings, DAY1.add(days=4))
    assert {f["mode"] for f in day5["file_reads"]} == {"skipped"}
    with connect(settings, read_only=True) as wh:
        ids = sorted(r[0] for r in wh.query("select contact_id from raw.crm__contacts"))
    assert ids == ["1", "5", "6"]  # each record once: nothing read twice


# --- hostile input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record, reason",
    [
        ({"contact_id": "1", "email": "a@b.co", "first_name": "An\x00n"}, "U+0000"),
        ({"contact_id": "1", "email": "a@b.co", "city": "Pa\x1bris"}, "control character in city"),
        ({"contact_id": "1", "email": "a@b.co", "note": {"x": ["ok", "bad\x07"]}}, "note.x[1]"),
    ],
)
def test_control_characters_quarantine_the_record(record, reason):
    v = validate_record(CONTACTS, record)
    assert v.row is None and reason in v.reason


def test_a_json_line_called_clean_never_holds_a_control_character():
    """Extraction skips the walk over a record's values when its JSON line has no escape or
    character that could decode to a control character: the shortcut must never let one
    through, whatever the encoding (escaped or not, in a key, nested)."""
    import random

    from profilecast.sources.validation import control_character, json_text_is_clean

    rng = random.Random(5)
    alphabet = [chr(c) for c in (*range(0, 0x30), *range(0x5B, 0x7F), *range(0x7F, 0xA2))]
    clean_seen = dirty_seen = 0
    for _ in range(3000):
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        value = rng.choice([word, {"k": [word, 1]}, {word: "v"}, [{"x": word}]])
        for text in (json.dumps({"a": value}), json.dumps({"a": value}, ensure_ascii=False)):
            has_control = control_character(json.loads(text)) is not None
            if json_text_is_clean(text):
                clean_seen += 1
                assert not has_control, text
            dirty_seen += has_control
    assert clean_seen > 1000 and dirty_seen > 1000
    line = json.dumps({"contact_id": "1", "email": "a@b.co", "city": "Pa\x1bris"})
    assert not json_text_is_clean(line)
    assert "control character in city" in validate_record(CONTACTS, json.loads(line)).reason


def test_tabs_and_newlines_are_text_not_control_characters():
    v = validate_record(
        CONTACTS, {"contact_id": "1", "email": "a@b.co", "city": "Line\tone\r\nTwo"}
    )
    assert v.row is not None


def test_invalid_email_quarantines_when_it_is_the_only_identifier():
    v = validate_record(ESP, {"email": "not an email", "event": "open", "timestamp": 1793440800})
    assert v.row is None and v.reason.startswith("invalid email syntax in email")
    assert v.record_ts is not None  # dated: belongs to one interval, quarantined once


def test_invalid_email_is_cleaned_and_kept_aside_when_the_record_has_another_id():
    v = validate_record(CONTACTS, {"contact_id": "7", "email": "ann@@example", "first_name": "Ann"})
    assert v.row["email"] is None and "email:invalid_email" in v.row["_flags"]
    assert json.loads(v.row["_extra"]) == {"email_rejected": "ann@@example"}
    ok = validate_record(CONTACTS, {"contact_id": "7", "email": "  Ann.O'Neil+x@Example.co.uk "})
    assert ok.row["email"].strip() == "Ann.O'Neil+x@Example.co.uk" and not ok.row["_flags"]


@pytest.mark.parametrize(
    "event, reason",
    [
        ({"userId": "u", "event": "Clicked"}, "Segment spec: missing type"),
        ({"type": "track", "userId": "u"}, "Segment spec: track call without event"),
        ({"type": "alias", "userId": "u"}, "Segment spec: alias call without previousId"),
        ({"type": "group", "userId": "u"}, "Segment spec: group call without groupId"),
        ({"type": "purchase", "userId": "u"}, "Segment spec: unknown type 'purchase'"),
    ],
)
def test_segment_spec_required_fields(event, reason):
    assert validate_record(WEB, event).reason == reason


def test_segment_legacy_action_is_read_as_type():
    v = validate_record(WEB, {"action": "track", "event": "Signed Up", "userId": "u"})
    assert v.row["type"] == "track"


# --- export: the manifest on resume -------------------------------------------------------
def test_resume_after_a_crash_before_the_manifest_writes_the_manifest(tmp_path, monkeypatch):
    from profilecast.export import formats
    from profilecast.export.batches import export_campaign
    from profilecast.storage import ObjectStore

    from .esp_formats import messages_in
    from .test_export import DS, _rendered, _Wh

    monkeypatch.setattr(formats, "MESSAGES_PER_FILE", 10)
    wh = _Wh()
    target = ObjectStore((tmp_path / "out").as_uri())
    rendered = _rendered(tmp_path, 25)
    real_write = ObjectStore.write

    def dies_at_manifest(self, rel, data, content_type, overwrite=False):
        if rel.endswith("manifest.json"):
            raise KeyboardInterrupt("killed after the last batch committed")
        return real_write(self, rel, data, content_type, overwrite)

    monkeypatch.setattr(ObjectStore, "write", dies_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        export_campaign(wh, target, "c1", DS, [rendered], "run-1")
    folder = tmp_path / "out" / "c1" / DS
    assert not (folder / "manifest.json").exists()
    assert wh.query("select count(*) from send_ledger")[0][0] == 25  # the ledger says sent
    monkeypatch.setattr(ObjectStore, "write", real_write)
    resumed = export_campaign(wh, target, "c1", DS, [rendered], "run-2")
    assert resumed["exported"] == 0  # nothing new to write ...
    messages = messages_in(folder)  # ... but the ESP's commit marker now lists all 25
    assert len(messages) == 25 == len({m["message_key"] for m in messages})


# --- a person's run beside other runs -----------------------------------------------------
def test_airflow_env_finds_airflow_without_an_activated_virtualenv(pc_env):
    import sys

    from profilecast.local_airflow import airflow_env

    env = airflow_env(replace(pc_env))
    found = shutil.which("airflow", path=env["PATH"])
    assert found and os.path.dirname(found) == os.path.dirname(sys.executable)


def test_a_second_run_of_the_same_interval_is_refused_with_the_holder(pc_env):
    from profilecast.runner import IntervalBusy, interval_lock

    iv = Interval.day("2026-11-01")
    with interval_lock(pc_env, iv):
        with pytest.raises(
            IntervalBusy, match=r"interval 2026-11-01 is held by `profilecast run` pid"
        ):
            with interval_lock(pc_env, iv):
                pass
    with interval_lock(pc_env, iv):  # released: the next run may go
        pass


def test_run_refuses_while_a_dag_run_holds_the_interval(pc_env, monkeypatch, capsys):
    from profilecast import cli, local_airflow, runner

    pc_env.airflow_home.mkdir(parents=True)
    con = sqlite3.connect(pc_env.airflow_home / "airflow.db")
    con.execute("create table dag_run (dag_id text, run_id text, run_type text, state text, "
                "data_interval_start text)")  # fmt: skip
    con.execute("insert into dag_run values ('customer_profiles', 'scheduled__2026-11-01T00:00:00"
                "+00:00', 'scheduled', 'running', '2026-11-01 00:00:00.000000')")  # fmt: skip
    con.commit()
    con.close()
    monkeypatch.setattr(local_airflow, "ensure_airflow", lambda s: {})
    assert cli.main(["run", "--date", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert "held by DAG run scheduled__2026-11-01T00:00:00+00:00 (scheduled, running)" in err
    assert runner.active_runs_for(pc_env, Interval.day("2026-11-02")) == []


def test_first_failure_is_read_from_the_log():
    from profilecast.runner import first_failure

    log = "noise\nPROFILECAST_TASK_FAILED task_id=load_raw error=SourceError: boom\nmore\n"
    assert first_failure(log) == "task load_raw failed: SourceError: boom"
    # the executor's task logs are JSON lines
    event = json.dumps({"timestamp": "2026-11-26T10:00:00Z", "level": "info",
                        "event": "PROFILECAST_TASK_FAILED task_id=extract_crm error=X: y"})  # fmt: skip
    assert first_failure(f"{{}}\n{event}\n") == "task extract_crm failed: X: y"
    assert first_failure("all good") is None


def test_a_backfill_respects_the_frequency_cap_of_sends_made_by_later_days():
    from profilecast.campaigns import build_audiences

    from .test_export import DS, _audience_wh, _campaign

    wh = _audience_wh()  # "capped" got mail on 2026-10-30, three-day cap
    wh.execute("insert into send_ledger values ('k2', 'other', 'ok', '2026-11-01')")  # after DS
    wh.execute("insert into send_ledger values ('k3', 'c', 'old_tent_complaint', '2026-11-05')")
    build_audiences(wh, [_campaign("c")], DS)
    got = {r[0] for r in wh.query("select customer_id from campaign_audiences")}
    # "ok" was mailed the day after DS (a later run went first): a backfill of DS keeps out;
    # a send five days later is outside the cap.
    assert "ok" not in got and "capped" not in got and "old_tent_complaint" in got
    # A rerun of the same date keeps the people it already mailed (their keys are in the
    # ledger, so the export writes nothing twice).
    wh.execute(f"insert into send_ledger values ('k4', 'c', 'old_tent_complaint', '{DS}')")
    build_audiences(wh, [_campaign("c")], DS)
    again = {r[0] for r in wh.query("select customer_id from campaign_audiences")}
    assert again == got

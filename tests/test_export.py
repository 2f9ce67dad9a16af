"""Export: S3 (moto server) with the manifest protocol, conditional writes, crash and resume,
and every suppression rule of the audience builder."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace

import duckdb
import pytest
from profilecast import storage as storage_mod
from profilecast.campaigns import Campaign, build_audiences, message_key
from profilecast.export import formats
from profilecast.export.batches import export_campaign
from profilecast.storage import Conflict, ObjectStore

DS = "2026-10-31"


class _Wh:
    """The Warehouse API over an in-memory DuckDB (same SQL as production)."""

    def __init__(self) -> None:
        from profilecast.warehouse.connection import DuckDBWarehouse

        self.inner = DuckDBWarehouse.__new__(DuckDBWarehouse)
        self.inner.raw_schema = "raw"
        self.inner.con = duckdb.connect()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _rendered(tmp_path, n: int, campaign="c1"):
    import gzip
    import json

    path = tmp_path / f"{campaign}.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            key = message_key(campaign, f"cus{i}", DS)
            fh.write(json.dumps({"message_key": key, "campaign_id": campaign, "customer_id": f"cus{i}",
                                 "to": f"p{i}@example.com", "from": "Shop <shop@example.com>",
                                 "subject": f"Hi {i}", "subject_variant": "0", "preheader": "",
                                 "html": f"<p>{i}</p>", "text": f"{i}\n", "fields": {}}) + "\n")  # fmt: skip
    return path


def test_s3_export_with_manifest_sse_and_no_rewrites(tmp_path, s3_env):
    bucket = f"esp-{uuid.uuid4().hex[:8]}"
    s3_env.create_bucket(Bucket=bucket)
    wh = _Wh()
    target = ObjectStore(f"s3://{bucket}/outbound")
    rendered = _rendered(tmp_path, 120)
    for fmt in ("ses",):
        first = export_campaign(wh, target, "c1", DS, [rendered], "run-1", fmt=fmt)
    assert first["exported"] == 120
    keys = sorted(o["Key"] for o in s3_env.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "outbound/c1/2026-10-31/batch-00000.jsonl.gz",
        "outbound/c1/2026-10-31/manifest.json",
    ]
    head = s3_env.head_object(Bucket=bucket, Key=keys[0])
    assert head["ServerSideEncryption"] == "AES256"
    import json

    manifest = json.loads(s3_env.get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    assert manifest["total_rows"] == 120 and manifest["batches"][0]["lines"] == 3  # 50 + 50 + 20
    again = export_campaign(wh, target, "c1", DS, [rendered], "run-2", fmt="ses")
    assert again["exported"] == 0
    assert s3_env.head_object(Bucket=bucket, Key=keys[0])["ETag"] == head["ETag"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_conditional_writes_never_overwrite_silently(tmp_path, kind, request):
    if kind == "s3":
        s3 = request.getfixturevalue("s3_env")
        bucket = f"cond-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        target = ObjectStore(f"s3://{bucket}/x")
    else:
        target = ObjectStore((tmp_path / "out").as_uri())
    target.write("a/batch.gz", b"one", "application/gzip")
    target.write("a/batch.gz", b"one", "application/gzip")  # identical retry: fine
    with pytest.raises(Conflict):
        target.write("a/batch.gz", b"two", "application/gzip")
    assert target.read("a/batch.gz") == b"one"


def test_multipart_upload_for_large_batches(s3_env, monkeypatch):
    bucket = f"mp-{uuid.uuid4().hex[:8]}"
    s3_env.create_bucket(Bucket=bucket)
    monkeypatch.setenv("PROFILECAST_MULTIPART_BYTES", str(1024 * 1024))
    monkeypatch.setattr(storage_mod, "PART_BYTES", 5 * 1024 * 1024)
    data = os.urandom(6 * 1024 * 1024)
    target = ObjectStore(f"s3://{bucket}/big")
    target.write("f.gz", data, "application/gzip")
    head = s3_env.head_object(Bucket=bucket, Key="big/f.gz")
    assert head["ContentLength"] == len(data) and "-2" in head["ETag"]  # two parts
    assert target.read("f.gz") == data


def test_crash_midway_then_resume_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MESSAGES_PER_FILE", 10)
    wh = _Wh()
    target = ObjectStore((tmp_path / "out").as_uri())
    rendered = _rendered(tmp_path, 35)
    real_write = ObjectStore.write
    calls = {"n": 0}

    def crashing(self, rel, data, content_type, overwrite=False):
        if rel.endswith(".jsonl.gz"):
            calls["n"] += 1
            if calls["n"] == 3:  # the process dies while writing the third batch
                raise KeyboardInterrupt("killed")
        return real_write(self, rel, data, content_type, overwrite)

    monkeypatch.setattr(ObjectStore, "write", crashing)
    with pytest.raises(KeyboardInterrupt):
        export_campaign(wh, target, "c1", DS, [rendered], "run-1")
    # Two batch files were written, but none committed (batches commit in groups of
    # COMMIT_EVERY); no manifest lists them, so the ESP has not seen them.
    assert wh.query("select count(*) from send_ledger")[0][0] == 0
    assert len(list((tmp_path / "out" / "c1" / DS).glob("batch-*.jsonl.gz"))) == 2
    assert not (tmp_path / "out" / "c1" / DS / "manifest.json").exists()
    monkeypatch.setattr(ObjectStore, "write", real_write)
    resumed = export_campaign(wh, target, "c1", DS, [rendered], "run-2")
    assert resumed["exported"] == 35 and resumed["total_batches"] == 4
    from .esp_formats import messages_in

    messages = messages_in(tmp_path / "out" / "c1" / DS)
    assert len(messages) == 35 == len({m["message_key"] for m in messages})
    n, distinct = wh.query("select count(*), count(distinct message_key) from send_ledger")[0]
    assert n == distinct == 35


def _audience_wh():
    wh = _Wh()
    wh.execute("create table customer_segments (customer_id varchar, segment varchar)")
    wh.execute(
        "create table customer_profiles (customer_id varchar, email varchar, is_emailable boolean, "
        "bounced_at timestamp, complained_at timestamp, last_complaint_product varchar, "
        "last_complaint_at timestamp, email_frequency varchar)"
    )
    people = {
        # id: (emailable, bounced, complained, complaint product, complaint at)
        "ok": (True, None, None, None, None),
        "unsubscribed": (False, None, None, None, None),
        "bounced": (False, "2026-10-01", None, None, None),
        "complained": (False, None, "2026-10-02", None, None),
        "tent_complaint": (True, None, None, "Ultralight Tent", "2026-10-20"),
        "old_tent_complaint": (True, None, None, "Ultralight Tent", "2026-08-01"),
        "recent_buyer": (True, None, None, None, None),
        "capped": (True, None, None, None, None),
        "weekly": (True, None, None, None, None),
    }
    for cid, (ok, b, c, prod, at) in people.items():
        wh.execute("insert into customer_profiles values (%s, %s, %s, %s, %s, %s, %s, %s)",
                   (cid, f"{cid}@example.com", ok, b, c, prod, at,
                    "weekly" if cid == "weekly" else "all"))  # fmt: skip
        wh.execute("insert into customer_segments values (%s, 'target')", (cid,))
    wh.execute("insert into customer_segments values ('recent_buyer', 'recently_purchased')")
    wh.execute(
        "create table send_ledger (message_key varchar, campaign_id varchar, customer_id varchar, run_date date)"
    )
    wh.execute("insert into send_ledger values ('k', 'other', 'capped', '2026-10-30')")
    # chose at most one a week in the preference centre, mailed five days ago: not yet
    wh.execute("insert into send_ledger values ('k2', 'other', 'weekly', '2026-10-26')")
    return wh


def _campaign(cid, kind="marketing", **kw):
    base = Campaign(cid, ["target"], kind, "jsonl", "a@example.com", ["s"], "", ["first_name"],
                    priority=50, frequency_cap_days=3, exclude_segments=["recently_purchased"])  # fmt: skip
    return replace(base, **kw)


def test_every_suppression_rule():
    wh = _audience_wh()
    promo = _campaign("tent_promo", promoted_product="Ultralight Tent")
    build_audiences(wh, [promo], DS)
    got = {
        r[0]
        for r in wh.query(
            "select customer_id from campaign_audiences where campaign_id = 'tent_promo'"
        )
    }
    # not emailable (unsubscribed, bounced, complained), recent complaint about the promoted
    # product, recently purchased (excluded segment), the frequency cap and the customer's own
    # weekly choice all keep people out.
    assert got == {"ok", "old_tent_complaint"}


def test_transactional_mail_ignores_opt_out_but_not_bounces():
    wh = _audience_wh()
    receipt = _campaign("receipt", kind="transactional", exclude_segments=[], frequency_cap_days=0)
    build_audiences(wh, [receipt], DS)
    got = {r[0] for r in wh.query("select customer_id from campaign_audiences")}
    assert "unsubscribed" in got and "bounced" not in got and "complained" not in got


def test_one_campaign_per_customer_by_priority():
    wh = _audience_wh()
    high = _campaign("high", priority=90, exclude_segments=[], frequency_cap_days=0)
    low = _campaign("low", priority=10, exclude_segments=[], frequency_cap_days=0)
    build_audiences(wh, sorted([low, high], key=lambda c: -c.priority), DS)
    rows = wh.query("select campaign_id, count(*) from campaign_audiences group by 1")
    # the emailable people, once, in the higher-priority one (not the weekly one: mailed
    # five days ago)
    assert dict(rows) == {"high": 5}
    keys = wh.query("select count(distinct message_key), count(*) from campaign_audiences")[0]
    assert keys[0] == keys[1]


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from profilecast.export import batches, formats
from profilecast.config import load_settings
from profilecast.export.batches import export_campaign
from profilecast.storage import ObjectStore
from profilecast.warehouse import connect

formats.MESSAGES_PER_FILE = 10
batches.COMMIT_EVERY = 2  # batches 0-1 commit; 2 is written, not committed; 3 is torn
real_write = ObjectStore.write
count = {"n": 0}

def write(self, rel, data, content_type, overwrite=False):
    if rel.endswith(".jsonl.gz"):
        count["n"] += 1
        if count["n"] == 4:
            # half of the fourth batch reaches the disk, then the process is killed (-9)
            path = Path(self.url[7:]) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write(self, rel, data, content_type, overwrite)

ObjectStore.write = write
with connect(load_settings()) as wh:
    export_campaign(wh, ObjectStore(sys.argv[1]), "c1", "2026-10-31", [Path(sys.argv[2])], "run-killed")
"""


def test_export_killed_with_sigkill_then_rerun(tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys

    from profilecast.config import load_settings
    from profilecast.warehouse import connect

    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(formats, "MESSAGES_PER_FILE", 10)
    rendered = _rendered(tmp_path, 35)
    url = (tmp_path / "out").as_uri()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, url, str(rendered)], capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL
    settings = load_settings()
    with connect(settings) as wh:
        assert wh.query("select count(*) from send_ledger")[0][0] == 20
        resumed = export_campaign(wh, ObjectStore(url), "c1", DS, [rendered], "run-2")
        assert resumed["exported"] == 15
        n, distinct = wh.query("select count(*), count(distinct message_key) from send_ledger")[0]
    assert n == distinct == 35
    from .esp_formats import messages_in

    messages = messages_in(tmp_path / "out" / "c1" / DS)  # the torn batch was replaced
    assert len(messages) == 35 == len({m["message_key"] for m in messages})


def test_sendgrid_bodies_match_the_published_schema(tmp_path):
    from .esp_formats import SENDGRID_SCHEMA, _sendgrid_validator

    if not SENDGRID_SCHEMA.exists():
        pytest.skip("../shared/external/esp_sendgrid is not present beside this clone")
    wh = _Wh()
    target = ObjectStore((tmp_path / "out").as_uri())
    export_campaign(wh, target, "c1", DS, [_rendered(tmp_path, 1500)], "r", fmt="sendgrid")
    import gzip
    import json

    bodies = [json.loads(line) for f in sorted((tmp_path / "out").rglob("batch-*.gz"))
              for line in gzip.open(f, "rt")]  # fmt: skip
    assert [len(b["personalizations"]) for b in bodies] == [1000, 500]
    for body in bodies:
        assert not list(_sendgrid_validator().iter_errors(body))
    too_many = {**bodies[0], "personalizations": bodies[0]["personalizations"] * 2}
    no_sender = {k: v for k, v in bodies[0].items() if k != "from"}
    assert list(_sendgrid_validator().iter_errors(too_many))  # the check can fail
    assert list(_sendgrid_validator().iter_errors(no_sender))


def test_the_export_reads_only_its_own_run_dates_ledger_keys(tmp_path):
    """A message key holds its run date, so the ledger's keys of other dates (a month of
    them, for a daily campaign) are never read: the context holds this date's, and a rerun
    of the date still writes nothing again."""
    from profilecast.export.batches import CampaignExport, campaign_context
    from profilecast.export.ledger import ensure_ledger_tables

    wh = _Wh()
    ensure_ledger_tables(wh)
    wh.execute(
        "insert into send_ledger select md5('old' || i::varchar), 'c1', 'cus' || i::varchar, "
        "date '2026-10-01' + cast(i % 30 as integer), 'old.gz', now() from range(3000) t(i)"
    )
    target = ObjectStore((tmp_path / "esp").as_uri())
    rendered = _rendered(tmp_path, 40)
    first = export_campaign(wh, target, "c1", DS, [rendered], "run-1")
    assert first["exported"] == 40
    context = campaign_context(wh, CampaignExport("c1", [rendered]), DS, f"{DS} 00:00:00")
    today = {
        r[0] for r in wh.query("select message_key from send_ledger where run_date = %s", (DS,))
    }
    assert context.exported == today and len(today) == 40
    assert export_campaign(wh, target, "c1", DS, [rendered], "run-2")["exported"] == 0


def test_the_duckdb_ledger_keeps_no_index_and_refuses_a_key_it_holds():
    """An index on every key ever sent grows with each day; DuckDB's ledger keeps none (an
    older, indexed ledger is rebuilt without it, rows kept) and the export's append refuses,
    in its transaction, a key the ledger holds for the date or a key given twice."""
    import pandas as pd
    from profilecast.export.ledger import LedgerError, append_ledger, ensure_ledger_tables

    wh = _Wh()
    wh.execute(  # the ledger as earlier versions made it
        "create table send_ledger (message_key varchar primary key, campaign_id varchar, "
        "customer_id varchar, run_date date, batch_file varchar, exported_at timestamp)"
    )
    wh.execute("insert into send_ledger values ('k1', 'c1', 'cus1', '2026-10-31', 'b0', now())")
    ensure_ledger_tables(wh)
    constraints = "select count(*) from duckdb_constraints() where table_name = 'send_ledger'"
    assert wh.query(constraints)[0][0] == 0
    assert wh.query("select message_key, customer_id from send_ledger") == [("k1", "cus1")]

    def rows(*keys):
        ledger = pd.DataFrame({"message_key": list(keys), "campaign_id": "c1",
                               "customer_id": "x", "run_date": DS, "batch_file": "b1"})  # fmt: skip
        batches = pd.DataFrame([{"campaign_id": "c1", "run_date": DS, "batch_file": "b1"}])
        return ledger, batches

    append_ledger(wh, "c1", DS, *rows("k2", "k3"))
    for keys, which in ((("k4", "k1"), "k1"), (("k5", "k5"), "k5")):
        with pytest.raises(LedgerError, match=which):
            append_ledger(wh, "c1", DS, *rows(*keys))
    kept = sorted(r[0] for r in wh.query("select message_key from send_ledger"))
    assert kept == ["k1", "k2", "k3"]
    assert wh.query("select count(*) from export_batches")[0][0] == 1

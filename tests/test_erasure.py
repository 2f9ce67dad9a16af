"""Erasure on a real build: `profilecast forget` removes a person from the warehouse, the
landing zone, rendered files, the fresh facts, the flows and the profile snapshot, keeps
only salted digests, and a later drop that still holds them does not bring them back."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profilecast import cli, pipeline
from profilecast.collector.app import WEB, apply_facts
from profilecast.fresh.store import FreshStore
from profilecast.warehouse import connect

START = datetime(2026, 10, 31, tzinfo=UTC)
END = START + timedelta(days=1)
SOURCES = ("crm", "billing", "web", "esp")


def _build(settings, start, end):
    manifests = [pipeline.extract(s, start, end, settings) for s in SOURCES]
    pipeline.load(manifests, end, settings)
    pipeline.transform(start, end, settings)
    pipeline.audiences(start, settings)


def _pick(settings) -> dict:
    """A marketing recipient with a unique full name, a CRM and a billing record and a web
    user id: someone whose data is spread over every place."""
    with connect(settings, read_only=True) as wh:
        names = Counter(wh.query("select first_name, last_name from customer_profiles"))
        ids: dict[str, list[tuple[str, str]]] = {}
        for cid, source, rid in wh.query(
            "select customer_id, source, source_record_id from customer_identity_map"
        ):
            ids.setdefault(cid, []).append((source, rid))
        for cid, email, first, last, campaign in wh.query(
            "select p.customer_id, p.email, p.first_name, p.last_name, a.campaign_id "
            "from customer_profiles p join campaign_audiences a using (customer_id) "
            "where a.kind = 'marketing' and p.email is not null order by 1"
        ):
            sources = {s for s, _ in ids[cid]}
            if names[(first, last)] == 1 and {"crm", "billing", "web_user"} <= sources:
                return {"customer_id": cid, "email": email, "first": first, "last": last,
                        "campaign": campaign, "ids": ids[cid]}  # fmt: skip
    pytest.fail("the sample has no customer spread over every source")


def _needles(p: dict) -> tuple[set[str], set[str]]:
    """(substrings no text may hold, whole values no cell may equal)."""
    ids = {p["customer_id"]} | {rid for _, rid in p["ids"]}
    subs = {p["email"].lower(), f"{p['first']} {p['last']}".lower()}
    subs |= {f'"{i}"'.lower() for i in ids} | {i.lower() for i in ids if "@" in i}
    return subs, {i.lower() for i in ids}


def _warehouse_holds(settings, p: dict) -> list[str]:
    subs, exact = _needles(p)
    found = []
    with connect(settings, read_only=True) as wh:
        tables = wh.query(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_catalog = current_database()"
        )
        for schema, table in tables:
            cols = wh.columns(table, schema)
            for row in wh.query(f'select * from "{schema}"."{table}"'):
                cells = {c: str(v).lower() for c, v in zip(cols, row, strict=True) if v is not None}
                if p["first"] in row and p["last"] in row:
                    found.append(f"{schema}.{table}: name")
                for c, text in cells.items():
                    if text.strip() in exact and (not text.strip().isdigit() or "id" in c):
                        found.append(f"{schema}.{table}.{c} = {text}")
                    elif any(s in text for s in subs):
                        found.append(f"{schema}.{table}.{c} holds it")
    return found


def _texts(path: Path) -> list[str]:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return [json.dumps(r, default=str) for r in rows] + [
            f"{r.get('first_name')} {r.get('last_name')}" for r in rows]  # fmt: skip
    if name.endswith((".sqlite", ".db")):
        conn = sqlite3.connect(path)
        try:
            out = []
            for (table,) in conn.execute("select name from sqlite_master where type = 'table'"):
                out += [
                    json.dumps(r, default=str) for r in conn.execute(f'select * from "{table}"')
                ]
            return out
        finally:
            conn.close()
    if name.endswith((".duckdb", ".wal", ".lock", "salt")):
        return []
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [raw.decode("utf-8", errors="replace")]


def _files_holding(home: Path, p: dict) -> list[str]:
    subs, _ = _needles(p)
    found = []
    for path in home.rglob("*"):
        rel = path.relative_to(home)
        if not path.is_file() or rel.parts[0] in ("privacy", "airflow", "exports"):
            continue
        for text in _texts(path):
            if any(s in text.lower() for s in subs):
                found.append(str(rel))
                break
    return found


def _later_drop(sources: Path, p: dict) -> None:
    """New drop files the next day that still hold the person: their CRM contact, updated,
    and an ESP open of their address."""
    import csv

    contact = next(rid for src, rid in p["ids"] if src == "crm")
    with (sources / "crm" / "contacts.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        row = next(r for r in reader if r["contact_id"] == contact)
    row["updated_at"] = "2026-11-01T10:00:00Z"
    with (sources / "crm" / "contacts.2026-11-01.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerow(row)
    (sources / "esp" / "events.2026-11-01.jsonl").write_text(json.dumps(
        {"sg_event_id": "later-open-1", "email": p["email"], "event": "open",
         "timestamp": int(datetime(2026, 11, 1, 9, tzinfo=UTC).timestamp())}) + "\n")  # fmt: skip


def test_forget_removes_a_person_everywhere_and_a_reimport_keeps_them_out(
    pc_env, sample_dir, tmp_path, monkeypatch, capsys
):
    import shutil

    from profilecast.config import load_settings

    sources = tmp_path / "sources"
    shutil.copytree(sample_dir, sources)
    monkeypatch.setenv("PROFILECAST_SOURCES", str(sources))
    s = load_settings()
    _build(s, START, END)
    pipeline.publish_profiles(s)
    p = _pick(s)
    rendered = pipeline.render(p["campaign"], START, s)  # before the flow claims them
    assert rendered["rendered"] > 0, rendered
    web_user = next(rid for src, rid in p["ids"] if src == "web_user")
    fresh = FreshStore(s.fresh_path)
    apply_facts(fresh, [(WEB, {"type": "track", "userId": web_user, "event": "Product Added",
                               "timestamp": "2026-11-01T08:00:00Z", "messageId": "erase-1",
                               "properties": {"name": "Trail Tent"}})])  # fmt: skip
    fresh.close()
    from profilecast.flows.service import advance_flows

    advance_flows(s, now=datetime(2026, 11, 1, 8, 1, tzinfo=UTC))
    conn = sqlite3.connect(s.flows_path)
    assert conn.execute("select count(*) from flow_state where customer_id = ?",
                        (p["customer_id"],)).fetchone()[0] == 1  # fmt: skip
    conn.close()
    before = _files_holding(s.home, p)
    assert any(f.startswith("landing") for f in before), before
    assert any(f.startswith("rendered") for f in before), before
    assert any(f.startswith("fresh") for f in before), (before, p, _texts(s.fresh_path))
    assert any(f.startswith("flows") for f in before), before
    assert _warehouse_holds(s, p)

    capsys.readouterr()
    assert cli.main(["forget", "--email", f"  {p['email'].upper()} ", "--requested-by", "dpo"]) == 0
    out = capsys.readouterr().out
    assert "recorded" in out and "done at" in out, out
    assert p["email"] not in out and p["customer_id"] not in out

    assert _warehouse_holds(s, p) == []
    assert _files_holding(s.home, p) == []
    # The registry keeps digests and an audit row, never the person.
    registry = s.home / "privacy" / "erasure.sqlite"
    dump = "\n".join(_texts(registry)).lower()
    assert p["email"].lower() not in dump and p["customer_id"].lower() not in dump
    audit = json.loads(
        sqlite3.connect(registry).execute("select removed from requests").fetchone()[0]
    )
    assert audit["customers"] == 1 and audit["warehouse"] and audit["files"]

    # The next day, a drop that still holds the person comes in: they stay out, and the row
    # accounting says where their records went.
    _later_drop(sources, p)
    nxt = END + timedelta(days=1)
    _build(s, END, nxt)
    pipeline.publish_profiles(s)
    assert _warehouse_holds(s, p) == []
    with connect(s, read_only=True) as wh:
        erased = dict(wh.query("select batch_id, rows_erased from load_batches "
                               "where rows_erased > 0"))  # fmt: skip
    assert erased == {"crm__contacts__20261101T000000": 1, "esp__events__20261101T000000": 1}
    pipeline.gate(
        END, nxt, s
    )  # the raw layer's accounting holds: read = loaded + quarantined + erased
    for campaign in pipeline.campaign_ids(s):
        pipeline.render(campaign, END, s)
    assert _files_holding(s.home, p) == []


def test_an_erased_address_is_never_mailed_even_before_the_sweep(pc_env):
    """A request recorded while the warehouse is busy suppresses the person at once: the
    render skips them as `erased` although their rows are still there."""
    from profilecast.consent.erasure import request_erasure

    s = pc_env
    _build(s, START, END)
    p = _pick(s)
    request_erasure(p["email"], "test", s.home)
    out = pipeline.render(p["campaign"], START, s)
    assert out["skipped_fresh"].get("erased") == 1, out
    with gzip.open(out["path"], "rt") as fh:
        assert all(json.loads(line)["customer_id"] != p["customer_id"] for line in fh)


def test_the_privacy_api_erases_at_once_what_the_collector_holds_and_keeps_them_out(tmp_path):
    """A privacy tool's request: refused without its token; with it, a 202, the person's
    fresh facts gone at once, their new events acknowledged and never stored, and the audit
    row readable; `forget --apply-pending` later finishes the request."""
    import urllib.request

    from tests.collector_harness import WRITE_KEY, start_collector

    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_PRIVACY_TOKENS="priv_tok_1")  # fmt: skip
    email = "zoe.erased@example.com"

    def identify(n: int) -> None:
        ans = col.post("/v1/identify", {"userId": "u-zoe", "messageId": f"z{n}",
                                         "timestamp": "2026-11-20T10:00:00Z",
                                         "traits": {"email": email}}, key=WRITE_KEY)  # fmt: skip
        assert ans.status == 200, ans

    def call(method: str, path: str, body: dict | None, token: str | None) -> tuple[int, dict]:
        req = urllib.request.Request(col.url + path, method=method,
                                     data=json.dumps(body).encode() if body else None)  # fmt: skip
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    import urllib.error

    try:
        identify(1)
        facts = tmp_path / "home" / "fresh" / "facts.sqlite"
        assert email in "\n".join(_texts(facts))
        assert call("POST", "/privacy/erasures", {"email": email}, None)[0] == 401
        assert call("POST", "/privacy/erasures", {"email": email}, "wrong")[0] == 401
        assert (
            call("POST", "/privacy/erasures", {"email": "not-an-address"}, "priv_tok_1")[0] == 400
        )
        status, body = call("POST", "/privacy/erasures",
                            {"email": email, "requested_by": "privacy-tool"}, "priv_tok_1")  # fmt: skip
        assert status == 202 and body["status"] == "pending" and body["suppressed"], body
        assert body["removed_now"]["fresh_facts"]["facts"] >= 1
        assert email not in "\n".join(_texts(facts)) and "u-zoe" not in "\n".join(_texts(facts))
        identify(2)  # after the request: acknowledged, kept out of the journal and the facts
        assert email not in "\n".join(_texts(facts))
        ans = col.post("/v1/track", {"userId": "u-zoe", "event": "Product Viewed", "messageId": "z3",
                                     "timestamp": "2026-11-20T10:05:00Z"}, key=WRITE_KEY)  # fmt: skip
        assert ans.status == 200  # only their user id: kept out too
        assert not [r for r in col.journal("web/events", sealed_only=False)
                    if r.get("messageId") in ("z2", "z3")]  # fmt: skip
        status, audit = call("GET", body["status_url"], None, "priv_tok_1")
        assert status == 200 and audit["status"] == "pending"
        assert audit["requested_by"] == "privacy-tool" and email not in json.dumps(audit)
    finally:
        col.stop()
    # The journal still holds the first identify (a sealed segment): the warehouse-side
    # sweep removes it, as it would on the DAG's apply_erasures.

    env = {**col.env}
    import subprocess

    from tests.conftest import venv_bin

    done = subprocess.run([venv_bin("profilecast"), "forget", "--apply-pending"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "done at" in done.stdout
    for path in (tmp_path / "drops").rglob("*.jsonl"):
        assert email not in path.read_text()

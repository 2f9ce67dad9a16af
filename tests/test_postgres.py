"""The same pipeline on PostgreSQL (the machine's server) gives the same answers as DuckDB."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profilecast import pipeline
from profilecast.config import load_settings
from profilecast.warehouse import connect

pytestmark = pytest.mark.postgres
START = datetime(2026, 10, 31, tzinfo=UTC)
END = START + timedelta(days=1)


def _ensure_server() -> None:
    import psycopg2

    for attempt in range(2):
        try:
            psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres").close()
            return
        except psycopg2.OperationalError:
            if attempt:
                raise
            versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
            if versions:  # the machine's cluster is installed but stopped: start it
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
                    check=False,
                )
                time.sleep(3)


def _build(monkeypatch, home: Path, sample: Path, **env: str):
    monkeypatch.setenv("PROFILECAST_HOME", str(home))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(sample))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    manifests = [
        pipeline.extract(s, START, END, settings) for s in ("crm", "billing", "web", "esp")
    ]
    pipeline.load(manifests, END, settings)
    segments = pipeline.transform(START, END, settings)["segments"]
    audiences = pipeline.audiences(START, settings)
    pipeline.gate(START, END, settings)
    with connect(settings, read_only=True) as wh:
        profiles = wh.query(
            "select count(*), sum(case when is_emailable then 1 else 0 end), "
            "sum(orders_count), sum(opens_30d) from customer_profiles"
        )[0]
        ids = {r[0] for r in wh.query("select customer_id from customer_profiles")}
    return [int(x) for x in profiles], segments, audiences, ids


def test_postgres_matches_duckdb(monkeypatch, tmp_path, sample_dir):
    _ensure_server()
    schema = f"pc_test_{uuid.uuid4().hex[:8]}"
    import psycopg2

    try:
        pg = _build(
            monkeypatch, tmp_path / "pg", sample_dir,
            PROFILECAST_DBT_TARGET="postgres", PROFILECAST_PG_SCHEMA=schema,
        )  # fmt: skip
        monkeypatch.delenv("PROFILECAST_PG_SCHEMA")
        duck = _build(monkeypatch, tmp_path / "duck", sample_dir, PROFILECAST_DBT_TARGET="duckdb")
    finally:
        con = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"drop schema if exists {schema} cascade")
            cur.execute(f"drop schema if exists {schema}_raw cascade")
        con.close()
    assert pg[0][0] > 0
    assert pg[0] == duck[0]  # profiles, emailable, orders, opens
    assert pg[1] == duck[1]  # segment sizes
    assert pg[2] == duck[2]  # audiences per campaign
    assert pg[3] == duck[3]  # identical customer ids on both engines
    assert os.environ["PROFILECAST_DBT_TARGET"] == "duckdb"

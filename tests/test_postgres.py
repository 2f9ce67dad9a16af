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
    pipeline.transform(START, END, settings)
    # Again, incrementally: the incremental models' SQL (merge, post-hook) runs on both engines.
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


def test_profilecast_run_on_the_users_postgresql_metadata(tmp_path):
    """A user whose Airflow keeps its metadata in PostgreSQL: `profilecast run` migrates that
    database, imports the project's pools into it and runs the DAG through the scheduler
    there; no SQLite metadata appears."""
    import psycopg2
    from profilecast_dev.generate import generate

    from tests.conftest import clean_env, venv_bin

    _ensure_server()
    name = f"pc_airflow_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    sample, home = tmp_path / "sample", tmp_path / "home"
    generate(sample, contacts=150, seed=5)
    conn = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        env = clean_env(PROFILECAST_HOME=str(home), PROFILECAST_SOURCES=str(sample),
                        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=conn)  # fmt: skip
        done = subprocess.run([venv_bin("profilecast"), "run", "--date", "2026-10-31"], env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "emails exported this run:" in done.stdout
        assert not list(home.rglob("airflow.db"))
        meta = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=name)
        with meta.cursor() as cur:
            cur.execute("select state from dag_run where dag_id = 'customer_profiles'")
            assert cur.fetchall() == [("success",)]
            cur.execute("select count(*), count(distinct hostname) from task_instance "
                        "where dag_id = 'customer_profiles' and state = 'success'")  # fmt: skip
            tasks, hosts = cur.fetchone()
            cur.execute("select slots from slot_pool where pool = 'profilecast_warehouse'")
            assert cur.fetchone() == (1,)
        meta.close()
        assert tasks >= 15 and hosts >= 1
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")
        admin.close()


def test_tasks_starting_together_on_a_new_warehouse_schema(monkeypatch, tmp_path):
    """The extract tasks of a run connect at the same moment; `create schema if not exists`
    races with itself on PostgreSQL (a unique violation on pg_namespace). Every connection
    must come up."""
    import threading

    import psycopg2

    _ensure_server()
    schema = f"pc_race_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path))
    monkeypatch.setenv("PROFILECAST_DBT_TARGET", "postgres")
    monkeypatch.setenv("PROFILECAST_PG_SCHEMA", schema)
    settings = load_settings()
    start, errors = threading.Barrier(12), []

    def task() -> None:
        start.wait()
        try:
            with connect(settings, read_only=True) as wh:
                wh.query("select 1")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=task) for _ in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        con = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"drop schema if exists {schema} cascade")
        con.close()
    assert errors == []


def test_hex_prefix_is_what_python_reads_on_both_engines(monkeypatch, tmp_path):
    """Render shards filter their rows in SQL by the key's first eight hex digits: both
    engines must read them as ``int(key[:8], 16)`` does, the top bit included."""
    _ensure_server()
    import hashlib

    keys = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(200)]
    keys += ["ffffffff" + "0" * 24, "80000000" + "f" * 24, "00000000" + "a" * 24]
    values = ", ".join(f"('{k}')" for k in keys)
    expected = sorted((k, int(k[:8], 16), int(k[:8], 16) % 3) for k in keys)
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    for target in ("duckdb", "postgres"):
        monkeypatch.setenv("PROFILECAST_DBT_TARGET", target)
        with connect(load_settings()) as wh:
            expr = wh.hex_prefix("k")
            got = wh.query(f"select k, {expr}, mod({expr}, 3) from (values {values}) as t(k) "
                           "where k <> %s", ("",))  # fmt: skip
        assert sorted((k, int(v), int(s)) for k, v, s in got) == expected, target

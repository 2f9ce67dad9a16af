"""End to end: `profilecast run` drives the real DAG through Airflow's scheduler, executor,
DAG processor, triggerer and API server."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import duckdb
import pytest
from profilecast_dev.generate import generate

from .conftest import clean_env, environment, venv_bin
from .esp_formats import messages_in

pytestmark = pytest.mark.e2e
DATE = "2026-10-31"


def _run(home, sources, date=DATE, *extra, data_docs="false"):
    env = clean_env(PROFILECAST_HOME=str(home), PROFILECAST_SOURCES=str(sources),
                    PROFILECAST_DATA_DOCS=data_docs)  # fmt: skip
    return subprocess.run(
        [venv_bin("profilecast"), "run", "--date", date, *extra],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


@pytest.mark.timeout(1500)  # two DAG runs under the scheduler: slow machines need longer
def test_dag_runs_end_to_end_and_reruns_export_nothing_new(airflow_home, sample_dir):
    home = airflow_home / "home"
    first = _run(home, sample_dir, data_docs="true")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "profiles:" in first.stdout and "emails exported this run:" in first.stdout
    # The gate's report links the GX Data Docs site it rendered (on unless switched off).
    report = json.loads((home / "reports" / DATE / "quality" / "validation.json").read_text())
    assert report["data_docs"] and Path(report["data_docs"]).name == "index.html"
    assert Path(report["data_docs"]).is_file()
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    profiles = db.execute("select count(*) from customer_profiles").fetchall()[0][0]
    exported = db.execute("select count(*) from send_ledger").fetchall()[0][0]
    raw_rows = db.execute("select sum(rows_loaded) from load_batches").fetchall()[0][0]
    segs = dict(db.execute("select segment, size from segment_runs").fetchall())
    db.close()
    assert profiles > 0 and exported > 0 and raw_rows > 0
    assert set(segs) >= {"cart_abandoners", "high_engagement", "new_subscribers"}
    # The exported files: manifests match files, every request validates, keys are unique.
    folders = sorted(m.parent for m in (home / "exports").rglob("manifest.json"))
    assert len(folders) == 3  # one campaign per format: jsonl, ses, sendgrid
    formats = {
        json.loads((f / "manifest.json").read_text())["batches"][0]["format"] for f in folders
    }
    assert formats == {"jsonl", "ses", "sendgrid"}
    messages = [m for f in folders for m in messages_in(f)]
    assert len(messages) == exported
    assert len({m["message_key"] for m in messages}) == len(messages)
    assert all("List-Unsubscribe" in m["headers"] for m in messages)
    assert all(
        m["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in messages
    )
    assert not any("None" in m["subject"] or "Hi ," in m["subject"] for m in messages)
    # Every message links the preference centre; nobody without consent for the campaign's
    # topic (an opt-in country without an opt-in, an opt-out) was sent anything.
    assert all("/p/" in m["html"] and "Email preferences" in m["html"] for m in messages)
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    leaked = db.execute(
        "select count(*) from send_ledger l join campaign_audiences a using (message_key) "
        "join customer_topic_consent t on t.customer_id = l.customer_id and t.topic = a.topic "
        "where a.kind = 'marketing' and not t.may_email").fetchall()[0][0]  # fmt: skip
    no_opt_in = db.execute("select count(*) from customer_topic_consent "
                           "where regime = 'opt_in' and status = 'no_choice'").fetchall()[0][0]  # fmt: skip
    db.close()
    assert no_opt_in > 0 and leaked == 0
    files = sorted((home / "exports").rglob("batch-*.jsonl.gz"))

    # The rerun rebuilds the incremental models from history (`--full-refresh`: the run is
    # triggered anew with the param) and still sends nothing twice.
    second = _run(home, sample_dir, DATE, "--full-refresh")
    assert second.returncode == 0, second.stdout[-3000:]
    assert "emails exported this run: 0" in second.stdout
    dbt_args = json.loads((home / "dbt" / "target" / "run_results.json").read_text())["args"]
    assert dbt_args.get("full_refresh") is True
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert db.execute("select count(*) from send_ledger").fetchall()[0][0] == exported
    assert db.execute("select sum(rows_loaded) from load_batches").fetchall()[0][0] == raw_rows
    assert db.execute("select count(*) from customer_profiles").fetchall()[0][0] == profiles
    db.close()
    assert sorted((home / "exports").rglob("batch-*.jsonl.gz")) == files


def test_failed_gate_stops_before_render_and_export(airflow_home, tmp_path):
    """A CRM export whose first names say "NULL" must never reach the ESP."""
    drop = tmp_path / "drop"
    generate(drop, contacts=150, seed=11)
    path = drop / "crm" / "contacts.csv"
    rows = list(csv.reader(path.open(newline="")))
    for row in rows[1:]:
        row[2] = "NULL"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    home = airflow_home / "bad"
    result = _run(home, drop)
    assert result.returncode == 1
    log = next((home / "logs").glob("run-*.log")).read_text()
    assert "expect_column_values_to_not_match_regex on customer_profiles.first_name" in log
    assert not (home / "exports").exists() or not any((home / "exports").rglob("*.gz"))
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    tables = {
        r[0] for r in db.execute("select table_name from information_schema.tables").fetchall()
    }
    assert "send_ledger" not in tables


def test_a_failing_task_is_reported_at_once_not_after_its_retries(airflow_home, tmp_path):
    """`profilecast run` is a person waiting: the first failure ends the run (no retry with
    backoff) and is printed with its error and the log's path."""
    drop = tmp_path / "no-crm"
    generate(drop, contacts=50, seed=3)
    import shutil

    shutil.rmtree(drop / "crm")  # the CRM is a required source
    home = airflow_home / "failfast"
    result = _run(home, drop)
    assert result.returncode == 1
    assert "task extract_crm failed: SourceError: source 'crm' has no files" in result.stderr
    assert "full log:" in result.stderr
    log = next((home / "logs").glob("run-*.log")).read_text()
    assert "up_for_retry" not in log.lower() and "AirflowFailException" in log


def test_a_missing_pool_is_named_with_its_fix(airflow_home, tmp_path):
    """A deployment without the warehouse pool: the watchdog task fails with the fix, and
    `profilecast run` stops instead of waiting forever."""
    from profilecast.config import load_settings
    from profilecast.local_airflow import airflow_bin, ensure_airflow

    drop = tmp_path / "drop"
    generate(drop, contacts=40, seed=5)
    home = airflow_home / "nopool"
    env = clean_env(PROFILECAST_HOME=str(home), PROFILECAST_SOURCES=str(drop),
                    PROFILECAST_POOL_WAIT_SECONDS="5")  # fmt: skip

    with environment(PROFILECAST_HOME=str(home)):
        af_env = ensure_airflow(load_settings())
    subprocess.run([airflow_bin(), "pools", "delete", "profilecast_warehouse"], env=af_env,
                   check=True, capture_output=True)  # fmt: skip
    result = subprocess.run([venv_bin("profilecast"), "run", "--date", DATE], env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 1
    assert "which this Airflow does not have: run `airflow pools import" in result.stderr
    log = next((home / "logs").glob("run-*.log")).read_text()
    assert "warehouse_pool_watch" in log
    assert "no 'profilecast_warehouse' pool" in log and "pools import dags/pools.json" in log

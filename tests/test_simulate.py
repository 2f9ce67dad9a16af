"""Three days in a row under a real Airflow scheduler (scheduler, DAG processor, triggerer,
API server, LocalExecutor), with a rerun and a backfill, every invariant checked each day."""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from .conftest import clean_env, venv_bin

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(1800)  # five DAG runs under a real scheduler: slow machines need longer
def test_three_days_rerun_and_backfill_under_the_scheduler(tmp_path):
    home = tmp_path / "sim"
    result = subprocess.run(
        [venv_bin("profilecast"), "simulate", "--contacts", "250", "--days", "3", "--seed", "5",
         "--home", str(home)],
        # Each day's web and ESP events arrive as a second file beside the history: with no
        # size floor, extraction reads them in worker processes under the scheduler, and the
        # export makes its batches in worker processes too.
        env=clean_env(PROFILECAST_HOME=str(tmp_path / "unused"),
                      PROFILECAST_EXTRACT_PARALLEL_MIN_MB="0",
                      PROFILECAST_EXPORT_PARALLEL_MIN_MB="0"),  # fmt: skip
        capture_output=True, text=True, timeout=1700,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "simulation PASSED" in out
    table = [line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(table) == 10 and all(line.startswith("PASS ") for line in table), "\n".join(table)
    for label in (
        "day 1 2026-11-01",
        "day 3 2026-11-03",
        "rerun 2026-11-02",
        "backfill 2026-11-01",
    ):
        assert label in out
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        days = db.execute("select count(distinct run_date) from send_ledger").fetchall()[0][0]
        batches = db.execute(
            "select count(distinct batch_id) from load_batches where source = 'crm'"
        ).fetchall()[0][0]
    finally:
        db.close()
    assert days >= 2 and batches == 3 * 3  # contacts, companies, tickets for each day
    # The scheduler, not `dags test`, ran the tasks: the executor wrote per-attempt task logs.
    logs = list((home / "airflow" / "logs").rglob("attempt=*.log"))
    assert any("run_id=simulated__2026-11-03" in str(p) for p in logs)
    manifests = list((home / "exports").rglob("manifest.json"))
    assert manifests and all(json.loads(p.read_text())["batches"] for p in manifests)

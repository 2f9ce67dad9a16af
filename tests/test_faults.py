"""SIGKILL at each task in turn, each killed task retried, then a rerun of the interval: the
warehouse tables, the send ledger, the export files and their manifests equal those of an
uninterrupted run."""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from profilecast_dev.generate import generate

from .conftest import clean_env
from .fault_driver import TASKS

pytestmark = pytest.mark.e2e
DS = "2026-10-31"
DRIVER = Path(__file__).with_name("fault_driver.py")


def _run(home: Path, sources: Path, kill: str | None = None, delay: float = 1.0,
         start_at: str | None = None):  # fmt: skip
    args = [sys.executable, str(DRIVER), DS] + ([kill, str(delay)] if kill else [])
    args += [start_at] if start_at else []
    env = clean_env(PROFILECAST_HOME=str(home), PROFILECAST_SOURCES=str(sources),
                    PROFILECAST_RENDER_SHARDS="2")  # fmt: skip
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def _rows(db, sql):
    return sorted(tuple(str(v) for v in row) for row in db.execute(sql).fetchall())


def snapshot(home: Path) -> dict:
    """What a run leaves behind, less wall-clock stamps."""
    db = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        raw = {t: db.execute(f"select count(*) from raw.{t}").fetchall()[0][0]
               for (t,) in db.execute("select table_name from information_schema.tables "
                                      "where table_schema = 'raw'").fetchall()}  # fmt: skip
        snap = {
            "raw": raw,
            "load_batches": _rows(db, "select batch_id, rows_read, rows_loaded, rows_quarantined, "
                                      "rows_outside_window from load_batches"),
            "quarantine": _rows(db, "select batch_id, reason, fingerprint from quarantine"),
            "profiles": _rows(db, "select * exclude (profile_as_of) from customer_profiles"),
            "identity": _rows(db, "select * from customer_identity_map"),
            "segments": _rows(db, "select customer_id, segment from customer_segments"),
            "audiences": _rows(db, "select campaign_id, customer_id, message_key from campaign_audiences"),
            "ledger": _rows(db, "select message_key, campaign_id, customer_id, run_date from send_ledger"),
            "batches": _rows(db, "select campaign_id, run_date, batch_file, messages, sha256 "
                                 "from export_batches"),
        }  # fmt: skip
    finally:
        db.close()
    files = {}
    for path in sorted((home / "exports").rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            files[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    snap["files"] = files
    manifests = {}
    for path in sorted((home / "exports").rglob("manifest.json")):
        m = json.loads(path.read_text())
        manifests[str(path.relative_to(home))] = (
            m["total_rows"],
            [(b["file"], b["rows"], b["sha256"]) for b in m["batches"]],
        )
    snap["manifests"] = manifests
    keys = [json.loads(line).get("message_key") for p in (home / "exports").rglob("*.jsonl.gz")
            for line in gzip.decompress(p.read_bytes()).decode().splitlines()]  # fmt: skip
    snap["batch_lines"] = len(keys)
    return snap


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    sources = root / "sources"
    generate(sources, contacts=150, seed=13)
    baseline = root / "baseline"
    done = _run(baseline, sources)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, sources, snapshot(baseline)


def test_sigkill_at_each_task_in_turn_then_rerun_equals_an_uninterrupted_run(world):
    """Run k dies by SIGKILL in task k, the first time task k ever runs on this warehouse.
    It begins, as Airflow's retry does, with task k-1, which run k-1 died in, over what that
    kill left (and with the task before it when task k-1 reads its result). The final,
    uninterrupted rerun of the whole interval must leave exactly what a run that never died
    leaves."""
    root, sources, expected = world
    home = root / "killed"
    for k, task in enumerate(TASKS):
        retried = TASKS[k - 1] if k else None
        killed = _run(home, sources, kill=task, delay=0.5, start_at=retried)
        assert killed.returncode == -signal.SIGKILL, (task, killed.stderr[-3000:])
        assert f"TASK {task} start" in killed.stdout, task
        if retried:
            assert f"TASK {retried} start" in killed.stdout, retried
    rerun = _run(home, sources)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    got = snapshot(home)
    for key in expected:
        assert got[key] == expected[key], f"{key} differs"
    assert expected["ledger"] and expected["manifests"] and expected["files"]

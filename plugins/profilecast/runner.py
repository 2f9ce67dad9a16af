"""``profilecast run``: one data interval through a real Airflow, held against a second run
of the same interval, reported in words (the first failing task and its error, or the run's
summary)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from profilecast.config import DAG_ID, Settings, load_settings
from profilecast.interval import Interval, utc


def active_runs_for(settings: Settings, interval: Interval) -> list[tuple[str, str, str]]:
    """(run_id, run_type, state) of queued or running DAG runs over ``interval`` in the
    project's Airflow metadata (empty when there is none yet)."""
    import sqlite3

    db = settings.airflow_home / "airflow.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute(
            "select run_id, run_type, state, data_interval_start from dag_run "
            "where dag_id = ? and state in ('queued', 'running')",
            (DAG_ID,),
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()
    return [
        (run_id, run_type, state)
        for run_id, run_type, state, start in rows
        if start and utc(start) == interval.start
    ]


@contextmanager
def interval_lock(settings: Settings, interval: Interval) -> Iterator[None]:
    """Hold the interval for one person's run; a second one is refused with who holds it."""
    import fcntl

    folder = settings.airflow_home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DAG_ID}-{interval.ds}.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise IntervalBusy(
                f"interval {interval.ds} is held by {holder}; wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"`profilecast run` pid {os.getpid()} since {datetime.now():%Y-%m-%d %H:%M:%S}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


class IntervalBusy(RuntimeError):
    """Another run holds the data interval."""


def first_failure(log_text: str) -> str | None:
    """The first task failure reported by the DAG's tasks in a run's logs (plain lines, or
    the JSON lines the executor's task logs hold)."""
    for line in log_text.splitlines():
        if "PROFILECAST_TASK_FAILED" not in line:
            continue
        try:
            line = str(json.loads(line).get("event", line))
        except (ValueError, AttributeError):
            pass
        m = re.search(r"PROFILECAST_TASK_FAILED task_id=(\S+) error=(.*)", line)
        if m:
            return f"task {m.group(1)} failed: {m.group(2).strip()}"
    return None


def run(interval: Interval, full_refresh: bool = False) -> int:
    """``profilecast run``: one data interval, refused while another run holds it.
    ``full_refresh`` rebuilds the incremental models from all history (the DAG's param)."""
    from profilecast.local_airflow import ensure_airflow

    settings = load_settings()
    env = ensure_airflow(settings)
    busy = active_runs_for(settings, interval)
    if busy:
        run_id, run_type, state = busy[0]
        print(f"interval {interval.ds} is held by DAG run {run_id} ({run_type}, {state}); "
              "wait for it to finish, then run again", file=sys.stderr)  # fmt: skip
        return 2
    try:
        with interval_lock(settings, interval):
            return _run_locked(settings, env, interval, full_refresh)
    except IntervalBusy as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _run_locked(
    settings: Settings, env: dict[str, str], interval: Interval, full_refresh: bool = False
) -> int:
    """Run the interval as users run Airflow: a scheduler, a DAG processor, a triggerer and
    an API server (the user's metadata database and executor, or SQLite and the
    LocalExecutor), with the run triggered through the REST API. The conf makes a failing
    task fail at once (a person is waiting), not after its retries. A run that already
    exists for the interval is cleared and run again, unless the params change (a full
    refresh): clearing keeps a run's conf, so that run is deleted and triggered anew."""
    from profilecast.local_airflow import AirflowError, LocalAirflow

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_id = f"manual__profilecast_{interval.ds}_{stamp}"
    log_path = settings.home / "logs" / f"run-{interval.ds}-{stamp}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    executor = env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    print(f"running DAG {DAG_ID} for {interval.ds} through Airflow's scheduler and "
          f"{executor} (log: {log_path}) ...", flush=True)  # fmt: skip
    start = time.perf_counter()
    text, state = "", "failed"
    with LocalAirflow(settings) as af:
        try:
            conf = {"fail_fast": True, **({"full_refresh": True} if full_refresh else {})}
            existing = af.run_for(interval)
            if existing and full_refresh:
                af.api("DELETE", f"/dags/{DAG_ID}/dagRuns/{existing}")
                existing = None
            if existing:  # Airflow keeps one run per logical date: run it again
                run_id = existing
                af.clear(run_id)
            else:
                af.trigger(interval, conf, run_id=run_id)
            state = af.wait(run_id, fail_fast=True).state
        except AirflowError as exc:
            print(str(exc), file=sys.stderr)
        text = af.task_logs(run_id)
    log_path.write_text(text)
    elapsed = time.perf_counter() - start
    summary_path = settings.reports_dir / interval.ds / "summary.json"
    if state != "success":
        print("\n".join(text.splitlines()[-40:]))
        reason = first_failure(text)
        if reason:
            print(reason, file=sys.stderr)
        print(f"DAG run FAILED after {elapsed:.0f}s; full log: {log_path}", file=sys.stderr)
        return 1
    if not summary_path.exists():
        print(f"DAG run finished but wrote no summary; see {log_path}", file=sys.stderr)
        return 1
    print_summary(json.loads(summary_path.read_text()), settings)
    print(f"\nDAG run succeeded in {elapsed:.0f}s")
    return 0


def print_summary(s: dict, settings: Settings) -> None:
    print(f"\n=== profilecast run {s['run_date']} ===")
    print("rows per source (read = loaded + quarantined):")
    for r in s.get("sources", []):
        print(
            f"  {r['source']:8s} {r['entity']:14s} read {r['rows_read']:>9,}  "
            f"loaded {r['rows_loaded']:>9,}  quarantined {r['rows_quarantined']:>6,}"
        )
    for reason, n in s.get("quarantine_reasons", {}).items():
        print(f"    quarantine: {n:>6,} x {reason}")
    print(f"profiles: {s['profiles']:,} ({s['emailable_profiles']:,} emailable)")
    print("segments:")
    for seg, v in s.get("segments", {}).items():
        chg = "" if v["change_pct"] is None else f" ({v['change_pct']:+.1f}% vs previous run)"
        print(f"  {seg:24s} {v['size']:>8,}{chg}")
    print("emails rendered:", ", ".join(f"{k}={v:,}" for k, v in s.get("rendered", {}).items()))
    print(f"emails exported this run: {s.get('exported_this_run', 0):,} "
          f"(all runs for this date: {s.get('exported_total_for_date', 0):,})")  # fmt: skip
    for e in s.get("exports", []):
        if e.get("exported"):
            print(
                f"  {e['campaign_id']:18s} {e['exported']:>7,} in {e['batches']} batch(es) -> {e['location']}"
            )
    print(f"quality report: {s.get('quality_report')}")
    if s.get("data_docs"):
        print(f"GX Data Docs: {s['data_docs']}")
    print(f"warehouse: {settings.warehouse_path}")

"""The ``profilecast`` command line."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from profilecast.config import Settings, load_settings
from profilecast.interval import Interval, utc

DAG_ID = "customer_profiles"
POOL = "profilecast_warehouse"


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment Airflow runs with: the project's home, DAGs and SQLite metadata."""
    env = dict(os.environ)
    home = settings.airflow_home
    # Airflow starts its components as `airflow ...` from PATH (standalone, the executor):
    # put this interpreter's scripts first, so nothing needs an activated virtualenv.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep)
                                              if p and p != bin_dir)])  # fmt: skip
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "PROFILECAST_HOME": str(settings.home),
            "PROFILECAST_SOURCES": settings.sources,
            "PROFILECAST_EXPORT_URL": settings.export_url,
            "PROFILECAST_DBT_TARGET": settings.dbt_target,
            "GX_ANALYTICS_ENABLED": "false",
            "NO_COLOR": "1",
        }
    )
    return env


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def ensure_airflow(settings: Settings) -> dict[str, str]:
    """Initialise Airflow's SQLite metadata and the warehouse pool (once)."""
    env = airflow_env(settings)
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    marker = settings.airflow_home / ".profilecast-initialised"
    if not marker.exists():
        subprocess.run([_airflow_bin(), "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(
            [_airflow_bin(), "pools", "set", POOL, "1", "DuckDB allows one writing process"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        marker.write_text(datetime.now().isoformat())
    return env


def cmd_generate(args: argparse.Namespace) -> int:
    from profilecast.generate import generate, print_progress

    start = time.perf_counter()
    counts = generate(
        Path(args.out),
        contacts=args.contacts,
        seed=args.seed,
        days=args.days,
        end_date=date.fromisoformat(args.end_date),
        progress=None if args.quiet else print_progress,
        workers=args.workers,
        days_of_change=args.days_of_change,
    )
    elapsed = time.perf_counter() - start
    for rel, n in sorted(counts.items()):
        print(f"  {rel:32s} {n:>12,}")
    print(f"generated {args.contacts:,} contacts into {args.out} in {elapsed:.1f}s")
    return 0


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
    """The first task failure reported by the DAG's tasks in a run log."""
    m = re.search(r"PROFILECAST_TASK_FAILED task_id=(\S+) error=(.*)", log_text)
    return f"task {m.group(1)} failed: {m.group(2).strip()}" if m else None


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    interval = Interval.day(args.date)
    env = ensure_airflow(settings)
    busy = active_runs_for(settings, interval)
    if busy:
        run_id, run_type, state = busy[0]
        print(f"interval {interval.ds} is held by DAG run {run_id} ({run_type}, {state}); "
              "wait for it to finish, then run again", file=sys.stderr)  # fmt: skip
        return 2
    try:
        with interval_lock(settings, interval):
            return _run_locked(settings, env, interval)
    except IntervalBusy as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _run_locked(settings: Settings, env: dict[str, str], interval: Interval) -> int:
    # A manual run's data interval is the last complete one before its logical date, so the
    # interval [date, date + 1 day) is run with the logical date date + 1 day. The conf makes
    # a failing task fail at once (a person is waiting), not after its retries.
    logical = interval.end.isoformat()
    log_path = settings.home / "logs" / f"dags-test-{interval.ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"running DAG {DAG_ID} for {interval.ds} through Airflow (log: {log_path}) ...")
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(
            [_airflow_bin(), "dags", "test", DAG_ID, logical,
             "--conf", json.dumps({"fail_fast": True})],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    elapsed = time.perf_counter() - start
    text = log_path.read_text(errors="replace")
    finished = re.search(r"DagRun Finished:.*?state=(\w+)", text)
    failed = proc.returncode != 0 or not finished or finished.group(1) != "success"
    summary_path = settings.reports_dir / interval.ds / "summary.json"
    if failed:
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


def cmd_validate(args: argparse.Namespace) -> int:
    from profilecast.quality import QualityGateError, run_gate
    from profilecast.warehouse import connect

    settings = load_settings()
    ds = args.date
    as_of = Interval.day(ds).as_of
    report_dir = settings.reports_dir / ds / "quality"
    try:
        with connect(settings, read_only=True) as wh:
            outcomes = run_gate(
                wh, settings.expectations_dir, ds, as_of, report_dir,
                docs_root=settings.home / "gx",
            )  # fmt: skip
    except QualityGateError as exc:
        print(str(exc), file=sys.stderr)
        print(f"report: {report_dir / 'index.html'}", file=sys.stderr)
        return 1
    warnings = [o for o in outcomes if not o.success]
    for o in warnings:
        print(o.message())
    print(f"quality gate passed: {len(outcomes)} expectations, {len(warnings)} warning(s)")
    print(f"report: {report_dir / 'index.html'}")
    return 0


def cmd_segments(args: argparse.Namespace) -> int:
    from profilecast.warehouse import connect

    settings = load_settings()
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists("segment_runs"):
            print("no segment runs yet: run `profilecast run --date ...` first")
            return 1
        rows = wh.query(
            "select segment, size, previous_size, change_pct, kind, owner, is_retired "
            "from segment_runs where run_date = (select max(run_date) from segment_runs) "
            "order by segment"
        )
    print(f"{'segment':24s} {'size':>8s} {'previous':>9s} {'change':>8s}  kind         owner")
    for seg, size, prev, chg, kind, owner, retired in rows:
        chg_s = "" if chg is None else f"{chg:+.1f}%"
        prev_s = "" if prev is None else f"{int(prev):,}"
        label = f"{seg} (retired)" if retired else seg
        print(
            f"{label:24s} {int(size):>8,} {prev_s:>9s} {chg_s:>8s}  {kind or '':12s} {owner or ''}"
        )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from profilecast.segments import explain, segments_from_manifest
    from profilecast.warehouse import connect, dbt_manifest

    settings = load_settings()
    try:
        segments = segments_from_manifest(dbt_manifest(settings))
    except FileNotFoundError:
        print("no dbt manifest yet: run `profilecast run --date ...` first", file=sys.stderr)
        return 1
    with connect(settings, read_only=True) as wh:
        lines = explain(wh, segments, args.customer_id)
    print("\n".join(lines))
    return 1 if lines[0].startswith("no profile") else 0


def cmd_preview(args: argparse.Namespace) -> int:
    from profilecast.render import load_campaigns, write_preview
    from profilecast.warehouse import connect

    settings = load_settings()
    campaigns = {c.campaign_id: c for c in load_campaigns(settings.campaigns_dir)}
    if args.campaign not in campaigns:
        print(f"unknown campaign {args.campaign!r}; known: {', '.join(sorted(campaigns))}",
              file=sys.stderr)  # fmt: skip
        return 1
    out = Path(args.out) if args.out else settings.home / "preview" / args.campaign
    with connect(settings, read_only=True) as wh:
        index = write_preview(wh, campaigns[args.campaign], out, args.n)
    print(f"preview: {index}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from profilecast.simulate import render_table, simulate

    base = load_settings()
    home = Path(args.home).resolve() if args.home else base.home / "simulation"
    os.environ["PROFILECAST_HOME"] = str(home)
    os.environ["PROFILECAST_SOURCES"] = str(home / "sources")
    os.environ.pop("PROFILECAST_EXPORT_URL", None)
    settings = load_settings()
    first = date.fromisoformat(args.start_date)
    print(f"simulating {args.days} day(s) from {first} with {args.contacts:,} contacts in {home}")
    start = time.perf_counter()
    steps = simulate(settings, args.contacts, args.days, args.seed, first)
    print()
    print(render_table(steps))
    ok = (
        bool(steps)
        and all(s.ok for s in steps)
        and len([s for s in steps if s.label.startswith("day")]) == args.days
    )
    print(f"\nsimulation {'PASSED' if ok else 'FAILED'} in {time.perf_counter() - start:.0f}s; "
          f"Airflow logs: {settings.home / 'logs'}")  # fmt: skip
    return 0 if ok else 1


def cmd_airflow_standalone(args: argparse.Namespace) -> int:
    settings = load_settings()
    env = ensure_airflow(settings)
    print(f"AIRFLOW_HOME={settings.airflow_home}; the admin password is printed below")
    return subprocess.call([_airflow_bin(), "standalone"], env=env)


def build_parser() -> argparse.ArgumentParser:
    from profilecast.generate import DEFAULT_DAYS, DEFAULT_END_DATE

    p = argparse.ArgumentParser(prog="profilecast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a deterministic sample of all four sources")
    g.add_argument("--contacts", type=int, default=3000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--days", type=int, default=DEFAULT_DAYS)
    g.add_argument("--end-date", default=DEFAULT_END_DATE.isoformat(),
                   help=f"last day of history (default {DEFAULT_END_DATE})")  # fmt: skip
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=1, help="processes (files become part folders)")
    g.add_argument("--quiet", action="store_true")
    g.add_argument("--days-of-change", type=int, default=0,
                   help="also write one increment per day after --end-date (increments/<day>/)")  # fmt: skip
    g.set_defaults(func=cmd_generate)
    sim = sub.add_parser(
        "simulate", help="run consecutive daily intervals under a real scheduler and check them"
    )
    sim.add_argument("--contacts", type=int, default=3000)
    sim.add_argument("--days", type=int, default=5)
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--start-date", default="2026-11-01",
                     help="the first simulated interval (history ends the day before)")  # fmt: skip
    sim.add_argument("--home", default=None,
                     help="PROFILECAST_HOME of the simulation (default: $PROFILECAST_HOME/simulation; emptied first)")  # fmt: skip
    sim.set_defaults(func=cmd_simulate)
    r = sub.add_parser("run", help="run the customer_profiles DAG for one data interval")
    r.add_argument("--date", required=True, help="the data interval's start, YYYY-MM-DD")
    r.set_defaults(func=cmd_run)
    v = sub.add_parser("validate", help="run the quality gate against the current warehouse")
    v.add_argument("--date", required=True, help="the run date whose audiences to check")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("segments", help="list segments with sizes and change since last run")
    s.set_defaults(func=cmd_segments)
    e = sub.add_parser("explain", help="why a customer is in or out of each segment")
    e.add_argument("customer_id")
    e.set_defaults(func=cmd_explain)
    pv = sub.add_parser("preview", help="render sample messages of a campaign with an index page")
    pv.add_argument("--campaign", required=True)
    pv.add_argument("--n", type=int, default=20)
    pv.add_argument("--out", default=None)
    pv.set_defaults(func=cmd_preview)
    a = sub.add_parser("airflow-standalone", help="start `airflow standalone` on the project")
    a.set_defaults(func=cmd_airflow_standalone)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

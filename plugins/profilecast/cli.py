"""The ``profilecast`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from profilecast import pipeline
from profilecast.airflow_setup import write_local_settings
from profilecast.config import (
    DAG_ID,
    EVENTS_DAG_ID,
    FLOWS_DAG_ID,
    load_settings,
    set_process_env,
)
from profilecast.flows import service as flow_service
from profilecast.interval import Interval
from profilecast.local_airflow import LocalAirflow, airflow_bin, ensure_airflow


def _dev(module: str) -> Any:
    """A module of the development package (sample data, simulation), with a clear error
    when only the production package is installed."""
    import importlib

    try:
        return importlib.import_module(f"profilecast_dev.{module}")
    except ModuleNotFoundError as exc:
        raise SystemExit(
            "this command needs profilecast's development package: "
            "`make install`, or `pip install -e dev/` in the repository"
        ) from exc


def cmd_generate(args: argparse.Namespace) -> int:
    gen = _dev("generate")

    start = time.perf_counter()
    counts = gen.generate(
        Path(args.out),
        contacts=args.contacts,
        seed=args.seed,
        days=gen.DEFAULT_DAYS if args.days is None else args.days,
        end_date=date.fromisoformat(args.end_date) if args.end_date else gen.DEFAULT_END_DATE,
        progress=None if args.quiet else gen.print_progress,
        workers=args.workers,
        days_of_change=args.days_of_change,
    )
    elapsed = time.perf_counter() - start
    for rel, n in sorted(counts.items()):
        print(f"  {rel:32s} {n:>12,}")
    print(f"generated {args.contacts:,} contacts into {args.out} in {elapsed:.1f}s")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from profilecast.runner import run

    return run(Interval.day(args.date), full_refresh=args.full_refresh)


def cmd_validate(args: argparse.Namespace) -> int:
    settings = load_settings()
    report_dir = settings.reports_dir / args.date / "quality"
    try:
        outcomes = pipeline.validate(args.date, settings)
    except pipeline.QualityGateError as exc:
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
    rows = pipeline.latest_segment_runs(load_settings())
    if rows is None:
        print("no segment runs yet: run `profilecast run --date ...` first")
        return 1
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
    settings = load_settings()
    flows = flow_service.explain_flows(args.customer_id, settings)
    try:
        lines = pipeline.explain(args.customer_id, settings)
    except FileNotFoundError:
        lines = ["no dbt manifest yet: run `profilecast run --date ...` for segments"]
    print("\n".join(lines + flows))
    in_segments = not lines[0].startswith(("no profile", "no dbt"))
    in_flows = flows[0] == "flows:"
    return 0 if in_segments or in_flows else 1


def cmd_flows(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "advance":
        print(json.dumps(flow_service.advance_flows(settings), indent=2))
        return 0
    report = flow_service.flows_report(settings)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for f in report:
        exits = ", ".join(f"{r} {n}" for r, n in sorted(f["exited"].items())) or "none"
        print(f"{f['flow_id']}  ({f['kind']}, topic {f['topic']}, entry {'/'.join(f['entry'])})")
        for s in f["steps"]:
            print(f"  {s['step']:<20} waiting {s['waiting']:>6}   sent {s['sent']:>6}")
        print(f"  completed {f['completed']}; exited: {exits}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from profilecast.experiments.report import text_table

    settings = load_settings()
    summaries = pipeline.results(args.campaign, args.until, settings)
    if args.json:
        print(json.dumps(summaries if not args.campaign else summaries[0], indent=2, default=str))
        return 0
    for s in summaries:
        if not s["arms"]:
            print(
                f"{s['campaign_id']}: no results yet (a send's events and orders arrive with "
                "the next day's run)"
            )
            continue
        print(text_table(s))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    settings = load_settings()
    out = Path(args.out) if args.out else settings.home / "preview" / args.campaign
    try:
        index = pipeline.preview(args.campaign, out, args.n, settings)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    print(f"preview: {index}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    sim = _dev("simulate")

    base = load_settings()
    home = Path(args.home).resolve() if args.home else base.home / "simulation"
    set_process_env(
        PROFILECAST_HOME=str(home),
        PROFILECAST_SOURCES=str(home / "sources"),
        PROFILECAST_EXPORT_URL=None,
    )
    settings = load_settings()
    first = date.fromisoformat(args.start_date)
    print(f"simulating {args.days} day(s) from {first} with {args.contacts:,} contacts in {home}")
    start = time.perf_counter()
    steps = sim.simulate(settings, args.contacts, args.days, args.seed, first)
    print()
    print(sim.render_table(steps))
    ok = (
        bool(steps)
        and all(s.ok for s in steps)
        and len([s for s in steps if s.label.startswith("day")]) == args.days
    )
    print(f"\nsimulation {'PASSED' if ok else 'FAILED'} in {time.perf_counter() - start:.0f}s; "
          f"Airflow logs: {settings.home / 'logs'}")  # fmt: skip
    return 0 if ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(f"collector on http://{args.host}:{args.port} (journal: {settings.sources}; "
          f"fresh facts: {settings.fresh_path}); Ctrl-C stops it", flush=True)  # fmt: skip
    pipeline.serve(args.host, args.port, settings)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """The collector and Airflow (scheduler, DAG processor, triggerer, API server) on the
    embedded default, until Ctrl-C or SIGTERM."""
    import signal

    settings = load_settings()
    unpause = tuple(d for d in args.unpause.split(",") if d)
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    airflow = LocalAirflow(settings, port=args.airflow_port, scheduled=True)
    collector = subprocess.Popen(
        [sys.executable, "-m", "profilecast.cli", "serve", "--host", args.host,
         "--port", str(args.port)],
        env=airflow.env, start_new_session=True,
    )  # fmt: skip
    try:
        airflow.start(unpause=unpause)
        print(f"collector   http://{args.host}:{args.port}  (POST /v1/track, /healthz)", flush=True)
        print(f"airflow     http://127.0.0.1:{airflow.port}  (API and UI; logs in "
              f"{airflow.log_dir})", flush=True)  # fmt: skip
        print(f"unpaused    {', '.join(unpause) or 'nothing'}; Ctrl-C stops everything", flush=True)
        while not stopping and collector.poll() is None:
            time.sleep(0.5)
    finally:
        if collector.poll() is None:
            collector.terminate()
            collector.wait(timeout=30)
        airflow.stop()
    print("stopped", flush=True)
    return 0 if stopping else 1


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a person (consent.erasure): suppressed at once, removed now or by the next run."""
    from profilecast.consent.erasure import forget

    return forget(args.email, args.apply_pending, args.requested_by)


def cmd_cluster(args: argparse.Namespace) -> int:
    """One interval on a loopback cluster (development tool: moto, the machine's servers)."""
    home = Path(args.home or load_settings().home / "cluster").resolve()
    return int(_dev("cluster").main(args.contacts, args.date, home, args.workers))


def cmd_airflow_standalone(args: argparse.Namespace) -> int:
    settings = load_settings()
    env = ensure_airflow(settings)
    write_local_settings(settings.airflow_home)  # its scheduler forks tasks with them loaded
    print(f"AIRFLOW_HOME={settings.airflow_home}; the admin password is printed below")
    return subprocess.call([airflow_bin(), "standalone"], env=env)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="profilecast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a deterministic sample of all four sources")
    g.add_argument("--contacts", type=int, default=3000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--days", type=int, default=None, help="days of history (default 180)")
    g.add_argument("--end-date", default=None, help="last day of history (default 2026-10-31)")
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
    r.add_argument("--full-refresh", action="store_true",
                   help="rebuild the incremental models from all history (after changing a "
                   "model's SQL); customer ids and history tables are kept")  # fmt: skip
    r.set_defaults(func=cmd_run)
    v = sub.add_parser("validate", help="run the quality gate against the current warehouse")
    v.add_argument("--date", required=True, help="the run date whose audiences to check")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("segments", help="list segments with sizes and change since last run")
    s.set_defaults(func=cmd_segments)
    e = sub.add_parser("explain", help="why a customer is in or out of each segment and flow step")
    e.add_argument("customer_id")
    e.set_defaults(func=cmd_explain)
    fl = sub.add_parser("flows", help="list triggered flows with counts per step (or advance them)")
    fl.add_argument("action", nargs="?", choices=["list", "advance"], default="list")
    fl.add_argument("--json", action="store_true")
    fl.set_defaults(func=cmd_flows)
    rs = sub.add_parser("results", help="a campaign's results: funnel, variants, lift vs holdout")
    rs.add_argument("campaign", nargs="?", help="campaign or flow id (default: every one)")
    rs.add_argument("--until", help="send dates up to this one (YYYY-MM-DD)")
    rs.add_argument("--json", action="store_true", help="machine-readable output")
    rs.set_defaults(func=cmd_results)
    pv = sub.add_parser("preview", help="render sample messages of a campaign with an index page")
    pv.add_argument("--campaign", required=True)
    pv.add_argument("--n", type=int, default=20)
    pv.add_argument("--out", default=None)
    pv.set_defaults(func=cmd_preview)
    sv = sub.add_parser("serve", help="run the event collector, ESP webhooks and profile API")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8088)
    sv.set_defaults(func=cmd_serve)
    up = sub.add_parser("up", help="start the collector and Airflow (scheduler, triggerer, API)")
    up.add_argument("--host", default="127.0.0.1", help="the collector's address")
    up.add_argument("--port", type=int, default=8088, help="the collector's port")
    up.add_argument("--airflow-port", type=int, default=8080)
    up.add_argument("--unpause", default=f"{DAG_ID},{EVENTS_DAG_ID},{FLOWS_DAG_ID}",
                    help="comma-separated DAGs to unpause (default: all three)")  # fmt: skip
    up.set_defaults(func=cmd_up)
    fg = sub.add_parser("forget", help="erase a person everywhere and keep them suppressed")
    fg.add_argument("--email", help="the person's address (omit with --apply-pending)")
    fg.add_argument("--apply-pending", action="store_true",
                    help="carry out requests recorded earlier (the API's, or a busy warehouse's)")  # fmt: skip
    fg.add_argument("--requested-by", default=None, help="who asked (the audit row)")
    fg.set_defaults(func=cmd_forget)
    cl = sub.add_parser("cluster", help="run one interval on a loopback Celery cluster (PostgreSQL, "
                        "Redis, two workers, S3) and print which worker ran each task")  # fmt: skip
    cl.add_argument("--contacts", type=int, default=2000)
    cl.add_argument("--date", default="2026-10-31")
    cl.add_argument("--workers", type=int, default=2)
    cl.add_argument("--home", default=None, help="default: $PROFILECAST_HOME/cluster")
    cl.set_defaults(func=cmd_cluster)
    a = sub.add_parser("airflow-standalone", help="start `airflow standalone` on the project")
    a.set_defaults(func=cmd_airflow_standalone)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

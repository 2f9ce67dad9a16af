"""`make bench`: the real pipeline at a given size, stage by stage, each against its floor.

    .venv/bin/python benchmarks/bench.py --contacts 1000000 --out /tmp/pc-bench

A generated world (history, then one day of changes) is run as the DAG runs it, without
Airflow: day 1 is the full run on a new warehouse (extract all history, raw load, dbt build
with the segment tables, audiences, quality gate, render, export); day 2 is the next
interval, incremental, with that day's increment. Then day 2's dbt build is repeated with
``--full-refresh`` on the same data.

Per stage: wall time, CPU time (this process and its children: dbt runs as one), peak
memory (resident set of the whole process tree, sampled every 50 ms) and rows per second.
Each stage's floor is measured in the same run, on the same machine and data:

* extract: DuckDB reading the same drop files (every column) into Parquet;
* dbt build: one hand-written DuckDB query computing per-person aggregates (orders,
  revenue, opens, clicks, page views, sessions' last activity) from the raw tables;
* render: a bare Jinja2 loop over the same compiled templates and profile rows, on one
  core (the stage itself runs its PROFILECAST_RENDER_SHARDS shards, one per core by
  default, in parallel processes, as the DAG's mapped render tasks run);
* export: gzip (the same level) of the same bytes, written to a file.

The results go to ``bench.json`` and ``bench.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

DAY1 = date(2026, 11, 1)


class PeakMemory:
    """Peak resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


class Recorder:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.models: dict[str, list[tuple[str, float]]] = {}

    @contextmanager
    def stage(self, day: str, name: str, kind: str = "stage"):
        """Time a block; the block sets ``rec["rows"]`` (what it processed)."""
        rec: dict[str, Any] = {"day": day, "stage": name, "kind": kind, "rows": None}
        cpu0, t0 = os.times(), time.perf_counter()
        with PeakMemory() as mem:
            yield rec
        wall, cpu1 = time.perf_counter() - t0, os.times()
        cpu = sum(cpu1[:4]) - sum(cpu0[:4])  # user + system, self + waited children
        rows = rec["rows"]
        rec.update(wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                   peak_mib=round(mem.peak / 2**20), rows_per_s=round(rows / wall) if rows else None)  # fmt: skip
        self.rows.append(rec)
        print(f"{day:6s} {name:22s} {wall:8.1f}s cpu {cpu:8.1f}s peak {mem.peak / 2**20:7.0f} MiB"
              f" rows {rows}", flush=True)  # fmt: skip

    def get(self, day: str, name: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["day"] == day and r["stage"] == name)


def interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def run_day(rec: Recorder, label: str, day: date, settings: Any) -> dict[str, Any]:
    """One data interval through every stage, as the DAG's tasks call them."""
    from profilecast import pipeline
    from profilecast.sources.catalog import SOURCE_NAMES

    start, end = interval(day)
    with rec.stage(label, "extract") as r:
        manifests = [pipeline.extract(s, start, end, settings) for s in SOURCE_NAMES]
        r["rows"] = sum(m["rows_read"] for group in manifests for m in group)
    with rec.stage(label, "load_raw") as r:
        loaded = pipeline.load(manifests, end, settings)
        r["rows"] = sum(int(b["rows_loaded"]) for b in loaded)
    with rec.stage(label, "dbt_build") as r:
        built = pipeline.transform(start, end, settings)
        r["rows"] = profiles_count(settings)
    rec.models[label] = slowest_models(settings)
    with rec.stage(label, "audiences") as r:
        r["rows"] = sum(pipeline.audiences(start, settings).values())
    with rec.stage(label, "quality_gate") as r:
        try:
            pipeline.gate(start, end, settings)
            r["verdict"] = "passed"
        except pipeline.QualityGateError as exc:
            # The DAG would stop here. The benchmark goes on to time render and export, and
            # reports the verdict: a gate that stops a generated world is worth knowing.
            r["verdict"] = "stopped: " + " ".join(str(exc).split())[:300]
    with rec.stage(label, "render") as r:
        rendered = render_all(start, settings)
        r["rows"] = sum(x["rendered"] for x in rendered)
    with rec.stage(label, "export") as r:
        exports = pipeline.export(rendered, start, f"bench-{label}", settings)
        r["rows"] = sum(e["exported"] for e in exports)
    return {"built": built, "rendered": rendered, "exports": exports}


def slowest_models(settings: Any) -> list[tuple[str, float]]:
    """dbt's own timing of the last build, slowest nodes first: where a build's time goes."""
    path = settings.home / "dbt" / "target" / "run_results.json"
    results = json.loads(path.read_text())["results"]
    timed = sorted(((r["unique_id"].split(".")[-1], round(r["execution_time"], 2))
                    for r in results), key=lambda x: -x[1])  # fmt: skip
    return timed


def profiles_count(settings: Any) -> int:
    from profilecast.warehouse import connect

    with connect(settings, read_only=True) as wh:
        return int(wh.query("select count(*) from customer_profiles")[0][0])


# --- floors ---------------------------------------------------------------------------------
def extract_floor(rec: Recorder, label: str, drop: Path, scratch: Path) -> None:
    """DuckDB reads every drop file of the sources (all columns, typed) into Parquet."""
    import duckdb

    files = [p for p in sorted(drop.rglob("*")) if p.is_file() and p.parts[len(drop.parts)]
             != "truth" and p.suffix in (".csv", ".jsonl", ".json", ".gz")]  # fmt: skip
    scratch.mkdir(parents=True, exist_ok=True)
    with rec.stage(label, "extract", kind="floor") as r, duckdb.connect() as con:
        rows = 0
        for k, path in enumerate(files):
            # the drop holds malformed lines on purpose: skipped here, quarantined by extract
            reader = "read_csv_auto" if ".csv" in path.suffixes else "read_json_auto"
            out = scratch / f"{k}.parquet"
            con.execute(f"copy (select * from {reader}('{path}', ignore_errors = true)) "
                        f"to '{out}' (format parquet)")  # fmt: skip
            rows += con.execute(f"select count(*) from '{out}'").fetchone()[0]
        r["rows"] = rows
    shutil.rmtree(scratch, ignore_errors=True)


PROFILE_FLOOR_SQL = """
create or replace temp table floor_profiles as
with
as_of as (select cast(? as timestamp) as ts),
contacts as (
    select lower(trim(email)) as email, max(contact_id) as contact_id
    from {raw}.crm__contacts where email is not null group by 1
),
esp as (
    select lower(trim(email)) as email,
        count(distinct case when event = 'open' and cast("timestamp" as timestamp) >= ts - interval 30 day then sg_message_id end) as opens_30d,
        count(distinct case when event = 'click' and cast("timestamp" as timestamp) >= ts - interval 30 day then sg_message_id end) as clicks_30d,
        count(distinct case when event = 'open' then sg_message_id end) as opens_all,
        max(case when event = 'open' then cast("timestamp" as timestamp) end) as last_open_at
    from {raw}.esp__events, as_of group by 1
),
web as (
    select lower(trim(json_extract_string(traits, '$.email'))) as email,
        count(*) filter (where lower("type") = 'page' and cast("timestamp" as timestamp) >= ts - interval 30 day) as page_views_30d,
        count(*) filter (where event = 'Order Completed') as web_orders,
        max(cast("timestamp" as timestamp)) as last_seen_at
    from {raw}.web__events, as_of group by 1
),
billing as (
    select lower(trim(c.email)) as email, count(*) as charges,
        sum(cast(ch.amount as bigint)) / 100.0 as revenue, max(cast(ch.created as timestamp)) as last_charge
    from {raw}.billing__charges ch join {raw}.billing__customers c on c.id = ch.customer
    group by 1
)
select contacts.contact_id, contacts.email, esp.opens_30d, esp.clicks_30d, esp.opens_all,
    esp.last_open_at, web.page_views_30d, web.web_orders, web.last_seen_at, billing.charges,
    billing.revenue, billing.last_charge
from contacts
left join esp using (email) left join web using (email) left join billing using (email)
"""


def dbt_floor(rec: Recorder, label: str, settings: Any, as_of: str) -> None:
    import duckdb
    from profilecast.warehouse.connection import raw_schema_name

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        con.execute("set timezone = 'UTC'")
        with rec.stage(label, "dbt_build", kind="floor") as r:
            con.execute(PROFILE_FLOOR_SQL.format(raw=raw_schema_name(settings)), [as_of])
            r["rows"] = con.execute("select count(*) from floor_profiles").fetchone()[0]


def render_all(start: datetime, settings: Any) -> list[dict[str, Any]]:
    """Every (campaign, shard) render task, PROFILECAST_RENDER_SHARDS at a time in processes:
    the DAG's mapped render tasks under an executor with that parallelism."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from profilecast import pipeline
    from profilecast.config import render_shards

    tasks = [(t["campaign_id"], start, settings, t["shard"], t["shards"])
             for t in pipeline.render_shards(settings)]  # fmt: skip
    if render_shards() == 1:
        return [pipeline.render(*t) for t in tasks]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=render_shards(), mp_context=context) as pool:
        return [f.result() for f in [pool.submit(pipeline.render, *t) for t in tasks]]


def render_floor(rec: Recorder, label: str, settings: Any, ds: str) -> None:
    """The same profile rows each campaign's render read, through the same compiled
    templates, in a bare loop (blank values cleaned, as templates need): no overlay,
    suppression, arm, JSON or gzip."""
    from markupsafe import Markup
    from profilecast.campaigns import load_campaigns
    from profilecast.campaigns.render import OVERLAY_COLUMNS
    from profilecast.campaigns.templates import CompiledCampaign, clean_value
    from profilecast.warehouse import connect

    campaigns = load_campaigns(settings.campaigns_dir)
    with rec.stage(label, "render", kind="floor") as r, connect(settings, read_only=True) as wh:
        n = 0
        for c in campaigns:
            compiled = CompiledCampaign(c)
            cols = ", ".join(f"p.{f}" for f in sorted(set(c.fields) | OVERLAY_COLUMNS))
            frame = wh.df(f"select a.message_key, a.customer_id, {cols} from campaign_audiences a "
                          "join customer_profiles p on p.customer_id = a.customer_id "
                          "where a.run_date = %s and a.campaign_id = %s", (ds, c.campaign_id))  # fmt: skip
            variant = compiled.experiment.variants[0]
            vid, t = variant.variant_id, compiled.templates
            blocks = compiled.experiment.block_names
            for row in frame.to_dict("records"):
                ctx = {f: clean_value(row.get(f)) for f in c.fields}
                ctx["blocks"] = {b: Markup(t[f"block:{vid}:{b}"].render(ctx))
                                 if b in variant.blocks else "" for b in blocks}  # fmt: skip
                t[f"subject:{vid}"].render(ctx)
                t["html"].render(ctx)
                t["text"].render(ctx)
                n += 1
        r["rows"] = n


def export_floor(rec: Recorder, label: str, exports_dir: Path, since: float, scratch: Path) -> None:
    """gzip.compress (the export's level) of the bytes of this day's batch files, written."""
    from profilecast.export.batches import GZIP_LEVEL

    blobs = [gzip.decompress(p.read_bytes()) for p in sorted(exports_dir.rglob("*.gz"))
             if p.stat().st_mtime >= since]  # fmt: skip
    lines = sum(b.count(b"\n") for b in blobs)
    scratch.mkdir(parents=True, exist_ok=True)
    with rec.stage(label, "export", kind="floor") as r:
        for k, blob in enumerate(blobs):
            (scratch / f"{k}.gz").write_bytes(gzip.compress(blob, GZIP_LEVEL, mtime=0))
        r["rows"] = lines
    shutil.rmtree(scratch, ignore_errors=True)


# --- the table -------------------------------------------------------------------------------
def summarise(rec: Recorder, contacts: int) -> dict[str, Any]:
    stages = [r for r in rec.rows if r["kind"] == "stage"]
    table = []
    for r in stages:
        floor = next((f for f in rec.rows if f["kind"] == "floor" and f["day"] == r["day"]
                      and f["stage"] == r["stage"]), None)  # fmt: skip
        ratio = None
        if floor and floor["wall_s"]:
            if r["stage"] == "render" and r["rows_per_s"] and floor["rows_per_s"]:
                ratio = round(r["rows_per_s"] / floor["rows_per_s"], 2)  # share of its speed
            elif r["stage"] == "export":  # the same bytes: the share of the floor's speed
                ratio = round(floor["wall_s"] / r["wall_s"], 2) if r["wall_s"] else None
            else:
                ratio = round(r["wall_s"] / floor["wall_s"], 2)  # times the floor's time
        table.append({**r, "floor_s": floor["wall_s"] if floor else None, "vs_floor": ratio})
    totals = {
        d: round(sum(r["wall_s"] for r in stages if r["day"] == d), 1) for d in ("full", "next")
    }
    full_refresh = next((r for r in rec.rows if r["kind"] == "full_refresh"), None)
    incremental = rec.get("next", "dbt_build") if full_refresh else None
    return {
        "contacts": contacts,
        "stages": table,
        "floors": [r for r in rec.rows if r["kind"] == "floor"],
        "total_s": totals,
        "next_day_vs_full": round(totals["next"] / totals["full"], 3)
        if totals["full"] and totals["next"]
        else None,
        "dbt_full_refresh_s": full_refresh["wall_s"] if full_refresh else None,
        "dbt_incremental_vs_full_refresh": round(incremental["wall_s"] / full_refresh["wall_s"], 3)
        if full_refresh
        else None,
        "peak_mib": max(r["peak_mib"] for r in rec.rows),
        "cores": os.cpu_count(),
        "slowest_dbt_nodes": rec.models,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"profilecast bench: {result['contacts']:,} contacts, {result['cores']} cores",
        "",
        "| day | stage | wall s | CPU s | peak MiB | rows | rows/s | floor s | vs floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["stages"]:
        vs = r["vs_floor"]
        note = "" if vs is None else (f"{vs:.0%} of its speed" if r["stage"] in ("render", "export")
                                      else f"{vs:.1f}x its time")  # fmt: skip
        lines.append(f"| {r['day']} | {r['stage']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_mib']:,} | {r['rows'] or 0:,} | {r['rows_per_s'] or 0:,} | "
                     f"{'' if r['floor_s'] is None else r['floor_s']} | {note} |")  # fmt: skip
    t = result["total_s"]
    lines += [""]
    if result["next_day_vs_full"] is None:
        lines.append(f"- full run (day 1): {t['full']} s; the next day was not run (--full-only)")
    else:
        lines.append(
            f"- full run (day 1): {t['full']} s; next day (incremental): {t['next']} s = "
            f"{result['next_day_vs_full']:.1%} of the full run"
        )
        if result["dbt_incremental_vs_full_refresh"] is None:
            lines.append("- the next day's build with --full-refresh has not run (yet)")
        else:
            lines.append(
                f"- next day's dbt build: {result['dbt_incremental_vs_full_refresh']:.1%} of "
                f"the same build with --full-refresh ({result['dbt_full_refresh_s']} s)"
            )
    lines += [
        f"- peak memory of the process tree: {result['peak_mib']:,} MiB",
        *[
            f"- quality gate, {r['day']}: {r.get('verdict')}"
            for r in result["stages"]
            if r["stage"] == "quality_gate"
        ],
        "",
        "slowest dbt nodes (seconds, dbt's run_results.json):",
        "",
    ]
    for build, nodes in result["slowest_dbt_nodes"].items():
        total = sum(t for _, t in nodes)
        lines.append(f"- {build} (all nodes {total:.0f} s on 2 threads): "
                     + ", ".join(f"{n} {t}" for n, t in nodes[:8]))  # fmt: skip
    return "\n".join(lines) + "\n"


def write_results(rec: Recorder, contacts: int, out: Path) -> dict[str, Any]:
    """bench.json and bench.md for the stages recorded so far."""
    result = summarise(rec, contacts)
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "bench.md").write_text(markdown(result))
    return result


def _recorded_world(marker: Path) -> dict[str, Any] | None:
    """What an earlier run recorded it generated, or None (none, or an unreadable record:
    the world is generated again)."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/profilecast-bench")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2, help="generator processes")
    ap.add_argument(
        "--full-only",
        action="store_true",
        help="stop after day 1's full run (no next day, no --full-refresh build)",
    )
    ap.add_argument(
        "--reuse-world",
        action="store_true",
        help="keep --out's generated world when it was made with the same size and seed",
    )
    args = ap.parse_args()
    out = Path(args.out)
    data, drop = out / "generated", out / "drop"
    world = {
        "contacts": args.contacts,
        "seed": args.seed,
        "end_date": str(DAY1 - timedelta(days=1)),
    }
    marker = data / ".bench-world.json"
    reuse = args.reuse_world and _recorded_world(marker) == world
    for child in out.iterdir() if out.exists() else ():
        if not (reuse and child == data):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    os.environ["PROFILECAST_HOME"] = str(out / "home")
    os.environ["PROFILECAST_SOURCES"] = str(drop)
    os.environ["PROFILECAST_DBT_TARGET"] = "duckdb"
    os.environ.pop("PROFILECAST_EXPORT_URL", None)
    os.environ.setdefault("PROFILECAST_FRESHNESS_HOURS", "48")
    # Render as the DAG does: one mapped task per (campaign, shard), a core each.
    os.environ.setdefault("PROFILECAST_RENDER_SHARDS", str(os.cpu_count() or 1))

    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast_dev.generate import generate
    from profilecast_dev.simulate import feed_increment, seed_sources

    t = time.perf_counter()
    if not reuse:
        generate(data, contacts=args.contacts, seed=args.seed, end_date=DAY1 - timedelta(days=1),
                 days_of_change=2, workers=args.workers)  # fmt: skip
        marker.write_text(json.dumps(world))
    seed_sources(data, drop)
    verb = "reused" if reuse else "generated"
    print(f"{verb} {args.contacts:,} contacts in {time.perf_counter() - t:.0f}s", flush=True)
    settings = load_settings()
    rec = Recorder()
    day2 = DAY1 + timedelta(days=1)
    days = (("full", DAY1),) if args.full_only else (("full", DAY1), ("next", day2))
    for label, day in days:
        feed_increment(data, drop, day.isoformat())
        since = time.time()
        if label == "full":
            extract_floor(rec, label, drop, out / "floor-extract")
        run_day(rec, label, day, settings)
        dbt_floor(rec, label, settings, interval(day)[1].strftime("%Y-%m-%d %H:%M:%S"))
        render_floor(rec, label, settings, day.isoformat())
        export_floor(rec, label, settings.home / "exports", since, out / "floor-export")
        write_results(rec, args.contacts, out)  # a long run leaves each finished day behind
    if not args.full_only:
        start, end = interval(day2)
        with rec.stage("next", "dbt_build --full-refresh", kind="full_refresh"):
            pipeline.transform(start, end, settings, full_refresh=True)
        rec.models["next --full-refresh"] = slowest_models(settings)
    result = write_results(rec, args.contacts, out)
    print(markdown(result))
    print(f"results: {out / 'bench.json'} and {out / 'bench.md'}")


if __name__ == "__main__":
    main()

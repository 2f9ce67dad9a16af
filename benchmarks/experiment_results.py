"""Campaign results on a simulated world with known effects, several days in a row.

    .venv/bin/python benchmarks/experiment_results.py --contacts 20000 --days 4 --out /tmp/pc-exp

Generates a history, then for each day runs the pipeline's stages as the DAG does (in
process: extract every source, load, dbt build, audiences, gate, winner decisions, render,
export, summary) and lets the simulated ESP world (``profilecast_dev.esp_world``, its
default effects: the cart reminder's ``urgency`` variant converts 3 points better than
``saved``, sending at all 3 points better than the holdout's 4%) answer each day's export
with events and orders. One more build loads the last day's feedback. Then it prints
``profilecast results`` for every campaign, writes ``results.json``, ``truth.json`` and
``reports/<ds>/results.html``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="/tmp/profilecast-experiments")
    args = ap.parse_args()
    out = Path(args.out)
    os.environ["PROFILECAST_HOME"] = str(out / "home")
    os.environ["PROFILECAST_SOURCES"] = str(out / "drop")
    os.environ.setdefault("PROFILECAST_FRESHNESS_HOURS", "2000")

    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast.experiments.report import text_table
    from profilecast.experiments.service import write_results_report
    from profilecast.sources.catalog import SOURCE_NAMES
    from profilecast_dev.esp_world import feedback
    from profilecast_dev.generate import generate

    settings = load_settings()
    first = date(2026, 11, 1)
    generate(
        out / "drop", contacts=args.contacts, seed=args.seed, end_date=first - timedelta(days=1)
    )
    truth: dict[str, list[dict]] = {}
    seconds = []
    for k in range(args.days + 1):
        t0 = time.perf_counter()
        start = datetime.combine(first + timedelta(days=k), datetime.min.time(), UTC)
        end = start + timedelta(days=1)
        manifests = [pipeline.extract(s, start, end, settings) for s in SOURCE_NAMES]
        pipeline.load(manifests, end, settings)
        pipeline.transform(start, end, settings)
        if k == args.days:  # the last build only loads the last day's feedback
            break
        pipeline.audiences(start, settings)
        pipeline.gate(start, end, settings)
        decisions = pipeline.decide_winners(start, settings)
        rendered = [pipeline.render(c, start, settings) for c in pipeline.campaign_ids(settings)]
        exports = pipeline.export(rendered, start, f"bench-{k}", settings)
        ds = start.strftime("%Y-%m-%d")
        truth[ds] = feedback(Path(settings.sources), settings.home / "exports", settings.warehouse_path,
                             ds, out / "truth", args.seed)  # fmt: skip
        seconds.append(round(time.perf_counter() - t0, 1))
        print(f"{ds}: exported {sum(e['exported'] for e in exports):,}, held out "
              f"{sum(e.get('held_out', 0) for e in exports):,}, decisions {decisions}, "
              f"{seconds[-1]}s", flush=True)  # fmt: skip
    last = (first + timedelta(days=args.days - 1)).isoformat()
    summaries = pipeline.results(settings=settings)
    for s in summaries:
        print(text_table(s))
        print()
    page = write_results_report(last, settings)
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for rows in truth.values():
        for r in rows:
            c = counts[(r["campaign_id"], r["variant"])]
            c["messages"] += 1
            c["converted"] += int(r["converted"])
            c["p_convert_sum"] += float(r["p_convert"])
    world = {f"{c}/{v}": {"messages": n["messages"], "converted": n["converted"],
                          "true_conversion_rate": n["p_convert_sum"] / n["messages"]}
             for (c, v), n in sorted(counts.items())}  # fmt: skip
    (out / "results.json").write_text(json.dumps(summaries, indent=2, default=str))
    (out / "truth.json").write_text(json.dumps(world, indent=2))
    print(json.dumps(world, indent=2))
    print(f"results page: {page}; seconds per day: {seconds}")


if __name__ == "__main__":
    main()

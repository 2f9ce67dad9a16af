"""Every stage of the pipeline at scale, timed (identity accuracy included).

    .venv/bin/python benchmarks/pipeline_scale.py --contacts 100000 --out /tmp/pc-100k

Generates a drop (2 workers), then runs extract, raw load, dbt build (+ segment tables),
audiences, the quality gate, render and export as the DAG would, without Airflow, and
reports seconds per stage, identity precision/recall on the generator truth, and render
throughput. ``--warehouse-only`` skips generate/extract/load (reuse a loaded warehouse);
``--build-only`` stops after the dbt build and the accuracy figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/profilecast-pipeline")
    ap.add_argument("--warehouse-only", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="stop after dbt build + accuracy")
    args = ap.parse_args()
    out = Path(args.out)
    os.environ["PROFILECAST_HOME"] = str(out / "home")
    os.environ["PROFILECAST_SOURCES"] = str(out / "drop")
    os.environ.setdefault("PROFILECAST_FRESHNESS_HOURS", "48")

    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast.warehouse import connect
    from profilecast_dev.accuracy import accuracy_against_truth
    from profilecast_dev.generate import generate

    settings = load_settings()
    start, end = datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    report: dict[str, object] = {"contacts": args.contacts}
    timings: dict[str, float] = {}

    def stage(name, fn):
        t = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - t, 1)
        print(f"{name}: {timings[name]}s", flush=True)
        return result

    if not args.warehouse_only:
        stage("generate", lambda: generate(out / "drop", contacts=args.contacts, seed=7, workers=2))
        manifests = stage(
            "extract",
            lambda: [
                pipeline.extract(s, start, end, settings) for s in ("crm", "billing", "web", "esp")
            ],
        )
        stage("load_raw", lambda: pipeline.load(manifests, end, settings))
    built = stage("dbt_build_and_segments", lambda: pipeline.transform(start, end, settings))
    report["identity"] = built["identity"]
    with connect(settings, read_only=True) as wh:
        report["accuracy"] = accuracy_against_truth(wh, out / "drop")
        report["profiles"] = wh.query("select count(*) from customer_profiles")[0][0]
    if args.build_only:
        _write_report(out, report, timings)
        return
    report["audiences"] = stage("audiences", lambda: pipeline.audiences(start, settings))
    stage("quality_gate", lambda: pipeline.gate(start, end, settings))
    rendered = stage(
        "render",
        lambda: [pipeline.render(c, start, settings) for c in pipeline.campaign_ids(settings)],
    )
    exports = stage("export", lambda: pipeline.export(rendered, start, "bench", settings))
    n = sum(r["rendered"] for r in rendered)
    report["emails"] = n
    report["render_emails_per_second_one_core"] = round(n / timings["render"], 1) if n else None
    report["exported"] = sum(e["exported"] for e in exports)
    _write_report(out, report, timings)


def _write_report(out: Path, report: dict[str, object], timings: dict[str, float]) -> None:
    report["seconds"] = timings
    text = json.dumps(report, indent=2, default=str)
    print(text)
    (out / "pipeline-report.json").write_text(text)


if __name__ == "__main__":
    main()

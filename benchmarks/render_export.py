"""Render throughput and export time for N recipients of each sample campaign.

    .venv/bin/python benchmarks/render_export.py --recipients 100000

Builds a warehouse with N synthetic emailable profiles in each campaign's audience (the
real campaign templates, the real render and export code), then times render (one
process = one core) and export to a local folder, per campaign and format.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--campaigns", default="", help="comma-separated subset of campaign ids")
    args = ap.parse_args()
    import os

    tmp = Path(args.out or tempfile.mkdtemp(prefix="pc-render-"))
    os.environ["PROFILECAST_HOME"] = str(tmp / "home")
    from profilecast.campaigns import load_campaigns, message_key, render_campaign
    from profilecast.config import load_settings
    from profilecast.export.batches import export_campaign
    from profilecast.storage import ObjectStore
    from profilecast.warehouse import connect

    settings = load_settings()
    ds = "2026-10-31"
    n = args.recipients
    campaigns = load_campaigns(settings.campaigns_dir)
    if args.campaigns:
        wanted = set(args.campaigns.split(","))
        campaigns = [c for c in campaigns if c.campaign_id in wanted]
    with connect(settings) as wh:
        wh.execute(
            "create or replace table customer_profiles as select "
            "'pc_' || lpad(cast(i as varchar), 10, '0') as customer_id, "
            "'Person' || cast(i % 997 as varchar) as first_name, "
            "'person' || cast(i as varchar) || '@example.com' as email, "
            "case i % 3 when 0 then 'Camping' when 1 then 'Shoes' else null end as top_category, "
            "'Headlamp, Camp Stove' as recommended_products, "
            "'Insulated Bottle, Trail Running Shoes' as cart_items, 2 as cart_items_count, "
            "'Berlin' as city, 'Rain Jacket, Headlamp' as recently_viewed_products, true as is_emailable, "
            "timestamp '2026-11-01' as profile_as_of, timestamp '2026-10-20' as last_order_at, "
            "timestamp '2026-10-29' as last_cart_added_at, 'Europe/Berlin' as time_zone "
            f"from range({n}) t(i)"
        )
        wh.execute("create or replace table campaign_audiences (run_date date, campaign_id varchar, "
                   "customer_id varchar, message_key varchar, kind varchar)")  # fmt: skip
        for c in campaigns:
            frame = wh.df("select customer_id from customer_profiles")
            frame["run_date"] = ds
            frame["campaign_id"] = c.campaign_id
            frame["message_key"] = [message_key(c.campaign_id, x, ds) for x in frame["customer_id"]]
            frame["kind"] = c.kind
            wh._insert_frame(
                "campaign_audiences",
                frame[["run_date", "campaign_id", "customer_id", "message_key", "kind"]],
            )
    report = {"recipients": n, "campaigns": {}}
    target = ObjectStore((tmp / "exports").as_uri())
    for c in campaigns:
        with connect(settings, read_only=True) as wh:
            t = time.perf_counter()
            rendered = render_campaign(wh, c, ds, settings.rendered_dir)
            render_s = time.perf_counter() - t
        with connect(settings) as wh:
            t = time.perf_counter()
            result = export_campaign(
                wh, target, c.campaign_id, ds, [Path(rendered["path"])], "bench", fmt=c.format
            )
            export_s = time.perf_counter() - t
        report["campaigns"][c.campaign_id] = {
            "format": c.format,
            "rendered": rendered["rendered"],
            "render_seconds": round(render_s, 1),
            "emails_per_second_one_core": round(rendered["rendered"] / render_s),
            "export_seconds": round(export_s, 1),
            "batches": result["batches"],
        }
        print(c.campaign_id, report["campaigns"][c.campaign_id], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The export stage's entry point: the rendered shards of every campaign, exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profilecast.interval import Interval
from profilecast.settings import Settings


def export_rendered(rendered: list[dict[str, Any]], interval: Interval, run_id: str,
                    settings: Settings) -> list[dict[str, Any]]:  # fmt: skip
    from profilecast.campaigns import load_campaigns
    from profilecast.export.batches import export_campaign
    from profilecast.flows.service import record_campaign_contacts
    from profilecast.storage import ObjectStore
    from profilecast.warehouse import connect

    target = ObjectStore(settings.export_url)
    sources = ObjectStore(settings.sources)
    ds = interval.ds
    by_campaign: dict[str, list[dict[str, Any]]] = {}
    for item in rendered:
        by_campaign.setdefault(item["campaign_id"], []).append(item)
    results = []
    campaigns = {c.campaign_id: c for c in load_campaigns(settings.campaigns_dir)}
    import tempfile

    from profilecast.export.handoff import fetch

    fetched = Path(tempfile.mkdtemp(prefix="profilecast-handoff-"))
    with connect(settings) as wh:
        for cid, items in sorted(by_campaign.items()):
            paths = [fetch(str(i["path"]), fetched) for i in items]
            fmt = items[0].get("format", "jsonl")
            campaign = campaigns.get(cid)
            results.append(export_campaign(
                wh, target, cid, ds, paths, run_id, fmt=fmt,
                topic=campaign.topic if campaign else None,
                sent_at=interval.end.strftime("%Y-%m-%d %H:%M:%S"),
                attribution_days=campaign.arms.attribution_days if campaign else 5,
                sources=sources,
            ))  # fmt: skip
            if cid in campaigns:
                record_campaign_contacts(settings, wh, campaigns[cid], ds)
    import shutil

    shutil.rmtree(fetched, ignore_errors=True)
    return results

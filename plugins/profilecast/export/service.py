"""The export stage's entry point: the rendered shards of every campaign, exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profilecast.interval import Interval
from profilecast.settings import Settings


def export_rendered(rendered: list[dict[str, Any]], interval: Interval, run_id: str,
                    settings: Settings) -> list[dict[str, Any]]:  # fmt: skip
    """Every campaign's rendered shards exported, campaign by campaign (one pool of workers
    makes the batches of all of them: ``export_campaigns``); the results by campaign id.

    The largest campaign goes first: while this process writes and commits it, the workers
    make the smaller campaigns' batches, so what is left after the workers finish is the
    commit of a small campaign, not of the largest."""
    import shutil
    import tempfile

    from profilecast.campaigns import load_campaigns
    from profilecast.export.batches import CampaignExport, export_campaigns
    from profilecast.export.handoff import fetch
    from profilecast.export.prepare import rendered_bytes
    from profilecast.flows.service import record_campaign_contacts
    from profilecast.storage import ObjectStore
    from profilecast.warehouse import connect

    target = ObjectStore(settings.export_url)
    sources = ObjectStore(settings.sources)
    by_campaign: dict[str, list[dict[str, Any]]] = {}
    for item in rendered:
        by_campaign.setdefault(item["campaign_id"], []).append(item)
    campaigns = {c.campaign_id: c for c in load_campaigns(settings.campaigns_dir)}
    fetched = Path(tempfile.mkdtemp(prefix="profilecast-handoff-"))
    try:
        requests = []
        for cid, items in sorted(by_campaign.items()):
            campaign = campaigns.get(cid)
            requests.append(CampaignExport(
                cid, [fetch(str(i["path"]), fetched) for i in items],
                fmt=items[0].get("format", "jsonl"),
                topic=campaign.topic if campaign else None,
                attribution_days=campaign.arms.attribution_days if campaign else 5,
            ))  # fmt: skip
        requests.sort(key=lambda r: (-rendered_bytes(r.rendered_files), r.campaign_id))
        results = []
        with connect(settings) as wh:
            for result in export_campaigns(wh, target, requests, interval.ds, run_id,
                                           sent_at=interval.end.strftime("%Y-%m-%d %H:%M:%S"),
                                           sources=sources):  # fmt: skip
                results.append(result)
                if result["campaign_id"] in campaigns:
                    record_campaign_contacts(settings, wh, campaigns[result["campaign_id"]],
                                             interval.ds)  # fmt: skip
        return sorted(results, key=lambda r: r["campaign_id"])
    finally:
        shutil.rmtree(fetched, ignore_errors=True)

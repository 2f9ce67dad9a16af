"""Rendering: the audience rows not yet in the send ledger, as personalised messages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from profilecast.campaigns.definition import Campaign
from profilecast.campaigns.templates import CompiledCampaign, clean_value


def rendered_path(rendered_dir: Path, run_date: str, campaign_id: str) -> Path:
    return rendered_dir / run_date / f"{campaign_id}.jsonl.gz"


def render_campaign(
    wh: Any, campaign: Campaign, run_date: str, rendered_dir: Path, shard: int = 0, shards: int = 1
) -> dict[str, Any]:
    """Render this campaign's audience (keys not yet exported) into a gzip JSON-lines file."""
    compiled = CompiledCampaign(campaign)
    cols = ", ".join(f"p.{f}" for f in sorted(set(campaign.fields) | {"email"}))
    ledger_filter = ""
    if wh.table_exists("send_ledger"):
        ledger_filter = "and a.message_key not in (select message_key from send_ledger)"
    frame = wh.df(
        f"select a.message_key, a.customer_id, {cols} from campaign_audiences a "
        f"join customer_profiles p on p.customer_id = a.customer_id "
        f"where a.run_date = %s and a.campaign_id = %s {ledger_filter} "
        f"order by a.message_key",
        (run_date, campaign.campaign_id),
    )
    path = rendered_path(rendered_dir, run_date, campaign.campaign_id)
    if shards > 1:
        path = path.with_name(f"{campaign.campaign_id}.shard-{shard:03d}.jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = 0
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        for rec in frame.to_dict("records"):
            if shards > 1 and int(rec["message_key"][:8], 16) % shards != shard:
                continue
            content = compiled.render(rec, rec["message_key"])
            out.write(
                json.dumps(
                    {
                        "message_key": rec["message_key"],
                        "campaign_id": campaign.campaign_id,
                        "customer_id": rec["customer_id"],
                        "to": rec["email"],
                        "from": campaign.from_address,
                        **content,
                        "fields": {f: clean_value(rec.get(f)) for f in compiled.fields},
                    },
                    ensure_ascii=False,
                    default=str,
                )
                + "\n"
            )
            n += 1
    tmp.replace(path)
    return {"campaign_id": campaign.campaign_id, "rendered": n, "path": str(path),
            "format": campaign.format}  # fmt: skip

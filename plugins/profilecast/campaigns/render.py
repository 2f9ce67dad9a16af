"""Rendering: the audience rows not yet in the send ledger, as personalised messages."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from profilecast.campaigns.definition import Campaign
from profilecast.campaigns.templates import CompiledCampaign
from profilecast.experiments.definition import HOLDOUT
from profilecast.experiments.sendtime import send_at_for
from profilecast.fresh.overlay import Overlay


def rendered_path(rendered_dir: Path, run_date: str, campaign_id: str) -> Path:
    return rendered_dir / run_date / f"{campaign_id}.jsonl.gz"


#: Profile columns the fresh-facts overlay compares its facts with.
OVERLAY_COLUMNS = {"email", "profile_as_of", "last_order_at", "last_cart_added_at", "cart_items"}


def overlaid(
    rec: dict[str, Any], campaign: Campaign, overlay: Overlay | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The profile with the fresh facts laid over it, or None and why it must not be sent."""
    if overlay is None:
        return rec, None
    stop = overlay.suppression(campaign.kind, campaign.topic)
    if stop:
        return None, f"fresh {stop}"
    left = overlay.exits(campaign.exit_on, rec)
    if left:
        return None, f"exit on fresh {left}"
    return {**rec, **overlay.fields(rec)}, None


def render_campaign(
    wh: Any,
    campaign: Campaign,
    run_date: str,
    rendered_dir: Path,
    shard: int = 0,
    shards: int = 1,
    fresh: dict[str, Overlay] | None = None,
    flow_claims: dict[str, str] | None = None,
    suppressions: Any = None,
    promoted: str | None = None,
    send_from: datetime | None = None,
) -> dict[str, Any]:
    """Render this campaign's audience (keys not yet exported) into a gzip JSON-lines file.

    ``fresh`` (customer_id -> Overlay) holds what the collector saw after the build: it
    suppresses, takes customers out on the campaign's ``exit_on`` facts and updates cart
    fields. Every message records the freshness of what it used. ``flow_claims``
    (customer_id -> flow) names customers a triggered flow that outranks this campaign emails
    today: they are left to it.
    """
    fresh = fresh or {}
    flow_claims = flow_claims or {}
    compiled = CompiledCampaign(campaign, promoted)
    cols = ", ".join(f"p.{f}" for f in sorted(set(campaign.fields) | OVERLAY_COLUMNS))
    timed = ""
    if campaign.send_time is not None:
        cols += "" if "time_zone" in campaign.fields else ", p.time_zone"
        if campaign.send_time.mode == "optimal" and wh.table_exists("customer_send_times"):
            cols += ", st.best_local_hour"
            timed = "left join customer_send_times st on st.customer_id = a.customer_id"
    send_from = send_from or datetime.strptime(run_date, "%Y-%m-%d").replace(
        tzinfo=UTC
    ) + timedelta(days=1)
    # Messages the ledger holds for this date and campaign (a rerun): a key holds both, so
    # the ledger's other rows, which grow every day, are never read.
    ledger_filter, params = "", (run_date, campaign.campaign_id)
    if wh.table_exists("send_ledger"):
        ledger_filter = ("and a.message_key not in (select message_key from send_ledger "
                         "where run_date = %s and campaign_id = %s)")  # fmt: skip
        params += params
    # A shard reads only its own rows: the first eight hex digits of the key, mod shards.
    # (mod(), not %: psycopg2 reads a % in the SQL as a parameter.)
    shard_filter = ""
    if shards > 1:
        shard_filter = f"and mod({wh.hex_prefix('a.message_key')}, {int(shards)}) = {int(shard)}"
    frame = wh.df(
        f"select a.message_key, a.customer_id, {cols} from campaign_audiences a "
        f"join customer_profiles p on p.customer_id = a.customer_id {timed} "
        f"where a.run_date = %s and a.campaign_id = %s {ledger_filter} "
        f"{shard_filter} order by a.message_key",
        params,
    )
    path = rendered_path(rendered_dir, run_date, campaign.campaign_id)
    if shards > 1:
        path = path.with_name(f"{campaign.campaign_id}.shard-{shard:03d}.jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = held = 0
    skipped: dict[str, int] = {}
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode  # one, not one per message
    # The export reads this file back at once: fast compression (level 1) suits a hand-off
    # better than the smallest file (level 9 took as long as the JSON encoding).
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as out:
        for row in frame.to_dict("records"):
            overlay = fresh.get(row["customer_id"])
            rec, why = overlaid(row, campaign, overlay)
            if rec is not None and row["customer_id"] in flow_claims:
                rec, why = None, f"flow today: {flow_claims[row['customer_id']]}"
            if rec is not None and suppressions is not None:
                if suppressions.erased(rec.get("email"), row["customer_id"]):
                    rec, why = None, "erased"
                elif campaign.kind == "marketing" and suppressions.stops(
                    rec.get("email"), campaign.topic
                ):
                    rec, why = None, "suppression list"
            if rec is None:
                skipped[str(why)] = skipped.get(str(why), 0) + 1
                continue
            arm = compiled.arm(row["customer_id"])
            if arm == HOLDOUT:
                out.write(json.dumps({"message_key": rec["message_key"],
                                      "campaign_id": campaign.campaign_id,
                                      "customer_id": rec["customer_id"],
                                      "experiment_id": compiled.experiment.experiment_id,
                                      "variant": HOLDOUT,
                                      "send_at": send_at_for(campaign.send_time, send_from, rec),
                                      }) + "\n")  # fmt: skip
                held += 1
                continue
            ctx = compiled.context(rec)
            content = compiled.render(rec, rec["message_key"], arm, ctx)
            out.write(
                encode(
                    {
                        "message_key": rec["message_key"],
                        "campaign_id": campaign.campaign_id,
                        "customer_id": rec["customer_id"],
                        "to": rec["email"],
                        "from": campaign.from_address,
                        **content,
                        "fields": {f: ctx[f] for f in compiled.fields},
                        "send_at": send_at_for(campaign.send_time, send_from, rec),
                        "freshness": {
                            "profile_as_of": str(rec.get("profile_as_of")),
                            "fresh_facts_as_of": overlay.fresh_as_of if overlay else None,
                        },
                    }
                )
                + "\n"
            )
            n += 1
    tmp.replace(path)
    return {"campaign_id": campaign.campaign_id, "rendered": n, "held_out": held, "path": str(path),
            "format": campaign.format, "skipped_fresh": skipped}  # fmt: skip

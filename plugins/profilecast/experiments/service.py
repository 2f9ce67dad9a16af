"""The experiments stage's entry points for the DAG and the CLI: winner decisions, results
summaries and the results report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profilecast.settings import Settings


def decide(ds: str, settings: Settings) -> list[dict[str, Any]]:
    from profilecast.campaigns import load_campaigns
    from profilecast.experiments.decisions import decide_winners
    from profilecast.warehouse import connect

    with connect(settings, read_only=True) as wh:
        return decide_winners(settings.home, wh, load_campaigns(settings.campaigns_dir), ds)


def results(campaign_id: str | None, until: str | None, settings: Settings) -> list[dict[str, Any]]:
    from profilecast.campaigns import load_campaigns
    from profilecast.experiments.results import load_rows, summarise
    from profilecast.warehouse import connect

    campaigns = {c.campaign_id: c for c in load_campaigns(settings.campaigns_dir)}
    out = []
    with connect(settings, read_only=True) as wh:
        if campaign_id:
            ids = [campaign_id]
        elif wh.table_exists("campaign_results"):
            ids = sorted(
                r[0] for r in wh.query("select distinct campaign_id from campaign_results")
            )
        else:
            ids = []
        for cid in ids:
            rows = load_rows(wh, cid, until)
            if rows or campaign_id:
                c = campaigns.get(cid)
                out.append(summarise(cid, c.arms if c else None, rows))
    return out


def write_results_report(ds: str, settings: Settings) -> Path:
    """reports/<ds>/results.html: every campaign's funnel and variants with intervals."""
    from profilecast.experiments.report import html_report

    path = settings.reports_dir / ds / "results.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(results(None, ds, settings), ds), encoding="utf-8")
    return path

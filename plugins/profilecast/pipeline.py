"""The pipeline's steps as plain functions (the DAG's tasks call these; tests can too).

Every step is idempotent for its data interval: it derives everything from
``interval_start``/``interval_end`` (never the wall clock) and replaces what an earlier
attempt of the same interval wrote.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from profilecast import config
from profilecast.config import Settings, load_settings
from profilecast.interval import Interval, utc
from profilecast.quality.gate import QualityGateError

__all__ = ["QualityGateError"]

log = logging.getLogger(__name__)


def run_date_of(interval_start: Any) -> str:
    return Interval.of(interval_start).ds


def as_of_of(interval_end: Any) -> str:
    return utc(interval_end).strftime("%Y-%m-%d %H:%M:%S")


def extract(
    source: str, interval_start: Any, interval_end: Any, settings: Settings | None = None
) -> list[dict[str, Any]]:
    from profilecast import sources
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    with connect(settings, read_only=True) as wh:
        history = sources.load_history(wh, source)
    return sources.extract_source(
        settings, source, Interval.of(interval_start, interval_end), history
    )


def load(
    manifests: list[list[dict[str, Any]]], interval_end: Any, settings: Settings | None = None
) -> list[dict[str, Any]]:
    from profilecast import sources
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    flat = [m for group in manifests for m in (group or [])]
    with connect(settings) as wh:
        sources.ensure_raw_tables(wh)
        done = sources.load_raw(wh, flat, utc(interval_end))
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in done]


def build_vars(settings: Settings) -> dict[str, Any]:
    """The dbt vars of every build besides the interval's: the segment models, and the
    topics and regimes of consent/topics.yml."""
    from profilecast.activation.segments import segment_model_names
    from profilecast.consent.topics import dbt_vars as consent_dbt_vars

    return {"segment_models": segment_model_names(settings.dbt_project_dir), **consent_dbt_vars()}


def transform(
    interval_start: Any,
    interval_end: Any,
    settings: Settings | None = None,
    full_refresh: bool = False,
) -> dict[str, Any]:
    """dbt build: every model and its data tests, segments and activation tables included.
    Incremental by default; ``full_refresh`` rebuilds the incremental models from history."""
    from profilecast.activation.identity import identity_figures
    from profilecast.warehouse import connect, dbt_build

    settings = settings or load_settings()
    ds = run_date_of(interval_start)
    dbt_vars = {"as_of": as_of_of(interval_end), "run_date": ds, **build_vars(settings)}
    dbt_build(settings, dbt_vars, full_refresh=full_refresh)
    with connect(settings) as wh:
        identity = identity_figures(wh, ds)
        sizes = wh.query(
            "select segment, size from segment_runs where run_date = %s and not is_retired "
            "order by segment",
            (ds,),
        )
    return {
        "segments": {s: int(n) for s, n in sizes},
        "identity": identity,
        "full_refresh": full_refresh,
    }


def apply_erasures(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Carry out pending erasure requests (consent.erasure); their audit rows."""
    from profilecast.consent.erasure import apply_pending

    return apply_pending(settings or load_settings())


def audiences(interval_start: Any, settings: Settings | None = None) -> dict[str, int]:
    from profilecast.campaigns import build_audiences, load_campaigns
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    campaigns = load_campaigns(settings.campaigns_dir)
    with connect(settings) as wh:
        return build_audiences(wh, campaigns, run_date_of(interval_start))


def gate(interval_start: Any, interval_end: Any, settings: Settings | None = None) -> str:
    """Run the expectation suites; raises QualityGateError when a critical one fails."""
    settings = settings or load_settings()
    ds = run_date_of(interval_start)
    _run_gate(ds, as_of_of(interval_end), settings)
    return str(settings.reports_dir / ds / "quality" / "index.html")


def _run_gate(ds: str, as_of: str, settings: Settings) -> list[Any]:
    from profilecast.config import data_docs
    from profilecast.quality.gate import run_gate
    from profilecast.warehouse import connect

    report_dir = settings.reports_dir / ds / "quality"
    with connect(settings, read_only=True) as wh:
        return run_gate(
            wh, settings.expectations_dir, ds, as_of, report_dir,
            docs_root=settings.home / "gx" if data_docs() else None,
        )  # fmt: skip


def validate(ds: str, settings: Settings | None = None) -> list[Any]:
    """The quality gate for run date ``ds`` against the warehouse as it is now (the CLI's
    ``validate``); returns every outcome, raises QualityGateError on a critical failure."""
    settings = settings or load_settings()
    return _run_gate(ds, Interval.day(ds).as_of, settings)


def latest_segment_runs(settings: Settings | None = None) -> list[tuple] | None:
    """Each segment's latest run (segment, size, previous, change %, kind, owner, retired),
    or None before the first build."""
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists("segment_runs"):
            return None
        return wh.query(
            "select segment, size, previous_size, change_pct, kind, owner, is_retired "
            "from segment_runs where run_date = (select max(run_date) from segment_runs) "
            "order by segment"
        )


def explain(customer_id: str, settings: Settings | None = None) -> list[str]:
    """Why a customer is in or out of each segment (raises FileNotFoundError before the
    first dbt build)."""
    from profilecast.activation.segments import explain as explain_customer
    from profilecast.activation.segments import segments_from_manifest
    from profilecast.warehouse import connect, dbt_manifest

    settings = settings or load_settings()
    segments = segments_from_manifest(dbt_manifest(settings))
    with connect(settings, read_only=True) as wh:
        return explain_customer(wh, segments, customer_id)


def preview(campaign_id: str, out: Path, n: int = 20, settings: Settings | None = None) -> Path:
    """Render ``n`` sample messages of a campaign with an index page; KeyError names the
    known campaigns when ``campaign_id`` is not one."""
    from profilecast.campaigns import load_campaigns, write_preview
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    campaigns = {c.campaign_id: c for c in load_campaigns(settings.campaigns_dir)}
    if campaign_id not in campaigns:
        raise KeyError(f"unknown campaign {campaign_id!r}; known: {', '.join(sorted(campaigns))}")
    with connect(settings, read_only=True) as wh:
        return write_preview(wh, campaigns[campaign_id], out, n)


def campaign_ids(settings: Settings | None = None) -> list[str]:
    from profilecast.campaigns import load_campaigns

    settings = settings or load_settings()
    return [c.campaign_id for c in load_campaigns(settings.campaigns_dir)]


def render_shards(settings: Settings | None = None) -> list[dict[str, Any]]:
    """One render task per (campaign, shard): PROFILECAST_RENDER_SHARDS shards per campaign
    (default 2), so more Airflow workers render faster."""
    shards = config.render_shards()
    return [
        {"campaign_id": c, "shard": k, "shards": shards}
        for c in campaign_ids(settings)
        for k in range(shards)
    ]


def plan_render(interval_start: Any, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Take the winner decisions due (see :func:`decide_winners`), then list the render
    shards: a promoted winner is rendered from this run on."""
    settings = settings or load_settings()
    for decision in decide_winners(interval_start, settings):
        log.info("experiment %s: promoted %s (%s)", decision["experiment_id"],
                 decision["winner"], decision["reason"])  # fmt: skip
    return render_shards(settings)


def render(
    campaign_id: str,
    interval_start: Any,
    settings: Settings | None = None,
    shard: int = 0,
    shards: int = 1,
) -> dict[str, Any]:
    from profilecast.campaigns import load_campaigns, render_campaign
    from profilecast.consent.suppressions import current_suppressions
    from profilecast.flows.service import flow_claims_today
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    campaigns = load_campaigns(settings.campaigns_dir)
    campaign = next(c for c in campaigns if c.campaign_id == campaign_id)
    claims = flow_claims_today(settings) if campaign.kind == "marketing" else {}
    from profilecast.experiments.decisions import promoted

    with connect(settings, read_only=True) as wh:
        fresh = fresh_overlay(wh, settings)
        out = render_campaign(
            wh,
            campaign,
            run_date_of(interval_start),
            settings.rendered_dir,
            shard,
            shards,
            fresh=fresh,
            flow_claims={c: f for c, (f, p) in claims.items() if p >= campaign.priority},
            suppressions=current_suppressions(),
            promoted=promoted(settings.home, campaign.arms.experiment_id),
            send_from=Interval.of(interval_start).end,
        )
    from profilecast.export.handoff import hand_off

    return hand_off(out, settings.rendered_dir)


def decide_winners(interval_start: Any, settings: Settings | None = None) -> list[dict]:
    """Promote the significant winners of campaigns whose winner policy is ``promote``."""
    from profilecast.experiments.service import decide

    return decide(run_date_of(interval_start), settings or load_settings())


def results(campaign_id: str | None = None, until: str | None = None,
            settings: Settings | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Each campaign's results summary (one campaign, or every campaign with results)."""
    from profilecast.experiments.service import results as summaries

    return summaries(campaign_id, until, settings or load_settings())


def fresh_overlay(wh: Any, settings: Settings) -> dict[str, Any]:
    """What the collector saw since the build, per customer (empty without a collector)."""
    from profilecast.fresh.overlay import since_build

    return since_build(wh, settings.fresh_path, settings.lookback_days)


def fresh_summary(settings: Settings | None = None) -> dict[str, Any]:
    """The collector's facts since the build: by kind, and how many customers they name."""
    from profilecast.fresh.overlay import summary

    return summary(settings or load_settings())


def publish_profiles(settings: Settings | None = None) -> dict[str, Any]:
    """Publish the gated profiles for the profile API (a SQLite snapshot, swapped in)."""
    from profilecast.collector.profiles import publish_profiles as publish
    from profilecast.config import collector_settings
    from profilecast.flows.service import flow_fields
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    with connect(settings, read_only=True) as wh:
        n = publish(wh, settings.profiles_snapshot_path, collector_settings().profile_fields,
                    settings.lookback_days, flow_fields(settings.flows_dir))  # fmt: skip
    return {"profiles": n, "path": str(settings.profiles_snapshot_path)}


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    """Run the event collector and profile API until interrupted (SIGINT or SIGTERM)."""
    import uvicorn

    from profilecast.collector.app import create_app
    from profilecast.config import collector_settings

    settings = settings or load_settings()
    if str(settings.sources).startswith("s3://"):
        raise ValueError(
            "the collector journals into a local drop folder: set PROFILECAST_SOURCES to a "
            "local path (or a shared volume) while it runs"
        )
    app = create_app(settings, collector_settings())
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


def export(
    rendered: list[dict[str, Any]],
    interval_start: Any,
    run_id: str,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Write the rendered messages as ESP batches; holdouts are recorded, never exported."""
    from profilecast.export.service import export_rendered

    return export_rendered(rendered, Interval.of(interval_start), run_id,
                           settings or load_settings())  # fmt: skip


def summarize(
    interval_start: Any,
    rendered: list[dict[str, Any]] | None = None,
    exports: list[dict[str, Any]] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Collect the run's figures from the warehouse and write reports/<ds>/summary.json."""
    from profilecast.warehouse import connect

    settings = settings or load_settings()
    ds = run_date_of(interval_start)
    out: dict[str, Any] = {"run_date": ds}
    with connect(settings, read_only=True) as wh:
        stamp = datetime.strptime(ds, "%Y-%m-%d").strftime("%Y%m%dT000000")
        out["sources"] = [
            {"source": s, "entity": e, "rows_read": int(r), "rows_loaded": int(l_),
             "rows_quarantined": int(q)}
            for s, e, r, l_, q in wh.query(
                "select source, entity, rows_read, rows_loaded, rows_quarantined "
                "from load_batches where batch_id like %s order by source, entity",
                (f"%__{stamp}",),
            )
        ]  # fmt: skip
        out["quarantine_reasons"] = {
            reason: int(n)
            for reason, n in wh.query(
                "select reason, count(*) from quarantine where batch_id like %s "
                "group by reason order by 2 desc",
                (f"%__{stamp}",),
            )
        }
        out["profiles"] = int(wh.query("select count(*) from customer_profiles")[0][0])
        out["emailable_profiles"] = int(
            wh.query("select count(*) from customer_profiles where is_emailable")[0][0]
        )
        out["segments"] = {
            seg: {"size": int(size), "change_pct": chg}
            for seg, size, chg in wh.query(
                "select segment, size, change_pct from segment_runs "
                "where run_date = %s and not is_retired order by segment",
                (ds,),
            )
        }
        out["audiences"] = {
            c: int(n)
            for c, n in wh.query(
                "select campaign_id, count(*) from campaign_audiences where run_date = %s "
                "group by 1 order by 1",
                (ds,),
            )
        }
        ledger = wh.table_exists("send_ledger")
        out["exported_total_for_date"] = (
            int(wh.query("select count(*) from send_ledger where run_date = %s", (ds,))[0][0])
            if ledger
            else 0
        )
    out["quality_report"] = str(settings.reports_dir / ds / "quality" / "index.html")
    docs = settings.home / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    out["data_docs"] = str(docs) if docs.exists() else None
    path = settings.reports_dir / ds / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out["rendered"] = {}
    for r in rendered or []:
        out["rendered"][r["campaign_id"]] = out["rendered"].get(r["campaign_id"], 0) + r["rendered"]
    out["exports"] = exports or []
    from profilecast.experiments.service import write_results_report

    out["results_report"] = str(write_results_report(ds, settings))
    out["exported_this_run"] = sum(e["exported"] for e in exports or [])
    path.write_text(json.dumps(out, indent=2, default=str))
    return out

"""Third-party inputs from ../shared/external, pushed through the real extractors.

Used by the tests and by ``benchmarks/external_report.py`` (which prints the quarantine
counts and top reasons). Every function returns the batch accounting plus the reasons.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilecast import sources
from profilecast.config import Settings
from profilecast.interval import Interval

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"
# Far-future interval end and no history: every record is in the window.
START = datetime(2099, 1, 1, tzinfo=UTC)
END = datetime(2099, 1, 2, tzinfo=UTC)
STRIPE_TYPES = {"customer": "customers", "subscription": "subscriptions", "invoice": "invoices",
                "charge": "charges", "refund": "refunds"}  # fmt: skip


def _spec(source: str, entity: str) -> sources.EntitySpec:
    return next(s for s in sources.ENTITIES if s.source == source and s.entity == entity)


def _summarise(result: sources.BatchResult) -> dict[str, Any]:
    import pyarrow.parquet as pq

    q = pq.read_table(Path(result.landing_dir) / "quarantine.parquet").to_pylist()
    return {
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_quarantined": result.rows_quarantined,
        "reasons": Counter(r["reason"] for r in q).most_common(5),
    }


def extract_files(settings: Settings, source: str, entity: str, files: list[Path]) -> dict:
    result = sources.extract_entity(
        settings, _spec(source, entity), Interval(START, END), files=[str(f) for f in files]
    )
    return _summarise(result)


def segment_spec(settings: Settings, tmp: Path) -> dict:
    """The 132 Segment Spec examples, unwrapped into a JSON-lines drop."""
    src = EXTERNAL / "web_segment_spec" / "segment_spec_examples.jsonl"
    drop = tmp / "segment_spec.jsonl"
    with drop.open("w") as out:
        for line in src.open():
            out.write(json.dumps(json.loads(line)["payload"]) + "\n")
    return extract_files(settings, "web", "events", [drop])


def segment_go(settings: Settings) -> dict:
    return extract_files(
        settings, "web", "events", sorted((EXTERNAL / "web_segment_go").glob("*.json"))
    )


def snowplow(settings: Settings) -> dict:
    return extract_files(
        settings, "web", "events", [EXTERNAL / "web_snowplow" / "snowplow_web_events.csv"]
    )


def salesforce(settings: Settings) -> dict:
    return extract_files(settings, "crm", "contacts",
                         [EXTERNAL / "crm_salesforce_contacts" / "data-Contact-large.json"])  # fmt: skip


def hubspot_tables(settings: Settings) -> dict:
    return extract_files(
        settings, "crm", "contacts", [EXTERNAL / "crm_hubspot_tables" / "contact_data.csv"]
    )


def stripe_fixtures_objects() -> dict[str, list[dict[str, Any]]]:
    resources = json.loads((EXTERNAL / "billing_stripe_api" / "fixtures3.json").read_text())[
        "resources"
    ]
    return {entity: [resources[kind]] for kind, entity in STRIPE_TYPES.items()}


def stripe_api(settings: Settings, server: Any) -> dict[str, dict]:
    """fixtures3.json served as Stripe list endpoints, read by the billing API extractor."""
    server.stripe.update(stripe_fixtures_objects())
    out = {}
    for spec in sources.specs_for("billing"):
        fn = sources.api_records_fn(spec)
        result = sources.extract_entity(settings, spec, Interval(START, END), records_fn=fn)
        out[spec.entity] = _summarise(result)
    return out


def isolated(settings: Settings, tmp: Path) -> Settings:
    return replace(settings, home=tmp / "home")

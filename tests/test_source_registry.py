"""Adding a source is one declaration: extraction, validation, quarantine, the landing zone,
raw tables, load accounting and the DAG's extract tasks all follow from the catalog."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from profilecast import pipeline
from profilecast.config import load_settings
from profilecast.sources import catalog
from profilecast.sources.catalog import EntitySpec
from profilecast.warehouse import connect

SURVEYS = EntitySpec(
    "surveys",
    "responses",
    ("response_id", "email", "score", "comment", "submitted_at"),
    identifiers=("response_id",),
    watermark=("submitted_at",),
    timestamps=("submitted_at",),
    record_id="response_id",
    email_fields=("email",),
)
START = datetime(2026, 10, 31, tzinfo=UTC)


def test_a_new_entity_declared_once_reaches_raw(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "ENTITIES", (*catalog.ENTITIES, SURVEYS))
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(tmp_path / "drop"))
    drop = tmp_path / "drop" / "surveys"
    drop.mkdir(parents=True)
    rows = [
        {"response_id": "r1", "email": "ann@example.com", "score": 9, "comment": "great",
         "submitted_at": "2026-10-31T10:00:00Z"},
        {"response_id": "r2", "email": "not an address", "score": 3, "comment": "meh",
         "submitted_at": "2026-10-31T11:00:00Z"},
        {"response_id": "", "email": "", "score": 5, "comment": "no id",
         "submitted_at": "2026-10-31T12:00:00Z"},
    ]  # fmt: skip
    (drop / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = load_settings()

    manifests = pipeline.extract("surveys", START, START + timedelta(days=1), settings)
    assert [(m["source"], m["entity"]) for m in manifests] == [("surveys", "responses")]
    done = pipeline.load([manifests], START + timedelta(days=1), settings)
    batch = next(b for b in done if b["source"] == "surveys")
    # rows in = rows loaded + rows quarantined; the bad address is kept, flagged and nulled
    assert (batch["rows_read"], batch["rows_loaded"], batch["rows_quarantined"]) == (3, 2, 1)
    with connect(settings, read_only=True) as wh:
        loaded = wh.query(
            f"select response_id, email, _flags from {wh.raw_schema}.surveys__responses "
            "order by response_id"
        )
        reasons = wh.query("select reason from quarantine where source = 'surveys'")
    assert [r[0] for r in loaded] == ["r1", "r2"]
    assert loaded[1][1] is None and "email:invalid_email" in loaded[1][2]
    assert len(reasons) == 1 and "identifier" in reasons[0][0]


def test_an_undeclared_entity_is_a_clear_error():
    with pytest.raises(catalog.SourceError, match="no entity surveys.responses is declared"):
        catalog.spec_for("surveys", "responses")


def test_the_dag_extracts_every_declared_source():
    from airflow.dag_processing.dagbag import DagBag
    from profilecast.config import REPO_ROOT

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    dag = bag.dags["customer_profiles"]
    extract = {t.task_id for t in dag.tasks if t.task_id.startswith("extract_")}
    assert extract == {f"extract_{s}" for s in catalog.SOURCE_NAMES}
    assert set(catalog.SOURCE_NAMES) == {s.source for s in catalog.ENTITIES}

"""The cluster, really run: Airflow's metadata in PostgreSQL, Redis as the Celery broker, two
Celery workers under different names, the warehouse on PostgreSQL, the landing zone and the
exports on an S3 endpoint. Its messages equal an embedded run's on the same data."""

from __future__ import annotations

import pytest
from profilecast_dev.cluster import run_cluster
from profilecast_dev.generate import generate

from .esp_formats import messages_in
from .test_postgres import _ensure_server

pytestmark = pytest.mark.postgres
DATE = "2026-10-31"


def _messages(root) -> dict[str, tuple[str, str, str]]:
    folders = sorted(m.parent for m in root.rglob("manifest.json"))
    assert folders, f"no export under {root}"
    return {m["message_key"]: (m["to"], m["subject"], m["html"])
            for f in folders for m in messages_in(f)}  # fmt: skip


def _embedded_run(home, sample, monkeypatch) -> None:
    """The same interval embedded, in this process: DuckDB, a local landing zone and export
    folder, the pipeline's steps in the DAG's order."""
    from datetime import UTC, datetime, timedelta

    from profilecast import pipeline
    from profilecast.config import load_settings

    for name in ("PROFILECAST_DBT_TARGET", "PROFILECAST_EXPORT_URL", "PROFILECAST_LANDING_URL",
                 "PROFILECAST_HANDOFF_URL", "PROFILECAST_PG_SCHEMA"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROFILECAST_HOME", str(home))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(sample))
    settings = load_settings()
    start = datetime(2026, 10, 31, tzinfo=UTC)
    end = start + timedelta(days=1)
    manifests = [
        pipeline.extract(s, start, end, settings) for s in ("crm", "billing", "web", "esp")
    ]
    pipeline.load(manifests, end, settings)
    pipeline.transform(start, end, settings)
    pipeline.audiences(start, settings)
    pipeline.gate(start, end, settings)
    rendered = [pipeline.render(c, start, settings) for c in pipeline.campaign_ids(settings)]
    pipeline.export(rendered, start, "embedded", settings)


def test_two_celery_workers_run_the_dag_and_match_an_embedded_run(tmp_path, monkeypatch):
    _ensure_server()
    sample = tmp_path / "sample"
    generate(sample, contacts=300, seed=13)
    run = run_cluster(tmp_path / "cluster", sample, DATE, workers=2)
    print(run.table())  # task_id map_index hostname state, in the test's output
    assert run.state == "success", run.table()
    assert all(state == "success" for *_, state in run.tasks), run.table()
    workers = {host.rsplit("/", 1)[-1] for _, _, host, _ in run.tasks}
    assert workers == {"worker-1", "worker-2"}, run.table()
    assert len([t for t in run.tasks if t[0] == "render"]) == 6  # 3 campaigns x 2 shards
    # The render tasks handed their batches to the export through the bucket, not a path.
    assert len(list(run.handoff.rglob("*.jsonl.gz"))) == 6
    assert not list((tmp_path / "cluster" / "rendered").rglob("*.jsonl.gz"))

    embedded_home = tmp_path / "embedded"
    _embedded_run(embedded_home, sample, monkeypatch)
    cluster, embedded = _messages(run.exports), _messages(embedded_home / "exports")
    assert len(cluster) > 0
    assert cluster.keys() == embedded.keys()
    assert cluster == embedded  # the same addresses, subjects and bodies

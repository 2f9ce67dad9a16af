"""The cluster, really run: Airflow's metadata in PostgreSQL, Redis as the Celery broker, two
Celery workers under different names, the warehouse on PostgreSQL, the landing zone and the
exports on an S3 endpoint. Its messages equal an embedded run's on the same data."""

from __future__ import annotations

import subprocess

import pytest
from profilecast_dev.cluster import run_cluster
from profilecast_dev.generate import generate

from .conftest import clean_env, venv_bin
from .esp_formats import messages_in
from .test_postgres import _ensure_server

pytestmark = pytest.mark.postgres
DATE = "2026-10-31"


def _messages(root) -> dict[str, tuple[str, str, str]]:
    folders = sorted(m.parent for m in root.rglob("manifest.json"))
    assert folders, f"no export under {root}"
    return {m["message_key"]: (m["to"], m["subject"], m["html"])
            for f in folders for m in messages_in(f)}  # fmt: skip


def test_two_celery_workers_run_the_dag_and_match_an_embedded_run(tmp_path):
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
    env = clean_env(PROFILECAST_HOME=str(embedded_home), PROFILECAST_SOURCES=str(sample))
    done = subprocess.run([venv_bin("profilecast"), "run", "--date", DATE], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cluster, embedded = _messages(run.exports), _messages(embedded_home / "exports")
    assert len(cluster) > 0
    assert cluster.keys() == embedded.keys()
    assert cluster == embedded  # the same addresses, subjects and bodies

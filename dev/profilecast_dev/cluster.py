"""A cluster on loopback (``make cluster``): Airflow's metadata in PostgreSQL, Redis as the
Celery broker, a scheduler, a DAG processor, a triggerer, an API server and two Celery
workers with different names; the warehouse on PostgreSQL; the landing zone, the rendered
batches the render tasks hand to the export, and the exports on an S3 endpoint (moto's
server). It runs the daily DAG for one interval through the
scheduler and prints one line per task instance, ``task_id map_index hostname state``.

Everything it creates is its own: a fresh metadata database, a warehouse schema, a Redis
database number and a bucket, dropped at the end unless ``keep`` is set.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@dataclass
class ClusterRun:
    state: str
    tasks: list[tuple[str, int, str, str]]  # task_id, map_index, hostname, state
    #: the exported batches, copied from the bucket before the S3 server stops
    exports: Path
    #: what the render tasks handed to the export through the bucket (copied too)
    handoff: Path

    def table(self) -> str:
        return "\n".join(f"{t} {m} {h} {s}" for t, m, h, s in self.tasks)


@contextmanager
def _s3() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _sql(*statements: str) -> None:
    """Run statements on the server outside a transaction (CREATE/DROP DATABASE need it)."""
    import psycopg2

    con = psycopg2.connect(dbname="postgres", **PG)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        con.close()


def _free_redis_db() -> int:
    """A Redis database number nobody uses (keys are counted), for the broker's queues."""
    import redis

    for db in range(10, 16):
        if redis.Redis(host="127.0.0.1", port=6379, db=db).dbsize() == 0:
            return db
    raise RuntimeError("no empty Redis database among 10-15 for the Celery broker")


def run_cluster(home: Path, sources: Path, date: str, workers: int = 2,
                keep: bool = False) -> ClusterRun:  # fmt: skip
    """Run ``date``'s interval on the cluster; returns the run's state and task instances."""
    import boto3
    from profilecast.config import DAG_ID, load_settings, set_process_env
    from profilecast.interval import Interval
    from profilecast.local_airflow import LocalAirflow, ensure_airflow
    from profilecast.storage import download_folder

    tag = uuid.uuid4().hex[:8]
    meta_db, schema, bucket = f"pc_meta_{tag}", f"pc_wh_{tag}", f"pc-cluster-{tag}"
    broker = f"redis://127.0.0.1:6379/{_free_redis_db()}"
    _sql(f"create database {meta_db}")
    with _s3() as endpoint:
        env = {
            "PROFILECAST_HOME": str(home),
            "PROFILECAST_SOURCES": str(sources),
            "PROFILECAST_DBT_TARGET": "postgres",
            "PROFILECAST_PG_SCHEMA": schema,
            "PROFILECAST_LANDING_URL": f"s3://{bucket}/landing",
            "PROFILECAST_EXPORT_URL": f"s3://{bucket}/exports",
            "PROFILECAST_HANDOFF_URL": f"s3://{bucket}/handoff",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{meta_db}"
            ),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": (
                f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{meta_db}"
            ),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "cluster",
            "AWS_SECRET_ACCESS_KEY": "cluster",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }
        saved = {k: os.environ.get(k) for k in env}
        set_process_env(**env)
        try:
            boto3.client("s3").create_bucket(Bucket=bucket)
            settings = load_settings()
            ensure_airflow(settings)
            interval = Interval.day(date)
            with LocalAirflow(settings, workers=workers) as af:
                run_id = af.trigger(interval, {"fail_fast": True}, run_id=f"cluster__{tag}")
                result = af.wait(run_id, timeout=1800)
                tis = af.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=500")
            exports = home / "cluster-exports"
            download_folder(env["PROFILECAST_EXPORT_URL"], exports)
            handed = download_folder(env["PROFILECAST_HANDOFF_URL"], home / "cluster-handoff")
            tasks = sorted(
                (t["task_id"], int(t.get("map_index", -1)), str(t.get("hostname") or "-"),
                 t["state"]) for t in tis.get("task_instances", [])
            )  # fmt: skip
            return ClusterRun(result.state, tasks, exports, handed)
        finally:
            set_process_env(**saved)
            if not keep:
                _drop(meta_db, schema, broker)


def _drop(meta_db: str, schema: str, broker: str) -> None:
    import redis

    _sql(f"drop database if exists {meta_db} with (force)",
         f"drop schema if exists {schema} cascade", f"drop schema if exists {schema}_raw cascade")  # fmt: skip
    redis.Redis.from_url(broker).flushdb()


def main(contacts: int, date: str, home: Path, workers: int) -> int:
    from profilecast_dev.generate import generate

    sources = home / "sample"
    if not sources.exists():
        generate(sources, contacts=contacts, seed=42)
    run = run_cluster(home, sources, date, workers)
    print(f"# {socket.gethostname()}: DAG run {run.state}; task_id map_index hostname state")
    print(run.table())
    return 0 if run.state == "success" else 1

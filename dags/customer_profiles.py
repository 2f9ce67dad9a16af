"""customer_profiles: sources -> raw -> dbt -> quality gate -> render -> export.

After the gate the profiles are also published for the collector's profile API, and every
render lays the collector's fresh facts (events since the build) over the profiles.

Daily, one data interval per run. Every task is idempotent for its interval: extraction keeps
the records whose watermark falls in the interval (plus a lookback; the first run takes all
history), the raw load replaces the interval's batches, dbt builds "as of" the interval's
end, and the export skips every message key already in the send ledger. Tasks that write the
DuckDB warehouse share the ``profilecast_warehouse`` pool (one slot: DuckDB allows a single
writing process). Heavy imports happen inside the tasks, never at parse time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable
from profilecast.config import DAG_ID, WAREHOUSE_POOL
from profilecast.sources.catalog import SOURCE_NAMES

RAW_ASSET = Asset("profilecast://warehouse/raw")
PROFILES_ASSET = Asset("profilecast://warehouse/customer_profiles")
EXPORTS_ASSET = Asset("profilecast://exports")
SERVING_ASSET = Asset("profilecast://serving/profiles")


def _step(name: str, *args, **kwargs):
    """Run ``profilecast.pipeline.<name>``. In a run whose conf says ``{"fail_fast": true}``
    (a person waiting on ``profilecast run``), a failure ends the task at once instead of
    going through its retries; scheduled runs keep their retries."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException
    from profilecast import pipeline

    try:
        return getattr(pipeline, name)(*args, **kwargs)
    except Exception as exc:
        context = get_current_context()
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        ti = context.get("ti")
        print(f"PROFILECAST_TASK_FAILED task_id={getattr(ti, 'task_id', '?')} "
              f"error={type(exc).__name__}: {str(exc)[:2000]}")  # fmt: skip
        if conf.get("fail_fast"):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    tags=["profilecast", "profiles", "email"],
    params={
        "full_refresh": Param(
            False,
            type="boolean",
            description="Rebuild the incremental models (event staging, engagement and "
            "behaviour layers) from all history, as after a change to a model's SQL. Customer "
            "ids and the history tables are kept.",
        )
    },
    doc_md=__doc__,
)
def customer_profiles():
    @task(pool=WAREHOUSE_POOL)
    def apply_erasures() -> list[dict]:
        """Carry out erasure requests recorded since the last run (the collector's privacy
        API, or a CLI request that found the warehouse busy) before anything is loaded."""
        return _step("apply_erasures")

    @task(retries=0, execution_timeout=timedelta(hours=3))
    def warehouse_pool_watch(ti=None, run_id=None) -> str:
        """Fail with the fix when the warehouse pool is missing: Airflow itself only logs a
        task that waits on a pool it does not have."""
        from airflow.sdk.exceptions import AirflowFailException
        from profilecast.config import pool_wait_seconds
        from profilecast.pool_watch import PoolMissing, watch

        try:
            return watch(lambda **kw: ti.get_task_states(dag_id=DAG_ID, **kw), run_id,
                         pool_wait_seconds())  # fmt: skip
        except PoolMissing as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(retries=3)
    def extract(source: str, data_interval_start=None, data_interval_end=None) -> list[dict]:
        """Read one source's drop for the interval into the Parquet landing zone."""
        return _step("extract", source, data_interval_start, data_interval_end)

    @task(pool=WAREHOUSE_POOL, outlets=[RAW_ASSET])
    def load_raw(manifests: list, data_interval_end=None) -> list[dict]:
        """Replace the interval's batches in raw tables, quarantine and load_batches."""
        return _step("load", manifests, data_interval_end)

    @task(pool=WAREHOUSE_POOL, outlets=[PROFILES_ASSET])
    def dbt_build(
        loaded: list, data_interval_start=None, data_interval_end=None, params=None
    ) -> dict:
        """dbt build (staging, identity, profiles, segments, tests) and segment tables:
        incremental, or from all history when the run's ``full_refresh`` param says so."""
        full_refresh = bool((params or {}).get("full_refresh", False))
        return _step("transform", data_interval_start, data_interval_end, full_refresh=full_refresh)

    @task(pool=WAREHOUSE_POOL)
    def build_audiences(built: dict, data_interval_start=None) -> dict:
        """Campaign audiences after suppression, with their message keys."""
        return _step("audiences", data_interval_start)

    @task(pool=WAREHOUSE_POOL, retries=0)
    def quality_gate(audience_sizes: dict, data_interval_start=None, data_interval_end=None) -> str:
        """Great Expectations suites; a critical failure stops render and export."""
        return _step("gate", data_interval_start, data_interval_end)

    @task(pool=WAREHOUSE_POOL, outlets=[SERVING_ASSET])
    def publish_profiles(report: str) -> dict:
        """The gated profiles, published for the collector's profile API (reads only)."""
        return _step("publish_profiles")

    @task
    def list_campaigns(report: str, data_interval_start=None) -> list[dict]:
        """Promote experiment winners (policy ``promote``, each decision logged with its
        evidence), then list the (campaign, shard) pairs to render: one mapped task each."""
        return _step("plan_render", data_interval_start)

    @task
    def render(campaign_id: str, shard: int, shards: int, data_interval_start=None) -> dict:
        """Render one shard of a campaign's audience with the sandboxed Jinja2 templates."""
        return _step("render", campaign_id, data_interval_start, shard=shard, shards=shards)

    @task(pool=WAREHOUSE_POOL, outlets=[EXPORTS_ASSET])
    def export(rendered: list, data_interval_start=None, run_id=None) -> list[dict]:
        """Write batches and manifests; record every message key in the send ledger."""
        return _step("export", list(rendered), data_interval_start, run_id)

    @task
    def summarize(rendered: list, exports: list, data_interval_start=None) -> dict:
        """Figures for the run: rows per source, quarantine, profiles, segments, exports."""
        summary = _step("summarize", data_interval_start, list(rendered), list(exports))
        print("PROFILECAST_SUMMARY", summary)
        return summary

    warehouse_pool_watch()
    erased = apply_erasures()
    extracted = [extract.override(task_id=f"extract_{s}")(s) for s in SOURCE_NAMES]
    erased >> extracted
    loaded = load_raw(extracted)
    built = dbt_build(loaded)
    sizes = build_audiences(built)
    report = quality_gate(sizes)
    publish_profiles(report)
    rendered = render.expand_kwargs(list_campaigns(report))
    exported = export(rendered)
    summarize(rendered, exported)


customer_profiles()

"""A warehouse built by an earlier version, built again by this one: columns the incremental
models gained since are filled in for the rows already stored."""

from __future__ import annotations

from profilecast import pipeline
from profilecast.warehouse import connect

from tests.test_pipeline_quality import AS_OF, DS


def _run(settings, selection: str) -> None:
    from profilecast.warehouse.dbt import run_dbt

    dbt_vars = {"as_of": AS_OF, "run_date": DS, **pipeline.build_vars(settings)}
    run_dbt(settings, "run", ["--select", selection], dbt_vars)


def test_staged_esp_events_without_their_email_key_get_it(copy_of):
    """stg_esp__events gained email_key (the address as the identity records key it); the
    events staged before it are linked by it, so the next build fills it in."""
    staged, identified = "stg_esp__events", "int_esp_events_identified"
    keyed = (f"select count(*) filter (where email_key is null and email is not null), "
             f"count(*) filter (where email_key <> lower(trim(email))), count(*) from {staged}")  # fmt: skip
    with connect(copy_of) as wh:
        missing, wrong, total = wh.query(keyed)[0]  # as this version staged them
        assert total > 1000 and missing == 0 and wrong == 0
        linked = wh.query(f"select count(*), count(customer_id) from {identified}")[0]
        assert linked[1] > 100
        for table in (staged, identified):  # as an earlier version left them
            wh.execute(f"alter table {table} drop column email_key")
    _run(copy_of, f"{staged} {identified}")
    with connect(copy_of, read_only=True) as wh:
        missing, wrong, total = wh.query(keyed)[0]
        assert total > 1000 and missing == 0 and wrong == 0
        assert wh.query(f"select count(*), count(customer_id) from {identified}")[0] == linked

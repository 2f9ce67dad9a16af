"""An analyst adds a segment file, sees it everywhere, then removes it and sees it retired."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

from profilecast import cli, pipeline
from profilecast.config import REPO_ROOT, load_settings
from profilecast.warehouse import connect

DAY = datetime(2026, 10, 31, tzinfo=UTC)

NEW_SEGMENT = """{{ config(meta={
    'description': 'Browsed camping gear this month.',
    'owner': 'test-analyst',
    'segment_tags': ['Shopper', 'Shopper > CampingCurious'],
}) }}

with

profiles as (

    select * from {{ ref('customer_profiles') }}

),

final as (

    select customer_id
    from profiles
    where top_category = 'Camping'

)

select * from final
"""


def _interval(days: int):
    return DAY + timedelta(days=days), DAY + timedelta(days=days + 1)


def test_add_and_retire_a_segment(tmp_path, monkeypatch, built, capsys):
    project = tmp_path / "dbt_project"
    shutil.copytree(
        REPO_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    monkeypatch.setenv("PROFILECAST_DBT_PROJECT_DIR", str(project))
    # Day 1: the session's warehouse, built for 2026-10-31 by the same project (a copy).
    (tmp_path / "home").mkdir()
    shutil.copy(built.warehouse_path, tmp_path / "home" / "warehouse.duckdb")
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(built.sources))
    settings = load_settings()

    # Day 2: the analyst adds one file. Nothing else is edited.
    (project / "models" / "segments" / "camping_curious.sql").write_text(NEW_SEGMENT)
    start, end = _interval(1)
    sizes = pipeline.transform(start, end, settings)["segments"]
    assert sizes["camping_curious"] > 0
    with connect(settings, read_only=True) as wh:
        members = wh.query(
            "select count(*) from customer_segments where segment = 'camping_curious'"
        )[0][0]
        entered = wh.query(
            "select count(*) from segment_membership_history "
            "where segment = 'camping_curious' and entered_at = '2026-11-01' and exited_at is null"
        )[0][0]
        one = wh.query(
            "select min(customer_id) from customer_segments where segment = 'camping_curious'"
        )[0][0]
        tags = {
            t
            for (t,) in wh.query(
                "select tag_path from customer_tags where customer_id = %s", (one,)
            )
        }
        owner = wh.query(
            "select owner from segment_runs where segment = 'camping_curious' and run_date = '2026-11-01'"
        )[0][0]
    assert members == entered == sizes["camping_curious"]
    assert {"Shopper", "Shopper > CampingCurious"} <= tags
    assert owner == "test-analyst"
    assert cli.main(["segments"]) == 0
    listing = capsys.readouterr().out
    assert "camping_curious" in listing and f"{members:,}" in listing
    assert cli.main(["explain", one]) == 0
    explained = capsys.readouterr().out
    assert "camping_curious" in explained and "top_category = Camping" in explained

    # Day 3: the file is deleted; the segment is retired and its history is kept.
    (project / "models" / "segments" / "camping_curious.sql").unlink()
    start, end = _interval(2)
    sizes = pipeline.transform(start, end, settings)["segments"]
    assert "camping_curious" not in sizes
    with connect(settings, read_only=True) as wh:
        assert (
            wh.query("select count(*) from customer_segments where segment = 'camping_curious'")[0][
                0
            ]
            == 0
        )
        closed = wh.query(
            "select count(*) from segment_membership_history "
            "where segment = 'camping_curious' and exited_at = '2026-11-02'"
        )[0][0]
        retired = wh.query(
            "select is_retired from segment_runs where segment = 'camping_curious' and run_date = '2026-11-02'"
        )[0][0]
    assert closed == members and retired
    assert cli.main(["segments"]) == 0
    assert "camping_curious (retired)" in capsys.readouterr().out

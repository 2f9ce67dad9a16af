"""Configuration from the environment: dbt var overrides."""

from __future__ import annotations

import pytest
from profilecast.config import load_settings


def test_dbt_vars_override_is_a_json_object(monkeypatch):
    monkeypatch.delenv("PROFILECAST_DBT_VARS", raising=False)
    assert load_settings().dbt_vars == {}
    monkeypatch.setenv("PROFILECAST_DBT_VARS", '{"identity_match_threshold": 10}')
    assert load_settings().dbt_vars == {"identity_match_threshold": 10}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"a string"'])
def test_dbt_vars_override_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("PROFILECAST_DBT_VARS", raw)
    with pytest.raises(ValueError, match="PROFILECAST_DBT_VARS"):
        _ = load_settings().dbt_vars


def test_duckdb_memory_limit_defaults_below_the_machine_ram(monkeypatch):
    import os

    from profilecast.config import duckdb_memory_limit

    monkeypatch.setenv("PROFILECAST_DUCKDB_MEMORY_LIMIT", "3GB")
    assert duckdb_memory_limit() == "3GB"
    monkeypatch.delenv("PROFILECAST_DUCKDB_MEMORY_LIMIT")
    default = duckdb_memory_limit()
    most_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8) // 2**20
    assert default.endswith("MB") and 0 < int(default[:-2]) <= most_mb
    # 2 GiB a core, and never more than 80% of the RAM however many cores there are.
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert duckdb_memory_limit() == f"{min(2048, most_mb)}MB"
    monkeypatch.setattr(os, "cpu_count", lambda: 4096)
    assert duckdb_memory_limit() == f"{most_mb}MB"


def test_dbt_and_profilecast_connections_share_the_memory_cap(monkeypatch, tmp_path):
    from profilecast.warehouse import connect
    from profilecast.warehouse.dbt import dbt_env

    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path))
    monkeypatch.setenv("PROFILECAST_DUCKDB_MEMORY_LIMIT", "1GB")
    settings = load_settings()
    assert dbt_env(settings)["PROFILECAST_DUCKDB_MEMORY_LIMIT"] == "1GB"
    with connect(settings) as wh:
        (limit,) = wh.query("select current_setting('memory_limit')")[0]
    assert limit == "953.6 MiB"  # DuckDB's 1GB is 10^9 bytes


def test_a_bad_memory_limit_is_a_clear_error(monkeypatch, tmp_path):
    from profilecast.warehouse import WarehouseError, connect

    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path))
    monkeypatch.setenv("PROFILECAST_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(WarehouseError, match="PROFILECAST_DUCKDB_MEMORY_LIMIT='lots'"):
        with connect(load_settings()):
            pass


@pytest.mark.parametrize(
    ("raw", "message"),
    [("two", "PROFILECAST_RENDER_SHARDS='two' is not a whole number"),
     ("0", "PROFILECAST_RENDER_SHARDS=0 must be at least 1")],
)  # fmt: skip
def test_integer_settings_name_the_variable_when_bad(monkeypatch, raw, message):
    from profilecast.pipeline import render_shards

    monkeypatch.setenv("PROFILECAST_RENDER_SHARDS", raw)
    with pytest.raises(ValueError, match=message):
        render_shards()


def test_export_workers_default_to_the_cores_and_take_the_floor_in_mib(monkeypatch):
    import os

    from profilecast.config import export_parallel_min_bytes, export_workers

    monkeypatch.delenv("PROFILECAST_EXPORT_WORKERS", raising=False)
    monkeypatch.delenv("PROFILECAST_EXPORT_PARALLEL_MIN_MB", raising=False)
    assert export_workers() == len(os.sched_getaffinity(0))
    assert export_parallel_min_bytes() == 2**20
    monkeypatch.setenv("PROFILECAST_EXPORT_WORKERS", "3")
    monkeypatch.setenv("PROFILECAST_EXPORT_PARALLEL_MIN_MB", "0")
    assert (export_workers(), export_parallel_min_bytes()) == (3, 0)
    monkeypatch.setenv("PROFILECAST_EXPORT_WORKERS", "0")
    with pytest.raises(ValueError, match="PROFILECAST_EXPORT_WORKERS=0 must be at least 1"):
        export_workers()


@pytest.mark.parametrize(("raw", "on"), [("", True), ("true", True), ("OFF", False), ("0", False)])
def test_data_docs_switch(monkeypatch, raw, on):
    from profilecast.config import data_docs

    monkeypatch.setenv("PROFILECAST_DATA_DOCS", raw)
    assert data_docs() is on


def test_a_bad_data_docs_value_is_a_clear_error(monkeypatch):
    from profilecast.config import data_docs

    monkeypatch.setenv("PROFILECAST_DATA_DOCS", "maybe")
    with pytest.raises(ValueError, match="PROFILECAST_DATA_DOCS='maybe'"):
        data_docs()

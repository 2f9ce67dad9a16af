"""The warehouse: a connection per engine (DuckDB file or PostgreSQL) with one
``transaction()`` helper, and the dbt runner. dbt owns the warehouse's state; Python writes
only the raw layer, the quarantine and load accounting, audiences and the send ledger.
"""

from profilecast.warehouse.connection import Warehouse, WarehouseError, connect, raw_schema_name
from profilecast.warehouse.dbt import dbt_build, dbt_manifest, dbt_unit_tests, run_dbt

__all__ = [
    "Warehouse",
    "WarehouseError",
    "connect",
    "dbt_build",
    "dbt_manifest",
    "dbt_unit_tests",
    "raw_schema_name",
    "run_dbt",
]

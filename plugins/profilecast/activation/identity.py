"""Identity figures for a run, and accuracy measurement against the generator's truth.

dbt owns identity state: ``identity_registry`` (every record's stable customer id) and the
``identity_merge_history`` / ``identity_split_history`` tables are incremental models in
``dbt_project/models/state/``. This module only reads them.
"""

from __future__ import annotations

from typing import Any


def identity_figures(wh: Any, run_date: str) -> dict[str, int]:
    """Merges and splits recorded on ``run_date``; records and customer ids now."""
    merges = wh.query(
        "select count(*) from identity_merge_history where run_date = %s", (run_date,)
    )
    splits = wh.query(
        "select count(*) from identity_split_history where run_date = %s", (run_date,)
    )
    ids = wh.query("select count(*), count(distinct customer_id) from identity_registry")
    return {
        "merges": int(merges[0][0]),
        "splits": int(splits[0][0]),
        "records": int(ids[0][0]),
        "customers": int(ids[0][1]),
    }

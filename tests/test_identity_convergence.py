"""The convergence check of identity's components fails where it should, and only there.

``assert_identity_components_converged`` checks the deterministic edges of the records the
newest build labelled, and the fuzzy edges on the full labels. On a copy of the built
warehouse: it passes; a wrong deterministic label on a record of the newest build fails it;
the same label in a component an earlier build labelled is trusted (the scope); a wrong full
label at the end of an accepted fuzzy edge fails it.
"""

from __future__ import annotations

import duckdb
import pytest
from profilecast import pipeline
from profilecast.warehouse import WarehouseError
from profilecast.warehouse.dbt import run_dbt

TEST = "assert_identity_components_converged"


def _check(settings) -> None:
    dbt_vars = {"as_of": "2026-11-01 00:00:00", "run_date": "2026-10-31"}
    run_dbt(settings, "test", ["--select", TEST], {**dbt_vars, **pipeline.build_vars(settings)})


def _sql(settings, statement: str, params: tuple = ()) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        return con.execute(statement, params).fetchall()
    finally:
        con.close()


@pytest.mark.timeout(600)
def test_convergence_check_catches_split_labels(copy_of):
    _check(copy_of)  # the built warehouse passes

    # A record at the end of an accepted deterministic edge, labelled by the newest build.
    record, label = _sql(
        copy_of,
        "select edges.node_a, labels.deterministic_label "
        "from int_identity_edges_deterministic as edges "
        "inner join int_identity_clusters_deterministic as labels "
        "on labels.record_key = edges.node_a "
        "where edges.is_accepted and labels._labelled_at = "
        "(select max(_labelled_at) from int_identity_clusters_deterministic) "
        "order by edges.node_a limit 1",
    )[0]
    _sql(
        copy_of,
        "update int_identity_clusters_deterministic set deterministic_label = 'split' "
        "where record_key = ?",
        (record,),
    )
    with pytest.raises(WarehouseError, match=TEST):
        _check(copy_of)

    # The same component labelled by an earlier build, whose check passed: not read again.
    _sql(
        copy_of,
        "update int_identity_clusters_deterministic "
        "set _labelled_at = _labelled_at - interval 1 day "
        "where deterministic_label in (?, 'split')",
        (label,),
    )
    _check(copy_of)

    # A full label split across an accepted fuzzy edge.
    fuzzy = _sql(copy_of, "select node_a from int_identity_edges_scored where is_accepted limit 1")
    assert fuzzy, "the built warehouse has no accepted fuzzy edge to break"
    _sql(
        copy_of,
        "update int_identity_clusters_resolved set full_label = 'split' where record_key = ?",
        (fuzzy[0][0],),
    )
    with pytest.raises(WarehouseError, match=TEST):
        _check(copy_of)

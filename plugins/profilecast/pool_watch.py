"""The warehouse pool's watchdog: a clear task failure when the pool is missing.

A task assigned to a pool the deployment lacks waits in ``scheduled`` forever; Airflow only
logs it and shows a DAG warning, and in Airflow 3 no task can read the pools. So the daily
DAG runs this check beside its first warehouse task: it watches that task's state through
the Task SDK (``ti.get_task_states``). Once the task leaves ``scheduled`` the check passes.
If it is still waiting after ``PROFILECAST_POOL_WAIT_SECONDS`` while no other run holds a
warehouse task, the pool is missing: the check fails and says how to add it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from profilecast.config import POOLS_FILE, WAREHOUSE_POOL

#: the tasks of the daily DAG that run in the warehouse pool
WAREHOUSE_TASKS = ("apply_erasures", "load_raw", "dbt_build", "build_audiences", "quality_gate",
                   "publish_profiles", "export")  # fmt: skip
HOLDING = ("queued", "running", "restarting")


class PoolMissing(RuntimeError):
    """The first warehouse task waits on a pool that nothing holds."""


def watch(states: Callable[..., dict[str, dict[str, Any]]], run_id: str, limit: float,
          first: str = "apply_erasures", pool_tasks: Iterable[str] = WAREHOUSE_TASKS,
          poll: float = 10.0, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> str:  # fmt: skip
    """Wait until ``first`` leaves ``scheduled`` in ``run_id``; raise PoolMissing when it
    waited ``limit`` seconds and no other run holds a warehouse task. ``states(task_ids=,
    run_ids=)`` is ``ti.get_task_states`` for this DAG: {run_id: {task_id: state}}."""
    since = clock()
    while True:
        state = states(task_ids=[first], run_ids=[run_id]).get(run_id, {}).get(first)
        if state not in (None, "scheduled"):
            return f"{first} is {state}: the {WAREHOUSE_POOL} pool lets the warehouse tasks run"
        if clock() - since >= limit:
            others = states(task_ids=list(pool_tasks))
            busy = sorted(f"{run}:{task}" for run, tasks in others.items() if run != run_id
                          for task, s in tasks.items() if s in HOLDING)  # fmt: skip
            if not busy:
                raise PoolMissing(
                    f"{first} has waited {limit:.0f}s to start and no other run holds the "
                    f"warehouse: this Airflow most likely has no {WAREHOUSE_POOL!r} pool. Add "
                    f"it with `airflow pools import {POOLS_FILE.relative_to(POOLS_FILE.parents[1])}` "
                    f"(or `airflow pools set {WAREHOUSE_POOL} 1 'warehouse writers'`), then "
                    "clear this run"
                )
            since = clock()  # the warehouse is busy with another run: a legitimate wait
        sleep(poll)

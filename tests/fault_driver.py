"""Runs one data interval through the DAG's steps, in the DAG's order, in this process, and
optionally dies by SIGKILL while (or right after) one named task runs.

    python tests/fault_driver.py 2026-10-31 [TASK DELAY_SECONDS [FROM_TASK]]

The environment (PROFILECAST_HOME, PROFILECAST_SOURCES) says which warehouse. The steps are
the functions the DAG's tasks call, so a kill here leaves exactly what a killed task leaves.

With FROM_TASK the run starts there, as Airflow's retry of a killed task does: the tasks
before it succeeded earlier. A task that needs an earlier task's result (Airflow would pass
it through XCom) starts the run at that task instead, which computes it again.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

TASKS = ("extract", "load_raw", "dbt_build", "build_audiences", "quality_gate", "render",
         "export", "summarize")  # fmt: skip
SOURCES = ("crm", "billing", "web", "esp")
#: The task whose result a task reads (the manifests, the rendered batches, the exports).
NEEDS = {"load_raw": "extract", "export": "render", "summarize": "export"}


def first_task(start_at: str | None) -> int:
    """The index of the task a run that resumes at ``start_at`` begins with."""
    if start_at is None:
        return 0
    while start_at in NEEDS:
        start_at = NEEDS[start_at]
    return TASKS.index(start_at)


def main(ds: str, kill_task: str | None, delay: float, start_at: str | None = None) -> None:
    from profilecast import pipeline
    from profilecast.interval import Interval

    iv = Interval.day(ds)
    start, end = iv.start, iv.end
    skip = set(TASKS[: first_task(start_at)])

    def task(name: str, fn, *args, **kwargs):
        if name in skip:
            print(f"TASK {name} skipped", flush=True)
            return None
        print(f"TASK {name} start", flush=True)
        if name == kill_task:
            threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
            fn(*args, **kwargs)
            time.sleep(3600)  # the task finished first: die right after it, before the next
        return fn(*args, **kwargs)

    manifests = task("extract", lambda: [pipeline.extract(s, start, end) for s in SOURCES])
    task("load_raw", pipeline.load, manifests, end)
    task("dbt_build", pipeline.transform, start, end)
    task("build_audiences", pipeline.audiences, start)
    task("quality_gate", pipeline.gate, start, end)
    shards = pipeline.render_shards()
    rendered = task("render", lambda: [
        pipeline.render(s["campaign_id"], start, shard=s["shard"], shards=s["shards"])
        for s in shards
    ])  # fmt: skip
    exports = task("export", pipeline.export, rendered, start, "fault-test-run")
    task("summarize", pipeline.summarize, start, rendered, exports)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None,
         float(sys.argv[3]) if len(sys.argv) > 3 else 1.0,
         sys.argv[4] if len(sys.argv) > 4 else None)  # fmt: skip

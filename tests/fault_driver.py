"""Runs one data interval through the DAG's steps, in the DAG's order, in this process, and
optionally dies by SIGKILL while (or right after) one named task runs.

    python tests/fault_driver.py 2026-10-31 [TASK] [DELAY_SECONDS]

The environment (PROFILECAST_HOME, PROFILECAST_SOURCES) says which warehouse. The steps are
the functions the DAG's tasks call, so a kill here leaves exactly what a killed task leaves.
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


def main(ds: str, kill_task: str | None, delay: float) -> None:
    from profilecast import pipeline
    from profilecast.interval import Interval

    iv = Interval.day(ds)
    start, end = iv.start, iv.end

    def task(name: str, fn, *args, **kwargs):
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
         float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)  # fmt: skip

"""Generator and extraction at scale: time and peak memory.

    .venv/bin/python benchmarks/sources_scale.py --contacts 1000000 --workers 2 --out /tmp/pc-1m

Steps (each in its own process, so peak RSS is per step):
1. ``profilecast generate`` with the given workers;
2. extraction of the four sources in parallel processes (as Airflow's tasks would run);
3. the raw load into a fresh DuckDB warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CODE_EXTRACT = """
import json, sys
from datetime import datetime, timezone
from profilecast.config import load_settings
from profilecast import sources
from profilecast.interval import Interval
s = load_settings()
st = datetime(2026, 10, 31, tzinfo=timezone.utc); en = datetime(2026, 11, 1, tzinfo=timezone.utc)
json.dump(sources.extract_source(s, sys.argv[1], Interval(st, en), sources.History()), open(sys.argv[2], 'w'))
"""
CODE_LOAD = """
import json, sys
from datetime import datetime, timezone
from profilecast.config import load_settings
from profilecast import sources
from profilecast.warehouse import connect
s = load_settings()
ms = [m for p in sys.argv[1:] for m in json.load(open(p))]
with connect(s) as wh:
    sources.ensure_raw_tables(wh)
    done = sources.load_raw(wh, ms, datetime(2026, 11, 1, tzinfo=timezone.utc))
print(sum(int(d['rows_loaded']) for d in done))
"""


def _timed(cmds: list[list[str]], env: dict[str, str]) -> tuple[float, float]:
    """Run commands in parallel; wall seconds and the largest child peak RSS (MiB)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env) for c in cmds]
    peak = 0.0
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{p.args} failed")
        peak = max(peak, usage.ru_maxrss / 1024)
    return time.perf_counter() - start, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/profilecast-bench")
    ap.add_argument("--skip-generate", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    bindir = Path(sys.executable).parent
    env = dict(
        os.environ, PROFILECAST_HOME=str(out / "home"), PROFILECAST_SOURCES=str(out / "drop")
    )
    report: dict[str, object] = {"contacts": args.contacts, "workers": args.workers}
    if not args.skip_generate:
        gen_t, gen_rss = _timed([[str(bindir / "profilecast"), "generate", "--contacts",
                                  str(args.contacts), "--workers", str(args.workers), "--quiet",
                                  "--out", str(out / "drop")]], env)  # fmt: skip
        # The generator's worker processes are grandchildren: RUSAGE_CHILDREN covers them.
        gen_rss = max(gen_rss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        report.update(generate_seconds=round(gen_t, 1), generate_peak_rss_mib=round(gen_rss))
    rows = json.loads((out / "drop" / "truth" / "rates.json").read_text())["rows"]
    report["rows"] = rows
    manifests = [str(out / f"manifest-{s}.json") for s in ("crm", "billing", "web", "esp")]
    ext_t, ext_rss = _timed(
        [[sys.executable, "-c", CODE_EXTRACT, s, m] for s, m in
         zip(("crm", "billing", "web", "esp"), manifests, strict=True)], env)  # fmt: skip
    report.update(extract_seconds=round(ext_t, 1), extract_peak_rss_mib=round(ext_rss))
    warehouse = out / "home" / "warehouse.duckdb"
    warehouse.unlink(missing_ok=True)
    load_t, load_rss = _timed([[sys.executable, "-c", CODE_LOAD, *manifests]], env)
    report.update(load_seconds=round(load_t, 1), load_peak_rss_mib=round(load_rss))
    report["self_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    (out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

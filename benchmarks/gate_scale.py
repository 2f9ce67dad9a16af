"""Quality-gate time on a built warehouse, and on the same warehouse scaled to N profiles.

    .venv/bin/python benchmarks/gate_scale.py --home /tmp/pc-100k/home --profiles 1000000

The scaled copy repeats customer_profiles (with new ids) until it holds N rows; every other
table stays as built. Times the full gate (all suites, GX Data Docs included).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _time_gate(settings, label: str) -> None:
    from profilecast.quality.gate import run_gate
    from profilecast.warehouse import connect

    with connect(settings, read_only=True) as wh:
        n = wh.query("select count(*) from customer_profiles")[0][0]
        t = time.perf_counter()
        run_gate(wh, settings.expectations_dir, "2026-10-31", "2026-11-01 00:00:00",
                 settings.home / "reports" / "gate-bench", docs_root=settings.home / "gx")  # fmt: skip
        print(f"{label}: {n:,} profiles, gate {time.perf_counter() - t:.1f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    args = ap.parse_args()
    from profilecast.config import load_settings
    from profilecast.warehouse import connect

    base = replace(load_settings(), home=Path(args.home))
    _time_gate(base, "as built")
    scaled_home = Path(tempfile.mkdtemp(prefix="pc-gate-"))
    shutil.copy(base.warehouse_path, scaled_home / "warehouse.duckdb")
    scaled = replace(base, home=scaled_home)
    with connect(scaled) as wh:
        have = wh.query("select count(*) from customer_profiles")[0][0]
        copies = -(-args.profiles // have)
        wh.execute(
            "create table profiles_scaled as select * replace "
            "(case when k = 0 then customer_id else customer_id || '_' || cast(k as varchar) end as customer_id) "
            f"from customer_profiles, range({copies}) r(k) limit {args.profiles}"
        )
        wh.execute("drop table customer_profiles")
        wh.execute("alter table profiles_scaled rename to customer_profiles")
    _time_gate(scaled, "scaled")
    shutil.rmtree(scaled_home)


if __name__ == "__main__":
    main()

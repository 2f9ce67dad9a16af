"""`make bench` works: the pipeline at a tiny size, every stage timed against its floor.

The figures at this size say nothing about speed (dbt's start-up dominates); the test only
proves that the benchmark runs the real stages on both days and writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("extract", "load_raw", "dbt_build", "audiences", "quality_gate", "render", "export")


@pytest.mark.timeout(900)
def test_bench_writes_every_stage_with_its_floor_and_the_incremental_ratio(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--contacts", "200",
         "--out", str(out), "--workers", "1"],
        # Two render shards: the stage runs them in parallel processes, as the DAG does.
        env=clean_env(PROFILECAST_RENDER_SHARDS="2"), capture_output=True, text=True, timeout=850,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "bench.json").read_text())
    rows = {(r["day"], r["stage"]): r for r in result["stages"]}
    assert set(rows) == {(d, s) for d in ("full", "next") for s in STAGES}
    for r in rows.values():
        assert r["wall_s"] > 0 and r["cpu_s"] >= 0 and r["peak_mib"] > 0
    # Both days processed real rows: history first, then one day's increment.
    assert rows["full", "extract"]["rows"] > rows["next", "extract"]["rows"] > 0
    assert rows["full", "dbt_build"]["rows"] > 0 and rows["full", "export"]["rows"] > 0
    # Every message the shards rendered was exported, once.
    assert rows["full", "render"]["rows"] == rows["full", "export"]["rows"]
    floors = {(f["day"], f["stage"]) for f in result["floors"]}
    assert {("full", "extract"), ("full", "dbt_build"), ("full", "render"),
            ("full", "export")} <= floors  # fmt: skip
    for stage in ("extract", "dbt_build", "render", "export"):
        assert rows["full", stage]["vs_floor"] > 0
    assert 0 < result["next_day_vs_full"] and 0 < result["dbt_incremental_vs_full_refresh"]
    table = (out / "bench.md").read_text()
    assert "| next | dbt_build |" in table and "of the full run" in table

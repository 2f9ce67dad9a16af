"""The dbt runner: ``dbt build`` against the configured target, in a child process that
dies with its parent.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from profilecast.config import Settings, duckdb_memory_limit, postgres_params, process_env
from profilecast.warehouse.connection import WarehouseError, raw_schema_name

log = logging.getLogger(__name__)

INTERVAL_VARS = ("as_of", "run_date")


def dbt_env(settings: Settings) -> dict[str, str]:
    env = process_env()
    env.update(
        {
            # Absolute: dbt runs in the home (run_dbt), not where profilecast was started.
            "DBT_PROFILES_DIR": str(settings.dbt_project_dir.resolve()),
            # Relative to the home, where dbt runs (run_dbt): the profile, which dbt's parse
            # state records, is then the same for every home (see seed_partial_parse).
            "PROFILECAST_WAREHOUSE": str(settings.warehouse_path.relative_to(settings.home)),
            "PROFILECAST_RAW_SCHEMA": raw_schema_name(settings),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "PROFILECAST_DUCKDB_MEMORY_LIMIT": duckdb_memory_limit(),
            "DBT_LOG_PATH": str(settings.home.resolve() / "dbt" / "logs"),
            "DBT_TARGET_PATH": str(settings.home.resolve() / "dbt" / "target"),
        }
    )
    pg = postgres_params()
    names = {"host": "HOST", "port": "PORT", "user": "USER", "password": "PASSWORD",
             "dbname": "DATABASE", "schema": "SCHEMA"}  # fmt: skip
    for key, name in names.items():
        env.setdefault(f"PROFILECAST_PG_{name}", str(pg[key]))
    return env


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when its parent dies.

    A task killed mid-build (SIGKILL, OOM killer, a lost worker) would otherwise leave dbt
    running on its own, holding DuckDB's write lock, and the task's retry would fail on it.
    Elsewhere than Linux this does nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def seed_partial_parse(settings: Settings) -> None:
    """Give a home without dbt's parse state the configured seed's (atomically: two tasks
    starting together may both copy it)."""
    import os
    import shutil

    seed = settings.dbt_parse_seed
    target = settings.home / "dbt" / "target"
    if seed is None or not seed.is_file() or (target / "partial_parse.msgpack").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f".partial_parse.{os.getpid()}"
    shutil.copyfile(seed, partial)
    os.replace(partial, target / "partial_parse.msgpack")


def run_dbt(
    settings: Settings,
    command: str,
    args: Sequence[str] = (),
    dbt_vars: dict[str, Any] | None = None,
) -> str:
    """Run a dbt command against the configured target; return its output or raise."""
    settings.home.mkdir(parents=True, exist_ok=True)
    seed_partial_parse(settings)
    cmd = [
        dbt_executable(),
        command,
        "--project-dir",
        str(settings.dbt_project_dir.resolve()),
        "--target",
        settings.dbt_target,
        *args,
    ]
    merged = {**settings.dbt_vars, **(dbt_vars or {})}
    env = dbt_env(settings)
    # The values that change with every interval go in the environment (the macro
    # interval_var reads them), so the --vars, and dbt's parse checksum, stay the same from
    # one build to the next and dbt parses only what changed.
    for name in INTERVAL_VARS:
        env[f"PROFILECAST_{name.upper()}"] = str(merged.pop(name, ""))
    if merged:
        cmd += ["--vars", json.dumps(merged, sort_keys=True)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=settings.home,
                          preexec_fn=die_with_parent)  # fmt: skip
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-60:])
        raise WarehouseError(f"dbt {command} failed (exit {proc.returncode}):\n{tail}")
    return output


def dbt_build(
    settings: Settings, dbt_vars: dict[str, Any] | None = None, full_refresh: bool = False
) -> str:
    """``dbt build``: every model with its data tests, in dependency order.

    Incremental models (event staging, the engagement and behaviour layers) take only what
    changed since their last build; ``full_refresh`` rebuilds them from all history, as
    after a change to a model's SQL. The identity registry and the history models are
    never rebuilt (``full_refresh=false`` in their config): customer ids stay stable.

    Unit tests are left out, as dbt advises for production runs: they test the SQL, not the
    data, so they run where the SQL changes (``make test``, see :func:`dbt_unit_tests`).
    """
    args = ["--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else [])]
    return run_dbt(settings, "build", args, dbt_vars)


def dbt_unit_tests(settings: Settings, dbt_vars: dict[str, Any] | None = None) -> str:
    """Every dbt unit test (``unit_tests:`` in the project's YAML). Needs a built warehouse:
    a unit test of an incremental model reads its table's columns."""
    return run_dbt(settings, "test", ["--select", "test_type:unit"], dbt_vars)


def dbt_manifest(settings: Settings) -> dict[str, Any]:
    path = settings.home / "dbt" / "target" / "manifest.json"
    return json.loads(path.read_text())

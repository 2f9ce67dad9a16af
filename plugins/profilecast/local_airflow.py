"""A real Airflow on this machine: scheduler, DAG processor, triggerer and API server.

``airflow dags test`` runs every task in one process with no executor, which is not how
anybody runs Airflow. :class:`LocalAirflow` starts the four components as separate processes
on the project's Airflow home (SQLite metadata, the LocalExecutor), and drives DAG runs
through the public REST API (``/api/v2``) as an operator or an external trigger would:
trigger, wait, clear (rerun) and backfill. The API listens on loopback only and uses the
SimpleAuthManager with every request treated as admin, which is for this harness alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profilecast.airflow_api import AirflowApi, AirflowError, ApiError
from profilecast.airflow_setup import (
    airflow_bin,
    airflow_env,
    ensure_airflow,
    write_local_settings,
)
from profilecast.config import (
    DAG_ID,
    POOLS_FILE,
    Settings,
    pool_wait_seconds,
)
from profilecast.interval import Interval, utc

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
TERMINAL = {"success", "failed"}


@dataclass
class RunResult:
    run_id: str
    state: str
    seconds: float
    failed_tasks: list[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalAirflow:
    """Start with ``with LocalAirflow(settings) as af:``; every component stops on exit."""

    def __init__(
        self, settings: Settings, port: int | None = None, scheduled: bool = False,
        workers: int = 0,
    ) -> None:  # fmt: skip
        """``scheduled``: the scheduler creates runs from the DAGs' schedules, as in
        production (``profilecast up``); otherwise only the caller creates runs (tests and
        the simulation, whose days are not today)."""

        self.settings = settings
        self.port = port or free_port()
        ensure_airflow(settings)
        env = airflow_env(settings)
        env.update(
            {
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{self.port}/execution/"
                ),
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            }
        )
        if not scheduled:
            # Simulated days are not today: the harness creates each day's run (as the
            # clock would) and the scheduler must not add a run for the real today.
            env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
        self.env = env
        #: Celery workers to start beside the four components (the CeleryExecutor's), each
        #: under its own name: the task instances record which one ran them
        self.workers = workers
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_dir = settings.home / "logs" / "airflow"
        self.base = f"http://127.0.0.1:{self.port}/api/v2"
        #: requests retried while the SQLite metadata database is locked (see airflow_api)
        self.api = AirflowApi(self.base)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> LocalAirflow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180, unpause: tuple[str, ...] = (DAG_ID,)) -> None:
        """Start the components and wait until the scheduler is healthy and the DAGs are
        parsed. The task-execution API builds its versioned routes on its first request
        (about 8 s here): one request while the DAGs are parsed, so the first tasks do not
        wait for it."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        write_local_settings(self.settings.airflow_home)  # the libraries the tasks fork with
        commands = {name: ([airflow_bin(), name], self.env) for name in COMPONENTS}
        for k in range(1, self.workers + 1):
            name = f"worker-{k}"
            env = {**self.env, "PROFILECAST_WORKER_NAME": name,
                   "AIRFLOW__CORE__HOSTNAME_CALLABLE": "profilecast.config.worker_hostname"}  # fmt: skip
            commands[name] = ([airflow_bin(), "celery", "worker", "--concurrency", "1",
                               "--celery-hostname", f"{name}@%h", "--without-mingle",
                               "--without-gossip", "--skip-serve-logs"], env)  # fmt: skip
        for name, (argv, env) in commands.items():
            log = (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        probe = AirflowApi(self.base, patience=0, timeout=10)  # a server still starting
        warm = threading.Thread(target=self._warm_execution_api, args=(deadline,), daemon=True)
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = probe("GET", "/monitor/health")
                if warm.ident is None:  # not started yet
                    warm.start()
                dags = [probe("GET", f"/dags/{d}") for d in unpause or (DAG_ID,)]
                if health.get("scheduler", {}).get("status") == "healthy" and all(dags):
                    break
            except (OSError, AirflowError):
                pass
            time.sleep(1)
        else:
            raise AirflowError(
                f"Airflow did not become ready in {timeout:.0f}s; logs: {self.log_dir}"
            )
        for dag_id in unpause:
            self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        if warm.ident is not None:
            warm.join(max(0.0, deadline - time.monotonic()))

    def _warm_execution_api(self, deadline: float) -> None:
        import urllib.request

        url = f"http://127.0.0.1:{self.port}/execution/health"
        try:
            with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())):
                pass
        except OSError:
            pass  # only a warm-up: the tasks' own requests report a real failure

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left of it (the
        executor's workers live in the scheduler's group)."""
        import psutil

        descendants = []
        for proc in self.procs.values():
            try:  # e.g. the scheduler's log server, which leaves its process group
                descendants += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for proc in self.procs.values():
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.procs.clear()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AirflowError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    # -- REST API (self.api) -------------------------------------------------------------
    def trigger(self, interval: Interval, conf: dict[str, Any] | None = None,
                run_id: str | None = None) -> str:  # fmt: skip
        """A run of the daily interval, as the schedule would create it (logical date = the
        interval's start); returns its run id."""
        run_id = run_id or f"simulated__{interval.start.isoformat()}"
        return self.api.create_run(DAG_ID, run_id, {
            "logical_date": interval.start.isoformat(),
            "data_interval_start": interval.start.isoformat(),
            "data_interval_end": interval.end.isoformat(),
            "conf": conf or {},
        })  # fmt: skip

    def clear(self, run_id: str) -> None:
        """Rerun a finished DAG run from its first task (what "Clear" does in the UI)."""
        self.api("POST", f"/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False})

    def backfill(self, interval: Interval) -> str:
        """Backfill one earlier interval (reprocessing it if it already ran); returns the run
        id the scheduler creates or takes over for it.

        On SQLite, Airflow refuses to create a backfill while another component holds the
        database (HTTP 503, "Database is locked"): the request is retried for longer than
        others, since a backfill's creation waits for the scheduler's loop to let go."""
        AirflowApi(self.base, patience=180).create_backfill({
            "dag_id": DAG_ID,
            "from_date": interval.start.isoformat(),
            "to_date": interval.start.isoformat(),
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        })  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = self.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100&order_by=-run_after")
            for run in runs.get("dag_runs", []):
                start = run.get("data_interval_start")
                if run.get("run_type") == "backfill" and start and _same(start, interval.start):
                    return run["dag_run_id"]
                if start and _same(start, interval.start) and run["state"] in ("queued", "running"):
                    return run["dag_run_id"]
            time.sleep(1)
        raise AirflowError(f"the backfill of {interval.ds} created no DAG run")

    def wait(self, run_id: str, timeout: float = 3600, since: float | None = None,
             fail_fast: bool = False) -> RunResult:  # fmt: skip
        """Wait for a run to end; returns its state and the tasks that failed. ``fail_fast``
        (a person waits): the first failed task ends the wait with the run failed, where the
        run itself would wait for its other branches, or forever on a missing pool."""
        start = since or time.monotonic()
        deadline = start + timeout
        state = "queued"
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            state = run["state"]
            if state in TERMINAL:
                break
            failed = fail_fast and self.api(  # the pool's fix, if that is why, before the task's
                "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?state=failed&limit=1"
            ).get("total_entries", 0) > 0  # fmt: skip
            if failed or time.monotonic() - start > min(60, pool_wait_seconds() + 30):
                self._check_pools(run_id)
            if failed:
                state = "failed"
                break
            time.sleep(2)
        else:
            raise AirflowError(f"DAG run {run_id} still {state} after {timeout:.0f}s")
        tis = self.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=200")
        failed = [
            f"{t['task_id']}[{t.get('map_index', -1)}] {t['state']}"
            for t in tis.get("task_instances", [])
            if t["state"] not in ("success", "skipped")
        ]
        return RunResult(run_id, state, time.monotonic() - start, failed)

    def _check_pools(self, run_id: str) -> None:
        """A task waiting on a pool the deployment lacks would wait forever without a word
        (Airflow only logs it): stop with the fix instead."""
        tis = self.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=200")
        waiting = {t.get("pool") for t in tis.get("task_instances", [])
                   if t["state"] == "scheduled" and t.get("pool")}  # fmt: skip
        for pool in sorted(waiting):
            try:
                self.api("GET", f"/pools/{pool}")
            except ApiError as exc:
                if exc.status == 404:
                    raise AirflowError(
                        f"tasks of {run_id} wait on pool {pool!r}, which this Airflow does not "
                        f"have: run `airflow pools import {POOLS_FILE}` (profilecast run and up "
                        "do it on a database they set up)"
                    ) from None
                raise

    def run_for(self, interval: Interval) -> str | None:
        """The id of the DAG run whose logical date is the interval's start, if any."""
        runs = self.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100&order_by=-run_after")
        for run in runs.get("dag_runs", []):
            if run.get("logical_date") and _same(run["logical_date"], interval.start):
                return str(run["dag_run_id"])
        return None

    def task_logs(self, run_id: str) -> str:
        """The latest attempt's log of every task of a run, in task order."""
        root = Path(self.env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / f"dag_id={DAG_ID}"
        latest: dict[Path, Path] = {}
        for path in (root / f"run_id={run_id}").rglob("attempt=*.log"):
            seen = latest.get(path.parent)
            if seen is None or _attempt(path) > _attempt(seen):
                latest[path.parent] = path
        parts = []
        for folder in sorted(latest):
            parts.append(f"===== {latest[folder].relative_to(root)} =====\n")
            parts.append(latest[folder].read_text(errors="replace"))
        return "".join(parts)


def _attempt(path: Path) -> int:
    try:
        return int(path.stem.split("=", 1)[1])
    except (IndexError, ValueError):
        return 0


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _same(text: str, when: Any) -> bool:

    return utc(text) == when

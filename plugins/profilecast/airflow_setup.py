"""The Airflow this machine runs for profilecast: its environment (the user's metadata
database and executor, or SQLite under the project's home and the LocalExecutor), its
one-time set-up (the metadata database migrated, or copied from a seed, and the project's
pools imported), and the settings module that has the forking processes preload what the
tasks import."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from profilecast.config import POOLS_FILE, Settings, process_env, user_airflow, wake_url


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment Airflow runs with: the project's DAGs, the user's Airflow home,
    metadata database and executor when they set them, else SQLite under the project's home
    and the LocalExecutor."""
    env = process_env()
    home = settings.airflow_home
    # Airflow starts its components as `airflow ...` from PATH (standalone, the executor):
    # put this interpreter's scripts first, so nothing needs an activated virtualenv.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep)
                                              if p and p != bin_dir)])  # fmt: skip
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "PROFILECAST_HOME": str(settings.home),
            "PROFILECAST_SOURCES": settings.sources,
            "PROFILECAST_EXPORT_URL": settings.export_url,
            "PROFILECAST_DBT_TARGET": settings.dbt_target,
            # The collector's wake-ups reach the triggerer through this connection.
            "AIRFLOW_CONN_PROFILECAST_REDIS": wake_url() or "redis://127.0.0.1:6379/0",
            "GX_ANALYTICS_ENABLED": "false",
            "NO_COLOR": "1",
        }
    )
    env.update(user_airflow())
    return env


def airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def ensure_airflow(settings: Settings) -> dict[str, str]:
    """Migrate Airflow's metadata database and import the project's pools (once per
    database: the marker is named after the connection and records the Airflow version),
    or copy the seed database (``Settings.airflow_db_seed``) when it is a valid one."""
    env = airflow_env(settings)
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    marker = _marker(settings.airflow_home, conn)
    if not marker.exists():
        if not _copy_seed(settings, env):
            subprocess.run([airflow_bin(), "db", "migrate"], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            subprocess.run([airflow_bin(), "pools", "import", str(POOLS_FILE)], env=env,
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        marker.write_text(json.dumps({"initialised": datetime.now().isoformat(),
                                      "airflow": _airflow_version()}))  # fmt: skip
    return env


def _marker(folder: Path, conn: str) -> Path:
    digest = hashlib.sha256(conn.encode()).hexdigest()[:12]
    return folder / f".profilecast-initialised-{digest}"


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def _copy_seed(settings: Settings, env: dict[str, str]) -> bool:
    """Copy the seed database to a home's default SQLite database that does not exist yet,
    when profilecast's marker beside the seed names the installed Airflow (so its schema
    and pools are what ``db migrate`` and ``pools import`` would give). False otherwise.

    ``db migrate`` would also have written the home's ``airflow.cfg``, with the secrets
    every component must share (the API's JWT secret, the Fernet key). Without it the
    components, started together, would each write one with secrets of their own, and the
    API server would refuse the task runners' tokens: the seed writes it first."""
    seed = settings.airflow_db_seed
    target = settings.airflow_home / "airflow.db"
    config = settings.airflow_home / "airflow.cfg"
    if (
        seed is None
        or not seed.is_file()
        or env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] != f"sqlite:///{target}"
        or env.get("AIRFLOW_CONFIG")
        or target.exists()
    ):
        return False
    try:
        made = json.loads(_marker(seed.parent, f"sqlite:///{seed}").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(made, dict) or made.get("airflow") != _airflow_version():
        return False
    if not config.exists():
        fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()  # Fernet.generate_key()
        jwt = base64.b64encode(os.urandom(16)).decode()  # as Airflow makes it
        _atomic_write(config, f"[core]\nfernet_key = {fernet}\n\n[api_auth]\njwt_secret = {jwt}\n")
    partial = target.with_name(f".airflow.db.{os.getpid()}")
    shutil.copyfile(seed, partial)
    os.replace(partial, target)
    return True


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.chmod(0o600)  # secrets: as Airflow keeps its own config file
    os.replace(partial, path)


#: The first line of the airflow_local_settings.py profilecast writes: a file without it is
#: the user's, and is never replaced.
LOCAL_SETTINGS_MARK = (
    "# profilecast: written by profilecast (airflow_setup.py); delete this line to keep edits"
)

LOCAL_SETTINGS = f'''{LOCAL_SETTINGS_MARK}
"""Airflow imports this module in each of its processes. In the scheduler and a Celery
worker it imports the libraries profilecast's tasks use: their executors fork the task
processes from them, so each task starts with these loaded instead of importing them
again (pandas, pyarrow, DuckDB, Jinja2 and the task SDK: seconds of CPU per task)."""

import sys

__all__: list[str] = []  # nothing here is an Airflow setting or policy

if sys.argv[1:2] == ["scheduler"] or sys.argv[1:3] == ["celery", "worker"]:
    import duckdb  # noqa: F401
    import jinja2  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import airflow.sdk  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    import profilecast.pipeline  # noqa: F401
'''


def write_local_settings(airflow_home: Path) -> bool:
    """Write ``config/airflow_local_settings.py`` in the Airflow home (Airflow puts that
    folder on its path) unless the user keeps one of their own there; True when written."""
    path = airflow_home / "config" / "airflow_local_settings.py"
    if path.exists():
        text = path.read_text(errors="replace")
        if not text.startswith(LOCAL_SETTINGS_MARK) or text == LOCAL_SETTINGS:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, LOCAL_SETTINGS)
    return True

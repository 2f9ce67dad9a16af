"""The Airflow profilecast runs for a person (local_airflow.py) is set up once per home:
from a migrated seed database when one is given, with a settings module that has the
scheduler and Celery workers import what the tasks use before they fork them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

from profilecast import airflow_setup


def test_a_new_home_starts_from_a_valid_airflow_seed_and_migrates_otherwise(
    pc_env, tmp_path, monkeypatch, airflow_db_seed
):
    """A home without a metadata database copies the seed (migrated, with the pools) when
    profilecast's marker beside the seed names the installed Airflow; otherwise, or for a
    database the user configured, it runs `db migrate` and `pools import` as before."""
    from profilecast.config import load_settings

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: calls.append(argv[1:3]))
    airflow_setup.ensure_airflow(pc_env)
    assert calls == []  # copied, nothing migrated
    con = sqlite3.connect(pc_env.airflow_home / "airflow.db")
    pools = {r[0] for r in con.execute("select pool from slot_pool")}
    con.close()
    assert "profilecast_warehouse" in pools
    # ... and the config file its components share, with secrets of its own
    config = (pc_env.airflow_home / "airflow.cfg").read_text()
    assert "jwt_secret = " in config and "fernet_key = " in config
    assert config != (airflow_db_seed.parent / "airflow.cfg").read_text()

    # A seed whose marker names another Airflow version is not used.
    stale = tmp_path / "stale"
    shutil.copytree(airflow_db_seed.parent, stale)
    (marker,) = stale.glob(".profilecast-initialised-*")
    marker.unlink()
    made = airflow_setup._marker(stale, f"sqlite:///{stale / 'airflow.db'}")
    made.write_text(json.dumps({"airflow": "2.0.0"}))
    monkeypatch.setenv("PROFILECAST_AIRFLOW_DB_SEED", str(stale / "airflow.db"))
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "other"))
    airflow_setup.ensure_airflow(load_settings())
    assert calls == [["db", "migrate"], ["pools", "import"]]
    assert not (tmp_path / "other" / "airflow" / "airflow.db").exists()

    # The user's own metadata database is never replaced by the seed.
    calls.clear()
    monkeypatch.setenv("PROFILECAST_AIRFLOW_DB_SEED", str(airflow_db_seed))
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "theirs"))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path}/theirs.db")
    airflow_setup.ensure_airflow(load_settings())
    assert calls == [["db", "migrate"], ["pools", "import"]]
    assert not (tmp_path / "theirs.db").exists()


def test_the_local_settings_preload_the_task_libraries_in_the_forking_processes_only(tmp_path):
    """Written once, kept when the user has a file of their own, replaced when profilecast's
    is outdated; imported as Airflow imports it, it loads pandas and the task SDK in the
    scheduler and a Celery worker, and nothing in the API server."""
    home = tmp_path / "airflow"
    path = home / "config" / "airflow_local_settings.py"
    assert airflow_setup.write_local_settings(home)
    assert not airflow_setup.write_local_settings(home)  # already there, unchanged

    path.write_text(airflow_setup.LOCAL_SETTINGS_MARK + "\n# an older version\n")
    assert airflow_setup.write_local_settings(home)
    assert path.read_text() == airflow_setup.LOCAL_SETTINGS

    probe = (
        "import sys; sys.argv = ['airflow', *sys.argv[1:]]; import airflow_local_settings as s; "
        "print(s.__all__, 'pandas' in sys.modules, 'airflow.sdk.execution_time.task_runner' "
        "in sys.modules)"
    )

    def loaded(*argv: str) -> str:
        out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=path.parent,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()

    assert loaded("scheduler") == "[] True True"
    assert loaded("celery", "worker") == "[] True True"
    assert loaded("api-server") == "[] False False"

    mine = "# my own policies\n"
    path.write_text(mine)
    assert not airflow_setup.write_local_settings(home)
    assert path.read_text() == mine


def test_airflow_standalone_gets_the_preloading_settings(tmp_path, monkeypatch):
    """`make airflow` (profilecast airflow-standalone): its scheduler, a child `airflow
    scheduler`, forks the tasks, so the home gets the local settings before it starts."""
    from profilecast import cli

    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    started: list[list[str]] = []
    monkeypatch.setattr(cli, "ensure_airflow", lambda settings: {"AIRFLOW_HOME": "x"})
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: started.append(cmd) or 0)
    assert cli.main(["airflow-standalone"]) == 0
    assert started and started[0][-1] == "standalone"
    written = tmp_path / "home" / "airflow" / "config" / "airflow_local_settings.py"
    assert written.read_text() == airflow_setup.LOCAL_SETTINGS

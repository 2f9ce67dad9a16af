"""docker/ is for users (no engine here): check it statically against the repository, as
`docker compose config` would resolve it (anchors and merge keys included)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = ("airflow-init", "scheduler", "dag-processor", "triggerer", "api-server",
                    "worker", "collector")  # fmt: skip


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())


def _airflow_pin() -> str:
    lock = (ROOT / "requirements.lock").read_text()
    return re.search(r"^apache-airflow==([\d.]+)$", lock, re.MULTILINE).group(1)


def test_the_image_is_the_official_airflow_image_with_the_project_non_root():
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    assert lines[0].startswith("# ")
    base = next(line for line in lines if line.startswith("FROM "))
    assert base == f"FROM apache/airflow:{_airflow_pin()}-python3.11", base
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] == "airflow"  # the image's non-root user runs everything
    for line in lines:
        if line.startswith("COPY "):
            for src in [w for w in line.split()[1:-1] if not w.startswith("--")]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    assert any("requirements.lock" in line and "pip install" in line for line in lines)
    copied = {w for line in lines if line.startswith("COPY ")
              for w in line.split()[1:-1] if not w.startswith("--")}  # fmt: skip
    # What the package reads at run time from the project root (config.py's defaults).
    assert {"plugins", "dags", "dbt_project", "expectations", "campaigns", "flows",
            "consent"} <= copied  # fmt: skip


def test_compose_runs_the_cluster_on_postgres_redis_and_celery():
    compose = _compose()
    services = compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} <= set(services)
    commands = {name: " ".join(services[name]["command"]) for name in AIRFLOW_SERVICES}
    for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
        assert commands[component] == f"airflow {component}"
    assert commands["worker"] == "airflow celery worker"
    assert commands["collector"].startswith("profilecast serve")
    assert "airflow db migrate" in commands["airflow-init"]
    pools = re.search(r"pools import (\S+)", commands["airflow-init"]).group(1)
    assert (ROOT / Path(pools).relative_to("/opt/profilecast")).exists()
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert svc["user"] not in ("0", "root") and not str(svc["user"]).startswith("0:")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        assert env["PROFILECAST_DBT_TARGET"] == "postgres"
        for key in ("PROFILECAST_EXPORT_URL", "PROFILECAST_HANDOFF_URL", "PROFILECAST_LANDING_URL"):
            assert env[key].startswith("${") and "s3://" in env[key]
        if name != "airflow-init":
            assert svc["depends_on"]["airflow-init"]["condition"] == (
                "service_completed_successfully")  # fmt: skip
    build = services["scheduler"]["build"]
    assert (ROOT / "docker" / build["context"] / build["dockerfile"]).exists()
    profiles = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    assert "postgres" in profiles["profilecast"]["outputs"]


def test_compose_takes_every_secret_from_the_environment():
    secret = re.compile(r"PASSWORD|SECRET|FERNET|KEYS|SALT|TOKENS|_KEY_ID|ACCESS_KEY")
    for name, svc in _compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if secret.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*|:-)?\}", str(value)), (name, key, value)
            # a connection string may embed a password, only as a reference
            if "://" in str(value) and "@" in str(value):
                assert re.search(r"://[^:@/]+:\$\{[A-Z_]+", str(value)), (name, key, value)


def _preloaded(argv: list[str]) -> set[str]:
    """The modules profilecast's airflow_local_settings.py imports in a process started as
    ``argv``: its code run with that sys.argv and an import that only records."""
    import builtins
    import types

    from profilecast.airflow_setup import LOCAL_SETTINGS

    imported: set[str] = set()
    fake_sys = types.SimpleNamespace(argv=argv)

    def record(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if name == "sys":
            return fake_sys
        imported.add(name)
        return types.SimpleNamespace()

    exec(LOCAL_SETTINGS, {"__builtins__": {**vars(builtins), "__import__": record}})
    return imported


def test_the_image_preloads_the_task_libraries_in_the_scheduler_and_the_workers():
    """The image writes profilecast's airflow_local_settings.py into its Airflow home once
    the package is installed, and the compose file starts the scheduler and the Celery
    workers with the commands that file preloads in (and the API server with one it does
    not)."""
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    install = lines.index("RUN pip install --no-cache-dir --no-deps -e .")
    writes = [n for n, line in enumerate(lines)
              if line.startswith("RUN ") and "write_local_settings(" in line]  # fmt: skip
    assert writes and writes[0] > install, "the Dockerfile does not write the local settings"
    assert "os.environ['AIRFLOW_HOME']" in lines[writes[0]]
    services = _compose()["services"]
    for name in ("scheduler", "worker"):
        assert "profilecast.pipeline" in _preloaded(services[name]["command"]), name
    assert _preloaded(services["api-server"]["command"]) == set()

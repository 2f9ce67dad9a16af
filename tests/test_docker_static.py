"""docker/ is for users (no engine here): check it statically against the repository."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_copies_paths_that_exist():
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    assert lines[0].startswith("# ") and any(line.startswith("FROM python:3.11") for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    assert any("requirements.lock" in line and "uv pip install" in line for line in lines)
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    # What the package reads at run time from the project root (config.py's defaults).
    assert {"plugins", "dags", "dbt_project", "expectations", "campaigns", "flows",
            "consent"} <= copied  # fmt: skip


def test_compose_wires_postgres_target():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    env = compose["services"]["profilecast"]["environment"]
    assert env["PROFILECAST_DBT_TARGET"] == "postgres"
    profiles = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    assert "postgres" in profiles["profilecast"]["outputs"]
    build = compose["services"]["profilecast"]["build"]
    assert (ROOT / "docker" / build["context"] / build["dockerfile"]).exists()

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_EXTERNAL = REPO.parent / "shared" / "external"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A small deterministic drop of all four sources (generated once per session)."""
    from profilecast.generate import generate

    out = tmp_path_factory.mktemp("sample")
    generate(out, contacts=400, seed=7)
    return out


@pytest.fixture()
def pc_env(tmp_path, monkeypatch, sample_dir):
    """Point every PROFILECAST_* setting at a fresh temporary home."""
    home = tmp_path / "home"
    monkeypatch.setenv("PROFILECAST_HOME", str(home))
    monkeypatch.setenv("PROFILECAST_SOURCES", str(sample_dir))
    monkeypatch.delenv("PROFILECAST_EXPORT_URL", raising=False)
    monkeypatch.setenv("PROFILECAST_DBT_TARGET", "duckdb")
    from profilecast.config import load_settings

    return load_settings()


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILECAST_", "AIRFLOW"))}
    env.update(overrides)
    return env

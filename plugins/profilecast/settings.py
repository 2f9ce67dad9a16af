"""The resolved configuration as a value: what ``config.load_settings()`` returns, with the
paths every stage derives from it. Its few lazily resolved settings read the environment
through ``config``, the one module that does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

#: The repository root (``plugins/profilecast/settings.py`` -> three levels up).
REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    from profilecast.config import _env as read

    return read(name, default)


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration, resolved from the environment."""

    home: Path
    sources: str
    export_url: str
    dbt_target: str
    lookback_days: int
    required_sources: frozenset[str] = field(default_factory=frozenset)
    repo_root: Path = REPO_ROOT
    #: the user's own AIRFLOW_HOME, when they set one
    airflow_home_override: Path | None = None

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def airflow_home(self) -> Path:
        return self.airflow_home_override or self.home / "airflow"

    @property
    def rendered_dir(self) -> Path:
        return self.home / "rendered"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def dbt_project_dir(self) -> Path:
        return Path(_env("PROFILECAST_DBT_PROJECT_DIR", str(self.repo_root / "dbt_project")))

    @property
    def dbt_vars(self) -> dict[str, object]:
        """Operator overrides of dbt project vars (PROFILECAST_DBT_VARS, a JSON object), e.g.
        '{"identity_match_threshold": 10}'. The pipeline's own vars (as_of) win."""
        raw = _env("PROFILECAST_DBT_VARS", "").strip()
        if not raw:
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"PROFILECAST_DBT_VARS is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ValueError("PROFILECAST_DBT_VARS must be a JSON object of dbt vars")
        return parsed

    @property
    def dbt_parse_seed(self) -> Path | None:
        """A dbt ``partial_parse.msgpack`` that a home without one starts from
        (PROFILECAST_DBT_PARSE_SEED), so its first dbt command parses only what differs from
        it instead of the whole project. dbt checks the seed as it checks its own: another
        dbt version, other vars or changed files mean a full parse or a partial one."""
        raw = _env("PROFILECAST_DBT_PARSE_SEED", "").strip()
        return Path(raw) if raw else None

    @property
    def airflow_db_seed(self) -> Path | None:
        """An Airflow SQLite metadata database that profilecast set up with this install
        (PROFILECAST_AIRFLOW_DB_SEED): a home without one starts from a copy instead of
        migrating a new database and importing the pools. Used only when the marker
        profilecast wrote beside it names the installed Airflow version."""
        raw = _env("PROFILECAST_AIRFLOW_DB_SEED", "").strip()
        return Path(raw) if raw else None

    @property
    def fresh_path(self) -> Path:
        """The fresh-facts store the collector writes and every render reads (SQLite)."""
        return self.home / "fresh" / "facts.sqlite"

    @property
    def profiles_snapshot_path(self) -> Path:
        """The profiles the profile API serves, published after each gated build."""
        return self.home / "serving" / "profiles.sqlite"

    @property
    def flows_path(self) -> Path:
        """Triggered flows' state, history and send ledger (SQLite, beside the warehouse)."""
        return self.home / "flows" / "state.sqlite"

    @property
    def flows_dir(self) -> Path:
        """Flow files (``<flow_id>.yml``) and their message folders (``messages/``)."""
        return Path(_env("PROFILECAST_FLOWS", str(self.repo_root / "flows")))

    @property
    def expectations_dir(self) -> Path:
        return self.repo_root / "expectations"

    @property
    def campaigns_dir(self) -> Path:
        return Path(_env("PROFILECAST_CAMPAIGNS", str(self.repo_root / "campaigns")))

    @property
    def dags_dir(self) -> Path:
        return self.repo_root / "dags"

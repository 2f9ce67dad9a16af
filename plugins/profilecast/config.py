"""Runtime configuration, read from environment variables with repo-relative defaults.

Every setting has a default so that ``make demo`` works with nothing exported. Secrets never
live here: the PostgreSQL password and S3 credentials come from the environment (or an
Airflow Connection for the API extractors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from profilecast.settings import REPO_ROOT, Settings

__all__ = ["REPO_ROOT", "Settings"]

#: The DAG and the Airflow pool that serialises warehouse writers (DuckDB: one writer).
DAG_ID = "customer_profiles"
#: The DAG the collector wakes (through Redis and an AssetWatcher) when events arrive.
EVENTS_DAG_ID = "collector_events"
#: The Airflow connection the AssetWatcher's Redis trigger uses.
REDIS_CONN_ID = "profilecast_redis"
WAREHOUSE_POOL = "profilecast_warehouse"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer setting from the environment, with an error that names the variable."""
    raw = _env(name, str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


def load_settings() -> Settings:
    """Read the configuration from the environment (cheap; call it inside tasks)."""
    home = Path(_env("PROFILECAST_HOME", str(REPO_ROOT / ".profilecast"))).resolve()
    sources = _env("PROFILECAST_SOURCES", str(home / "sample"))
    export_url = _env("PROFILECAST_EXPORT_URL", (home / "exports").as_uri())
    required = _env("PROFILECAST_REQUIRED_SOURCES", "crm")
    return Settings(
        home=home,
        sources=sources,
        export_url=export_url,
        dbt_target=_env("PROFILECAST_DBT_TARGET", "duckdb"),
        lookback_days=env_int("PROFILECAST_LOOKBACK_DAYS", 3, minimum=0),
        required_sources=frozenset(s.strip() for s in required.split(",") if s.strip()),
        airflow_home_override=Path(_env("AIRFLOW_HOME", ".")).resolve()
        if os.environ.get("AIRFLOW_HOME")
        else None,  # fmt: skip
    )


#: the pools every deployment must have (``airflow pools import dags/pools.json``)
POOLS_FILE = REPO_ROOT / "dags" / "pools.json"


def pool_wait_seconds() -> int:
    """How long the first warehouse task may wait, nothing else holding the warehouse, before
    the pool watchdog calls the pool missing (PROFILECAST_POOL_WAIT_SECONDS, 600)."""
    return env_int("PROFILECAST_POOL_WAIT_SECONDS", 600)


def extract_workers() -> int:
    """Processes reading one entity's drop files (PROFILECAST_EXTRACT_WORKERS; the cores)."""
    return env_int("PROFILECAST_EXTRACT_WORKERS", _cores())


def _cores() -> int:  # the cores this process may run on
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def export_workers() -> int:
    """Processes making a campaign's export batches (PROFILECAST_EXPORT_WORKERS; the cores)."""
    return env_int("PROFILECAST_EXPORT_WORKERS", _cores())


def export_parallel_min_bytes() -> int:
    """Rendered gzip bytes from which exports use workers (PROFILECAST_EXPORT_PARALLEL_MIN_MB)."""
    return env_int("PROFILECAST_EXPORT_PARALLEL_MIN_MB", 1, minimum=0) * 2**20


def extract_parallel_min_bytes() -> int:
    """How large an entity's drop files must be in all before worker processes read them
    (PROFILECAST_EXTRACT_PARALLEL_MIN_MB, 64): below it, starting workers costs more than
    it saves."""
    return env_int("PROFILECAST_EXTRACT_PARALLEL_MIN_MB", 64, minimum=0) * 2**20


def extract_vectorised() -> bool:
    """Whether ordinary records of local JSON-lines files are checked by DuckDB in bulk
    (PROFILECAST_EXTRACT_VECTORISED, on). Off: every record goes through the Python path,
    which gives the same rows, only slower (sources/vectorised.py)."""
    return _flag("PROFILECAST_EXTRACT_VECTORISED", True)


def data_docs() -> bool:
    """Whether the quality gate also renders GX Data Docs (PROFILECAST_DATA_DOCS, on). The
    gate's own HTML report is written either way; Data Docs cost about half of a small gate's
    time, so a deployment that never opens them, or a test, may switch them off."""
    return _flag("PROFILECAST_DATA_DOCS", True)


def _flag(name: str, default: bool) -> bool:
    """A true/false setting (also 1/0, yes/no, on/off); anything else is an error."""
    raw = _env(name, "true" if default else "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError(f"{name}={raw!r}: use true or false")
    return raw in ("true", "1", "yes", "on")


def worker_hostname() -> str:
    """A task instance's host name: the machine's, plus the Celery worker's name where several
    share one machine (PROFILECAST_WORKER_NAME, set by the cluster harness)."""
    import socket

    name = os.environ.get("PROFILECAST_WORKER_NAME")
    return f"{socket.getfqdn()}/{name}" if name else socket.getfqdn()


def user_airflow() -> dict[str, str]:
    """The user's Airflow metadata database and executor, when set (honoured as they are)."""
    keys = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR")
    return {k: os.environ[k] for k in keys if os.environ.get(k)}


#: The default DuckDB memory cap per core (DuckDB's performance guide suggests 1 to 4 GB
#: per thread, the low end for aggregations, the high end for joins).
MEMORY_PER_CORE_MB = 2 * 1024


def duckdb_memory_limit() -> str:
    """DuckDB's memory cap: PROFILECAST_DUCKDB_MEMORY_LIMIT, else 2 GiB per core, at most
    80% of this machine's RAM (DuckDB's own default is 80%; beyond the cap it spills). At a
    million contacts on 2 cores the 4 GiB this gives kept the run under 5.1 GiB."""
    explicit = os.environ.get("PROFILECAST_DUCKDB_MEMORY_LIMIT", "").strip()
    if explicit:
        return explicit.replace("'", "")
    per_cores = MEMORY_PER_CORE_MB * (os.cpu_count() or 1)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return f"{per_cores}MB"
    return f"{max(1, min(per_cores, int(ram * 0.8) // 2**20))}MB"


def postgres_params() -> dict[str, str | int]:
    """Connection settings shared by the raw loader and dbt's ``postgres`` target."""
    return {
        "host": _env("PROFILECAST_PG_HOST", "127.0.0.1"),
        "port": int(_env("PROFILECAST_PG_PORT", "5432")),
        "user": _env("PROFILECAST_PG_USER", "postgres"),
        "password": os.environ.get("PROFILECAST_PG_PASSWORD", ""),
        "dbname": _env("PROFILECAST_PG_DATABASE", "postgres"),
        "schema": _env("PROFILECAST_PG_SCHEMA", "profilecast"),
    }


def _s3_url(name: str) -> str | None:
    url = _env(name, "")
    return url.rstrip("/") if url.startswith("s3://") else None


def handoff_url() -> str | None:
    """PROFILECAST_HANDOFF_URL=s3://bucket/prefix: rendered batches reach the export task
    through this object store, by key (else None: the local rendered folder)."""
    return _s3_url("PROFILECAST_HANDOFF_URL")


def landing_url() -> str | None:
    """PROFILECAST_LANDING_URL=s3://bucket/prefix puts the landing zone on S3 (else None:
    the landing zone is the local folder under PROFILECAST_HOME)."""
    return _s3_url("PROFILECAST_LANDING_URL")


def connectors() -> dict[str, str]:
    """PROFILECAST_CONNECTORS=billing=api,crm=api -> {"billing": "api", "crm": "api"}."""
    found = {}
    for part in _env("PROFILECAST_CONNECTORS", "").split(","):
        name, _, kind = part.strip().partition("=")
        if name and kind:
            found[name] = kind
    return found


def multipart_bytes() -> int:
    """Objects at least this large go to S3 as multipart uploads (default 64 MiB)."""
    return env_int("PROFILECAST_MULTIPART_BYTES", 64 * 1024 * 1024)


def raw_schema_override() -> str | None:
    """PROFILECAST_RAW_SCHEMA: the schema of the raw tables, when not the default."""
    return os.environ.get("PROFILECAST_RAW_SCHEMA") or None


def unsubscribe_keys() -> tuple[str, ...]:
    """The keys of unsubscribe links: PROFILECAST_UNSUBSCRIBE_KEYS (comma-separated; the
    first signs, all verify, for rotation), else PROFILECAST_UNSUBSCRIBE_SECRET, else the
    demo key (refused for export once PROFILECAST_PUBLIC_URL is set)."""
    from profilecast.consent.tokens import DEMO_SECRET

    keys = _csv("PROFILECAST_UNSUBSCRIBE_KEYS")
    return keys or (_env("PROFILECAST_UNSUBSCRIBE_SECRET", DEMO_SECRET),)


def unsubscribe_max_age() -> int:
    """Seconds an unsubscribe link stays valid (PROFILECAST_UNSUBSCRIBE_MAX_AGE_DAYS, 180)."""
    return env_int("PROFILECAST_UNSUBSCRIBE_MAX_AGE_DAYS", 180, minimum=1) * 86400


def public_url() -> tuple[str, bool]:
    """The base URL people reach the collector at (unsubscribe links), and whether it was
    set: unset, links point at the local collector of `make up`."""
    url = _env("PROFILECAST_PUBLIC_URL", "").strip()
    return (url, True) if url else ("http://127.0.0.1:8088", False)


def erasure_salt() -> str:
    """PROFILECAST_ERASURE_SALT (empty: a random salt kept in $PROFILECAST_HOME/privacy)."""
    return _env("PROFILECAST_ERASURE_SALT", "").strip()


def privacy_tokens() -> tuple[str, ...]:
    """PROFILECAST_PRIVACY_TOKENS: the privacy API's bearer tokens (none: the API is off)."""
    return _csv("PROFILECAST_PRIVACY_TOKENS")


def suppressions_dir() -> Path:
    """Suppression list files (PROFILECAST_SUPPRESSIONS; default $PROFILECAST_HOME/suppressions)."""
    default = load_settings().home / "suppressions"
    return Path(_env("PROFILECAST_SUPPRESSIONS", str(default)))


def topics_path() -> Path:
    return Path(_env("PROFILECAST_TOPICS", str(REPO_ROOT / "consent" / "topics.yml")))


def airflow_connection_uri(conn_id: str) -> str | None:
    """An Airflow Connection given as ``AIRFLOW_CONN_<ID>`` (a URI or JSON), if set."""
    return os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")


def render_shards() -> int:
    """Render tasks per campaign (PROFILECAST_RENDER_SHARDS, default 2)."""
    return env_int("PROFILECAST_RENDER_SHARDS", 2)


def process_env(**changes: str | None) -> dict[str, str]:
    """A copy of this process's environment for a child process, with ``changes`` applied
    (a value of None removes the variable)."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def set_process_env(**changes: str | None) -> None:
    """Change this process's own environment (the CLI pointing itself at a new home)."""
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def quiet_gx() -> None:
    """Great Expectations sends usage analytics unless told not to."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


#: The profile fields the profile API answers with unless PROFILECAST_PROFILE_FIELDS says
#: otherwise: what an ESP needs to personalise at send or open time, nothing more.
DEFAULT_PROFILE_FIELDS = (
    "customer_id", "first_name", "last_name", "city", "country", "time_zone",
    "engagement_score", "orders_count", "last_order_at", "top_category",
    "recently_viewed_products", "cart_items", "cart_items_count", "last_cart_added_at",
    "recommended_products", "is_emailable",
)  # fmt: skip


def _csv(name: str, default: str = "") -> tuple[str, ...]:
    return tuple(p.strip() for p in _env(name, default).split(",") if p.strip())


@dataclass(frozen=True)
class CollectorSettings:
    """The event collector's settings (``profilecast serve``)."""

    #: Segment write keys (HTTP basic user name); empty: every write is refused
    write_keys: tuple[str, ...]
    #: bearer tokens for the profile API; empty: the profile API is closed
    api_tokens: tuple[str, ...]
    #: SendGrid's Event Webhook verification key (base64 DER); empty: the webhook is closed
    sendgrid_key: str
    #: signed SendGrid requests older than this many seconds are refused (0: no limit)
    sendgrid_max_age: int
    #: hosts an SNS SigningCertURL / SubscribeURL may point at (a regular expression)
    sns_cert_hosts: str
    #: SNS topic ARNs accepted (empty: any topic whose signature verifies)
    sns_topics: tuple[str, ...]
    max_body_bytes: int
    max_event_bytes: int
    #: requests per second per write key (token bucket) and the bucket's size
    rate_per_key: float
    rate_burst: int
    #: an open journal segment is sealed (visible to the daily extract) after this long
    rotate_seconds: float
    profile_fields: tuple[str, ...]
    #: where the collector publishes wake-ups for Airflow ("" or "off": none)
    wake_url: str
    wake_channel: str


def collector_settings() -> CollectorSettings:
    rate = _env("PROFILECAST_COLLECTOR_RATE", "500")
    try:
        rate_per_key = float(rate)
    except ValueError:
        raise ValueError(f"PROFILECAST_COLLECTOR_RATE={rate!r} is not a number") from None
    return CollectorSettings(
        write_keys=_csv("PROFILECAST_WRITE_KEYS"),
        api_tokens=_csv("PROFILECAST_API_TOKENS"),
        sendgrid_key=_env("PROFILECAST_SENDGRID_WEBHOOK_KEY", ""),
        sendgrid_max_age=env_int("PROFILECAST_SENDGRID_MAX_AGE", 0, minimum=0),
        sns_cert_hosts=_env(
            "PROFILECAST_SNS_CERT_HOSTS", r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
        ),
        sns_topics=_csv("PROFILECAST_SNS_TOPICS"),
        max_body_bytes=env_int("PROFILECAST_COLLECTOR_MAX_BODY", 500 * 1024),
        max_event_bytes=env_int("PROFILECAST_COLLECTOR_MAX_EVENT", 32 * 1024),
        rate_per_key=rate_per_key,
        rate_burst=env_int("PROFILECAST_COLLECTOR_BURST", 1000),
        rotate_seconds=float(env_int("PROFILECAST_COLLECTOR_ROTATE_SECONDS", 60)),
        profile_fields=_csv("PROFILECAST_PROFILE_FIELDS", ",".join(DEFAULT_PROFILE_FIELDS)),
        wake_url=wake_url(),
        wake_channel=wake_channel(),
    )


def wake_url() -> str:
    """PROFILECAST_WAKE_URL: the Redis server the collector publishes wake-ups to (e.g.
    redis://127.0.0.1:6379/0); empty or ``off``: no wake-ups (the fallback schedule only)."""
    url = _env("PROFILECAST_WAKE_URL", "")
    return "" if url.lower() == "off" else url


def wake_channel() -> str:
    return _env("PROFILECAST_WAKE_CHANNEL", "profilecast.events")


def due_channel() -> str:
    """Where the collector's due timer wakes the flows (only them) when a step comes due."""
    return wake_channel() + ".due"


def events_fallback_cron() -> str:
    """How often the events DAG runs when no wake-up arrives (a lost one only delays)."""
    return _env("PROFILECAST_EVENTS_FALLBACK_CRON", "*/10 * * * *")


FLOWS_DAG_ID = "customer_flows"


def flows_fallback_cron() -> str:
    """How often the flows DAG runs when no wake-up arrives: a step that comes due between
    events is sent by the next of these runs, so this bounds its delay."""
    return _env("PROFILECAST_FLOWS_FALLBACK_CRON", "* * * * *")


def now() -> datetime:
    """The time flows use. ``PROFILECAST_CLOCK_FILE`` names a file holding an ISO timestamp
    that replaces the wall clock (tests and demos move time forward by rewriting it)."""
    from profilecast.sources.validation import parse_timestamp

    path = _env("PROFILECAST_CLOCK_FILE", "").strip()
    if path:
        try:
            text = Path(path).read_text().strip()
        except FileNotFoundError:
            text = ""
        ts = parse_timestamp(text) if text else None
        if text and ts is None:
            raise ValueError(f"PROFILECAST_CLOCK_FILE {path} holds {text!r}, not a timestamp")
        if ts is not None:
            return ts
    return datetime.now(UTC)

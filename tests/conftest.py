from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_EXTERNAL = REPO.parent / "shared" / "external"
# The gate's GX Data Docs cost about half of a small gate; the in-process tests do not read
# them (test_gx_data_docs_are_rendered and the end-to-end run do, with them on).
os.environ.setdefault("PROFILECAST_DATA_DOCS", "false")


@contextmanager
def environment(**changes: str | None) -> Iterator[None]:
    """This process's environment with ``changes`` (None removes a variable), restored on
    exit: for session fixtures, which cannot use monkeypatch."""
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A small deterministic drop of all four sources (generated once per session)."""
    from profilecast_dev.generate import generate

    out = tmp_path_factory.mktemp("sample")
    generate(out, contacts=400, seed=7)
    return out


@pytest.fixture(scope="session", autouse=True)
def dbt_parse_seed(tmp_path_factory):
    """dbt's parse state of the project with the builds' vars, parsed once per worker: every
    new home starts from it (PROFILECAST_DBT_PARSE_SEED) and parses only what differs,
    instead of the whole project each time (about 4 s of each test's first build)."""
    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast.warehouse.dbt import run_dbt

    home = tmp_path_factory.mktemp("dbt-seed")
    with environment(PROFILECAST_HOME=str(home)):
        settings = load_settings()
        run_dbt(settings, "parse", [], pipeline.build_vars(settings))
    seed = home / "dbt" / "target" / "partial_parse.msgpack"
    os.environ["PROFILECAST_DBT_PARSE_SEED"] = str(seed)
    return seed


@pytest.fixture(scope="session", autouse=True)
def airflow_db_seed(tmp_path_factory):
    """Airflow's metadata database migrated once per worker, with the project's pools: every
    new home with the default SQLite database starts from a copy of it
    (PROFILECAST_AIRFLOW_DB_SEED) instead of running `airflow db migrate` and `airflow pools
    import` again (about 13 s of CPU each time)."""
    from profilecast.airflow_setup import ensure_airflow
    from profilecast.config import load_settings

    home = tmp_path_factory.mktemp("airflow-seed")
    with environment(PROFILECAST_HOME=str(home), PROFILECAST_AIRFLOW_DB_SEED=None):
        settings = load_settings()
        ensure_airflow(settings)
    seed = settings.airflow_home / "airflow.db"
    os.environ["PROFILECAST_AIRFLOW_DB_SEED"] = str(seed)
    return seed


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


def chromium_path() -> str:
    """Debian's chromium; in CI a missing one fails (`make test` installs it as root)."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs Debian's chromium in CI")
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    return path


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a profilecast subprocess: none of the caller's PROFILECAST_ or
    AIRFLOW settings. One render shard per campaign unless a test asks for more (the
    sharding tests do): on a 2-core machine six render processes per run only cost time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILECAST_", "AIRFLOW"))}
    env["PROFILECAST_RENDER_SHARDS"] = "1"
    env["PROFILECAST_DATA_DOCS"] = "false"  # the e2e run and test_gx_data_docs_... keep them
    for seed in ("PROFILECAST_DBT_PARSE_SEED", "PROFILECAST_AIRFLOW_DB_SEED"):  # the fixtures
        if os.environ.get(seed):
            env[seed] = os.environ[seed]
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint on loopback (moto's server mode)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_env(monkeypatch, s3_endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    import boto3

    return boto3.client("s3")


@pytest.fixture(scope="session")
def built(tmp_path_factory, sample_dir):
    """Extract, load, dbt build and audiences for 2026-10-31, without Airflow (shared by
    the session: tests that change it work on a copy)."""
    from datetime import UTC, datetime, timedelta

    from profilecast import pipeline
    from profilecast.config import load_settings

    START = datetime(2026, 10, 31, tzinfo=UTC)
    END = START + timedelta(days=1)

    home = tmp_path_factory.mktemp("built")
    old = {k: os.environ.get(k) for k in ("PROFILECAST_HOME", "PROFILECAST_SOURCES")}
    os.environ["PROFILECAST_HOME"] = str(home)
    os.environ["PROFILECAST_SOURCES"] = str(sample_dir)
    try:
        settings = load_settings()
        manifests = [
            pipeline.extract(s, START, END, settings) for s in ("crm", "billing", "web", "esp")
        ]
        pipeline.load(manifests, END, settings)
        pipeline.transform(START, END, settings)
        pipeline.audiences(START, settings)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return settings


@pytest.fixture()
def copy_of(built, tmp_path):
    """A private copy of the built warehouse that a test may corrupt."""
    from dataclasses import replace

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(built.warehouse_path, home / "warehouse.duckdb")
    return replace(built, home=home)


#: The longest tests, longest first. `make test` runs the suite on two workers (pytest-xdist,
#: in this order, each worker holding the test it runs and the next one; the tests of one
#: SHARED_FIXTURE_GROUPS group go to one worker together).
#: The two longest open the two workers' queues, each followed by a short test so that
#: nothing long waits behind them; the rest follows longest first.
LONGEST_FIRST = (
    "test_simulate.py", "test_faults.py", "test_e2e.py", "test_cluster.py", "test_identity.py",
    "test_up.py", "test_incremental.py", "test_bench.py",
    "test_segments.py", "test_postgres.py", "test_pipeline_quality.py", "test_freshness.py",
)  # fmt: skip


#: Tests that share an expensive module-scoped fixture, by node id: each group runs on one
#: worker, so the fixture is built once (the 10,000-contact identity build takes 100 to
#: 150 s). pytest-xdist's own xdist_group marker does not work with pytest 9.2: it renames
#: items through `_nodeid`, which pytest no longer reads.
SHARED_FIXTURE_GROUPS = {
    f"tests/test_identity.py::{name}": "identity_large"
    for name in ("test_accuracy_on_generator_truth",
                 "test_rerun_on_unchanged_data_keeps_every_id", "test_dbt_unit_tests_pass")
}  # fmt: skip


def pytest_xdist_make_scheduler(config, log):
    """Load scheduling, one test at a time in collection order, except that each
    SHARED_FIXTURE_GROUPS group is one unit of work."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_FIXTURE_GROUPS.get(nodeid, nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))
    heavy = [i for i in items if Path(str(i.fspath)).name in rank]
    light = [i for i in items if Path(str(i.fspath)).name not in rank]
    if len(heavy) >= 2 and len(light) >= 2:
        items[:] = [heavy[0], light[0], heavy[1], light[1], *heavy[2:], *light[2:]]
